from commands import messages as m
from domain.call import CallState


def test_a_call_from_offer_to_wrap_up_is_stored_and_reloaded(lianxin):
    svc = lianxin.commands
    svc.handle(m.RegisterAgent(employee_no="1001", name="Li Na", team="A", skills={"power": 3}))
    svc.handle(m.LogIn(employee_no="1001", endpoint="PJSIP/1001"))
    svc.handle(m.MakeReady(employee_no="1001"))
    call_id = svc.handle(m.OfferCall(external_id="ch-1", dialed_number="95598",
                                     caller_number="13800000000")).aggregate_id
    svc.handle(m.QueueCall(call_id=call_id, queue="power"))
    svc.handle(m.AlertAgent(call_id=call_id, employee_no="1001"))
    svc.handle(m.AnswerCall(call_id=call_id))
    out = svc.handle(m.EndCall(call_id=call_id, hung_up_by="caller"))
    assert out.position == lianxin.app.max_position()
    call = lianxin.app.repository.get(call_id)
    assert call.state == CallState.ENDED and call.hung_up_by == "caller"
