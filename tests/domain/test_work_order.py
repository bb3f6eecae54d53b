"""The basic work-order lifecycle and its invariants (deadlines, urging and
callbacks have their own tests under tests/work_orders)."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.errors import InvalidValue, InvariantViolation
from domain.work_order import WorkOrder, WorkOrderStatus

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def at(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def opened(**kw) -> WorkOrder:
    args = dict(type="fault_repair", category="no_power", channel="phone",
                summary="No power since 7am at Building 3", occurred_at=at(0),
                customer={"name": "Wang", "phone": "13900000000"},
                location={"feeder": "F12", "transformer": "T-88"})
    args.update(kw)
    return WorkOrder.open(**args)


def test_open_validates_type_channel_priority():
    with pytest.raises(InvalidValue, match="type"):
        opened(type="gossip")
    with pytest.raises(InvalidValue, match="channel"):
        opened(channel="pigeon")
    with pytest.raises(InvalidValue, match="priority"):
        opened(priority="whenever")
    with pytest.raises(InvalidValue, match="summary"):
        opened(summary=" ")


def test_personal_data_only_in_pii_and_numbers_are_dated():
    wo = opened()
    (event,) = wo.collect_events()
    assert event.pii["customer"]["phone"] == "13900000000"
    assert event.pii["summary"].startswith("No power")
    non_pii = {k: v for k, v in event.__dict__.items() if k != "pii"}
    assert "13900000000" not in repr(non_pii) and "Wang" not in repr(non_pii)
    assert wo.number.startswith("20261123") and len(wo.number) == 16


def test_same_key_gives_the_same_work_order_id():
    assert opened(key="call-1/1").id == opened(key="call-1/1").id
    assert opened().id != opened().id


def test_dispatch_accept_progress_resolve_close():
    wo = opened()
    wo.dispatch("grid-ops-north", at(3))
    with pytest.raises(InvariantViolation, match="dispatched to"):
        wo.accept("billing", at(4))
    wo.accept("grid-ops-north", at(4))
    wo.note_progress("crew on site", at(40))
    wo.resolve("repaired", at(90), note="fuse replaced")
    wo.close(at(100))
    assert wo.status == WorkOrderStatus.CLOSED
    assert (wo.dispatched_at, wo.accepted_at, wo.resolved_at) == (at(3), at(4), at(90))


def test_closing_an_unresolved_work_order_is_refused():
    wo = opened()
    with pytest.raises(InvariantViolation, match="resolve it first"):
        wo.close(at(1))
    wo.dispatch("d", at(1))
    with pytest.raises(InvariantViolation):
        wo.close(at(2))


def test_accept_needs_a_dispatch_and_closed_orders_take_no_progress():
    wo = opened()
    with pytest.raises(InvariantViolation):
        wo.accept("d", at(1))
    wo.resolve("answered", at(2))
    wo.close(at(3))
    with pytest.raises(InvariantViolation):
        wo.note_progress("late note", at(4))
    with pytest.raises(InvariantViolation):
        wo.dispatch("d", at(4))


def test_callbacks_need_a_resolution_and_satisfaction_needs_a_reached_customer():
    wo = opened()
    with pytest.raises(InvariantViolation):
        wo.record_callback("reached", at(1))
    wo.resolve("repaired", at(10))
    with pytest.raises(InvalidValue):
        wo.record_callback("no_answer", at(20), satisfaction=5)
    with pytest.raises(InvalidValue):
        wo.record_callback("voicemail", at(20))
    wo.record_callback("no_answer", at(20), reason="no pick-up")
    wo.record_callback("reached", at(30), satisfaction=2)
    assert [c["result"] for c in wo.callbacks] == ["no_answer", "reached"]


def test_reopen_returns_the_order_to_its_department():
    wo = opened()
    wo.dispatch("grid-ops-north", at(1))
    wo.resolve("repaired", at(50))
    wo.reopen("power failed again", at(60))
    assert wo.status == WorkOrderStatus.DISPATCHED and wo.reopen_count == 1
    with pytest.raises(InvariantViolation):
        wo.reopen("twice", at(61))


def test_calls_link_once():
    wo = opened(call_id=None)
    c = uuid4()
    wo.link_call(c, at(1))
    with pytest.raises(InvariantViolation):
        wo.link_call(c, at(2))
