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
