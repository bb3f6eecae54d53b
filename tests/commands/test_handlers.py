"""Command handlers through the CommandService, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone

import pytest

from commands import messages as m
from commands.errors import ConcurrencyConflict
from domain.agent import AgentState, agent_id_for
from domain.call import CallState
from domain.errors import InvalidValue, InvariantViolation, NotFound
from domain.work_order import WorkOrderStatus

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def staff(svc, *numbers: str) -> None:
    for no in numbers:
        svc.handle(m.RegisterAgent(employee_no=no, name=f"Agent {no}", team="A",
                                   skills={"power": 3}, occurred_at=at(0)))
        svc.handle(m.LogIn(employee_no=no, endpoint=f"PJSIP/{no}", occurred_at=at(0)))
        svc.handle(m.MakeReady(employee_no=no, occurred_at=at(1)))


def queued_call(svc, external_id: str = "ch-1"):
    cid = svc.handle(m.OfferCall(external_id=external_id, dialed_number="95598",
                                 caller_number="13800000000", occurred_at=at(2))).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(5)))
    return cid


def get(lianxin, aggregate_id):
    return lianxin.app.repository.get(aggregate_id)


def test_alert_answer_end_keep_call_and_agent_in_step(lianxin):
    svc = lianxin.commands
    staff(svc, "1001")
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(6)))
    agent = get(lianxin, agent_id_for("1001"))
    assert agent.state == AgentState.RINGING and agent.call_id == cid
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(9)))
    assert get(lianxin, agent_id_for("1001")).state == AgentState.ON_CALL
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(60)))
    assert get(lianxin, cid).state == CallState.ENDED
    assert get(lianxin, agent_id_for("1001")).state == AgentState.WRAP_UP
    svc.handle(m.CompleteWrapUp(call_id=cid, employee_no="1001", dispositions=["outage"],
                                occurred_at=at(80)))
    agent = get(lianxin, agent_id_for("1001"))
    assert agent.state == AgentState.READY and agent.ready_since == at(80)


def test_routing_to_an_agent_who_is_not_ready_is_refused_and_changes_nothing(lianxin):
    svc = lianxin.commands
    svc.handle(m.RegisterAgent(employee_no="1002", name="B", occurred_at=at(0)))
    svc.handle(m.LogIn(employee_no="1002", endpoint="PJSIP/1002", occurred_at=at(0)))
    cid = queued_call(svc)
    before = lianxin.app.max_position()
    with pytest.raises(InvariantViolation, match="not ready"):
        svc.handle(m.AlertAgent(call_id=cid, employee_no="1002", occurred_at=at(6)))
    assert lianxin.app.max_position() == before
    assert get(lianxin, cid).state == CallState.QUEUED


def test_ring_no_answer_puts_the_agent_not_ready_and_the_caller_back_in_queue(lianxin):
    svc = lianxin.commands
    staff(svc, "1001", "1002")
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(6)))
    svc.handle(m.ReportRingNoAnswer(call_id=cid, occurred_at=at(21)))
    assert get(lianxin, agent_id_for("1001")).state == AgentState.NOT_READY
    call = get(lianxin, cid)
    assert call.state == CallState.QUEUED and call.queued_at == at(5)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1002", occurred_at=at(22)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(25)))
    assert get(lianxin, cid).answered_at == at(25)


def test_caller_hanging_up_while_ringing_abandons_and_frees_the_agent(lianxin):
    svc = lianxin.commands
    staff(svc, "1001")
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(6)))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(8)))
    call = get(lianxin, cid)
    assert call.state == CallState.ABANDONED and call.abandon_stage == "ringing"
    assert get(lianxin, agent_id_for("1001")).state == AgentState.READY


def test_a_retried_command_with_the_same_key_adds_no_event(lianxin):
    svc = lianxin.commands
    staff(svc, "1001")
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(6)))
    first = svc.handle(m.AnswerCall(call_id=cid, command_id="ari:answer:1", occurred_at=at(9)))
    head = lianxin.app.max_position()
    again = svc.handle(m.AnswerCall(call_id=cid, command_id="ari:answer:1", occurred_at=at(9)))
    assert again.duplicate and again.new_events == 0 and not first.duplicate
    assert lianxin.app.max_position() == head


def test_a_replayed_offer_for_the_same_channel_is_a_duplicate(lianxin):
    svc = lianxin.commands
    one = svc.handle(m.OfferCall(external_id="same", dialed_number="95598", occurred_at=at(1)))
    two = svc.handle(m.OfferCall(external_id="same", dialed_number="95598", occurred_at=at(1)))
    assert one.aggregate_id == two.aggregate_id and two.duplicate and two.new_events == 0
    assert get(lianxin, one.aggregate_id).version == 1


def test_expected_version_mismatch_is_a_conflict(lianxin):
    svc = lianxin.commands
    cid = svc.handle(m.OfferCall(external_id="v", dialed_number="95598",
                                 occurred_at=at(1))).aggregate_id
    svc.handle(m.EnterIvr(call_id=cid, menu="main", occurred_at=at(2), expected_version=1))
    with pytest.raises(ConcurrencyConflict):
        svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(3),
                               expected_version=1))
    assert get(lianxin, cid).version == 2


def test_unknown_aggregates_and_bad_values_are_reported(lianxin):
    svc = lianxin.commands
    from uuid import uuid4

    with pytest.raises(NotFound):
        svc.handle(m.AnswerCall(call_id=uuid4(), leg_id="x"))
    with pytest.raises(NotFound):
        svc.handle(m.MakeReady(employee_no="nobody"))
    with pytest.raises(InvalidValue):
        svc.handle(m.RegisterAgent(employee_no="1", name="x", skills={"a": 99}))
    svc.handle(m.RegisterAgent(employee_no="1", name="x"))
    with pytest.raises(InvariantViolation, match="already registered"):
        svc.handle(m.RegisterAgent(employee_no="1", name="y"))


def test_a_work_order_opened_from_a_call_is_linked_both_ways_and_retry_safe(lianxin):
    svc = lianxin.commands
    cid = queued_call(svc)
    cmd = m.OpenWorkOrder(type="fault_repair", summary="no power", call_id=cid,
                          location={"feeder": "F1"}, command_id="wo-key-1", occurred_at=at(30))
    first = svc.handle(cmd)
    second = svc.handle(cmd)
    assert second.duplicate and second.aggregate_id == first.aggregate_id
    wo = get(lianxin, first.aggregate_id)
    assert wo.call_ids == [cid] and get(lianxin, cid).work_orders == [wo.id]
    assert wo.customer_ref == get(lianxin, cid).caller_hash != ""
    svc.handle(m.DispatchWorkOrder(work_order_id=wo.id, department="ops", occurred_at=at(60)))
    with pytest.raises(InvariantViolation):
        svc.handle(m.CloseWorkOrder(work_order_id=wo.id, occurred_at=at(61)))
    svc.handle(m.ResolveWorkOrder(work_order_id=wo.id, resolution="fixed", occurred_at=at(90)))
    svc.handle(m.CloseWorkOrder(work_order_id=wo.id, occurred_at=at(91)))
    assert get(lianxin, wo.id).status == WorkOrderStatus.CLOSED


def test_caller_number_is_pseudonymised_consistently(lianxin):
    svc = lianxin.commands
    a = svc.handle(m.OfferCall(external_id="p1", dialed_number="95598",
                               caller_number="13800000000")).aggregate_id
    b = svc.handle(m.OfferCall(external_id="p2", dialed_number="95598",
                               caller_number="13800000000")).aggregate_id
    c = svc.handle(m.OfferCall(external_id="p3", dialed_number="95598",
                               caller_number="13900000000")).aggregate_id
    ha, hb, hc = (get(lianxin, x).caller_hash for x in (a, b, c))
    assert ha == hb != hc and "13800000000" not in ha


def _consulting_call(svc):
    """1001 talks with the caller, holds them and calls 1002."""
    staff(svc, "1001", "1002")
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", leg_id="leg-1", occurred_at=at(6)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(9)))
    svc.handle(m.HoldCall(call_id=cid, occurred_at=at(20)))
    svc.handle(m.AlertConsult(call_id=cid, employee_no="1002", leg_id="consult-1",
                              command_id="ari:consult-alert:1", occurred_at=at(21)))
    return cid


def test_a_consult_leg_moves_the_colleague_through_ringing_and_on_call_then_hands_over(lianxin):
    svc = lianxin.commands
    cid = _consulting_call(svc)
    colleague = get(lianxin, agent_id_for("1002"))
    assert colleague.state == AgentState.RINGING and colleague.call_id == cid
    assert colleague.state_since == at(21)
    again = svc.handle(m.AlertConsult(call_id=cid, employee_no="1002", leg_id="consult-1",
                                      command_id="ari:consult-alert:1", occurred_at=at(21)))
    assert again.duplicate and again.new_events == 0
    svc.handle(m.AnswerConsult(call_id=cid, command_id="ari:consult-answer:1",
                               occurred_at=at(26)))
    assert svc.handle(m.AnswerConsult(call_id=cid, command_id="ari:consult-answer:1",
                                      occurred_at=at(26))).duplicate
    assert get(lianxin, agent_id_for("1002")).state == AgentState.ON_CALL
    assert get(lianxin, agent_id_for("1001")).state == AgentState.ON_CALL
    # the target must be the colleague on that leg
    with pytest.raises(InvalidValue, match="is not agent 1003"):
        svc.handle(m.TransferCall(call_id=cid, kind="attended", target_type="agent",
                                  target="1003", to_leg_id="consult-1", occurred_at=at(40)))
    svc.handle(m.TransferCall(call_id=cid, kind="attended", target_type="agent", target="1002",
                              to_leg_id="consult-1", occurred_at=at(40)))
    call = get(lianxin, cid)
    assert call.state == CallState.CONNECTED and call.agent_id == agent_id_for("1002")
    assert call.legs["consult-1"]["answered_at"] == at(26)
    first = get(lianxin, agent_id_for("1001"))
    assert first.state == AgentState.WRAP_UP and first.state_since == at(40)
    colleague = get(lianxin, agent_id_for("1002"))
    assert colleague.state == AgentState.ON_CALL and colleague.state_since == at(26)
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(90)))
    assert get(lianxin, agent_id_for("1002")).state == AgentState.WRAP_UP
    svc.handle(m.CompleteWrapUp(call_id=cid, employee_no="1002", occurred_at=at(100)))


def test_a_missed_or_ended_consultation_releases_the_colleague(lianxin):
    svc = lianxin.commands
    cid = _consulting_call(svc)
    svc.handle(m.ReportConsultMissed(call_id=cid, outcome="no_answer", occurred_at=at(36)))
    colleague = get(lianxin, agent_id_for("1002"))
    assert colleague.state == AgentState.NOT_READY and colleague.reason == "ring_no_answer"
    svc.handle(m.MakeReady(employee_no="1002", occurred_at=at(37)))
    svc.handle(m.AlertConsult(call_id=cid, employee_no="1002", occurred_at=at(38)))
    svc.handle(m.AnswerConsult(call_id=cid, occurred_at=at(40)))
    svc.handle(m.EndConsult(call_id=cid, ended_by="agent", wrap_up=False, occurred_at=at(50)))
    colleague = get(lianxin, agent_id_for("1002"))
    assert colleague.state == AgentState.READY and colleague.ready_since == at(50)
    assert get(lianxin, cid).consult_leg_id is None
    # a colleague ringing when the caller hangs up is free again, not to blame
    svc.handle(m.AlertConsult(call_id=cid, employee_no="1002", occurred_at=at(55)))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(58)))
    assert get(lianxin, agent_id_for("1002")).state == AgentState.READY
    assert get(lianxin, agent_id_for("1001")).state == AgentState.WRAP_UP


@pytest.mark.parametrize("colleague_state", ["not_ready", "wrap_up"])
def test_a_colleague_not_ready_or_in_wrap_up_can_be_consulted_and_take_the_call(
        lianxin, colleague_state):
    # "ready only" is the ACD's rule; a consultation is not routing
    svc = lianxin.commands
    staff(svc, "1001", "1002")
    if colleague_state == "wrap_up":
        earlier = queued_call(svc, "earlier")
        svc.handle(m.AlertAgent(call_id=earlier, employee_no="1002", occurred_at=at(6)))
        svc.handle(m.AnswerCall(call_id=earlier, occurred_at=at(7)))
        svc.handle(m.EndCall(call_id=earlier, hung_up_by="agent", occurred_at=at(8)))
    else:
        svc.handle(m.MakeNotReady(employee_no="1002", reason="meal", occurred_at=at(5)))
    assert get(lianxin, agent_id_for("1002")).state.value == colleague_state
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(6)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(9)))
    svc.handle(m.AlertConsult(call_id=cid, employee_no="1002", leg_id="seat", occurred_at=at(21)))
    svc.handle(m.AnswerConsult(call_id=cid, leg_id="seat", occurred_at=at(21)))
    svc.handle(m.TransferCall(call_id=cid, kind="attended", target_type="agent", target="1002",
                              to_leg_id="seat", occurred_at=at(21)))
    call = get(lianxin, cid)
    assert (call.state, call.agent_id, call.leg_id) == (
        CallState.CONNECTED, agent_id_for("1002"), "seat")
    assert get(lianxin, agent_id_for("1002")).state == AgentState.ON_CALL
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(60)))
    assert get(lianxin, cid).state == CallState.ENDED  # answered, not abandoned
    assert get(lianxin, agent_id_for("1002")).state == AgentState.WRAP_UP


def test_consulting_a_colleague_who_is_logged_out_or_busy_changes_nothing(lianxin):
    svc = lianxin.commands
    staff(svc, "1001", "1002")
    svc.handle(m.RegisterAgent(employee_no="1005", name="Agent 1005", skills={}))
    other = queued_call(svc, "other")
    svc.handle(m.AlertAgent(call_id=other, employee_no="1002", occurred_at=at(6)))
    svc.handle(m.AnswerCall(call_id=other, occurred_at=at(7)))  # 1002 is on another call
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(6)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(9)))
    before = lianxin.app.max_position()
    for colleague, state in (("1002", "on_call"), ("1005", "logged_out")):
        with pytest.raises(InvariantViolation, match=state):
            svc.handle(m.AlertConsult(call_id=cid, employee_no=colleague, occurred_at=at(21)))
        with pytest.raises(InvariantViolation, match="no consult leg"):
            svc.handle(m.AnswerConsult(call_id=cid, occurred_at=at(22)))
    assert lianxin.app.max_position() == before
    assert get(lianxin, cid).consult_leg_id is None


def test_a_phone_transfer_to_a_busy_colleague_leaves_the_call_with_the_first_agent(lianxin):
    # what the Stasis tracker submits for an attended transfer made on the
    # agent's phone: if the colleague cannot be rung, nothing of it applies
    svc = lianxin.commands
    staff(svc, "1001", "1002")
    other = queued_call(svc, "other")
    svc.handle(m.AlertAgent(call_id=other, employee_no="1002", occurred_at=at(6)))
    svc.handle(m.AnswerCall(call_id=other, occurred_at=at(7)))
    cid = queued_call(svc)
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", leg_id="leg-1", occurred_at=at(6)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(9)))
    before = lianxin.app.max_position()
    results = svc.handle_many([
        m.AlertConsult(call_id=cid, employee_no="1002", leg_id="seat", occurred_at=at(21)),
        m.AnswerConsult(call_id=cid, leg_id="seat", occurred_at=at(21)),
        m.TransferCall(call_id=cid, kind="attended", target_type="agent", target="1002",
                       to_leg_id="seat", occurred_at=at(21))])
    assert all(isinstance(r, InvariantViolation) for r in results)
    assert lianxin.app.max_position() == before
    call = get(lianxin, cid)
    assert (call.state, call.agent_id, call.leg_id) == (
        CallState.CONNECTED, agent_id_for("1001"), "leg-1")
    assert get(lianxin, agent_id_for("1001")).state == AgentState.ON_CALL
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(60)))
    assert get(lianxin, cid).state == CallState.ENDED


def test_the_call_timeline_shows_the_consult_leg_and_the_hand_over(lianxin):
    from queries.calls import call_events, get_call

    svc = lianxin.commands
    cid = _consulting_call(svc)
    svc.handle(m.AnswerConsult(call_id=cid, occurred_at=at(26)))
    lianxin.read_models().run_once()
    row = get_call(lianxin, cid)
    assert (row["state"], row["employee_no"]) == ("held", "1001")  # still the first agent's
    svc.handle(m.TransferCall(call_id=cid, kind="attended", target_type="agent", target="1002",
                              to_leg_id="consult-1", occurred_at=at(40)))
    lianxin.read_models().run_once()
    row = get_call(lianxin, cid)
    assert (row["state"], row["employee_no"], row["transfers"]) == ("connected", "1002", 1)
    events = call_events(lianxin, cid)
    assert [e["event_type"] for e in events][-4:] == [
        "Held", "ConsultAlerted", "ConsultAnswered", "Transferred"]
    alerted, answered, xfer = events[-3:]
    assert (alerted["offset_s"], answered["offset_s"], xfer["offset_s"]) == (19, 24, 38)
    assert alerted["fields"]["leg_id"] == "consult-1"
    assert alerted["fields"]["agent_id"] == str(agent_id_for("1002"))
    assert xfer["fields"]["to_leg_id"] == "consult-1"
    assert xfer["fields"]["to_agent_id"] == str(agent_id_for("1002"))
