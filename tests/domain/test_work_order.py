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


def test_an_address_is_personal_data_and_the_grid_is_not():
    from domain.work_order import location_refs

    refs = location_refs({"feeder": "F12", "address": "8 Pine Rd"}, "key-1")
    wo = opened(location={"feeder": "F12", "address": "8 Pine Rd"}, location_refs=refs)
    (event,) = wo.collect_events()
    assert event.schema_version == 2
    assert event.location == {"feeder": "F12"}
    assert event.pii["location"] == {"address": "8 Pine Rd"}
    assert set(event.location_refs) == {"address"}
    non_pii = {k: v for k, v in event.__dict__.items() if k != "pii"}
    assert "pine" not in repr(non_pii).lower()
    # The aggregate (in memory, never stored) still knows the whole location.
    assert wo.location == {"feeder": "F12", "address": "8 Pine Rd"}
    with pytest.raises(InvalidValue, match="location_refs"):
        opened(location={"feeder": "F12"}, location_refs={"feeder": "x"})


def test_address_pseudonyms_are_keyed_and_normalised():
    from domain.work_order import fault_location_keys, location_refs

    one = location_refs({"address": "8 Pine Rd", "feeder": "F1"}, "key-1")
    assert list(one) == ["address"] and "pine" not in one["address"]
    assert one == location_refs({"address": "  8 PINE   rd "}, "key-1")
    assert one != location_refs({"address": "8 Pine Rd"}, "key-2")  # per installation
    keys = fault_location_keys({"address": "8 Pine Rd", "transformer": " T-88 "}, one,
                               ("transformer", "feeder", "address"))
    assert keys == [("transformer:t-88", None),
                    (f"address#{one['address']}", "address:8 pine rd")]


def test_a_fault_location_is_never_keyed_by_a_clear_address():
    from domain.work_order import FaultLocation, fault_location_id

    with pytest.raises(InvalidValue, match="pseudonym"):
        FaultLocation.start("address:8 pine rd", uuid4(), at(0))
    spot = FaultLocation.start("address#0123abcd", uuid4(), at(0))
    assert spot.id == fault_location_id("address#0123abcd")
    (created,) = spot.collect_events()
    assert created.schema_version == 2 and created.pii == {}


def _urgeable() -> WorkOrder:
    wo = opened()
    wo.set_deadlines({"dispatch": at(60)}, {"dispatch": "hours"}, "opened", "p1",
                     occurred_at=at(1))
    return wo


def _cadence(escalate_after: int = 2, to: tuple[str, ...] = ("supervisor", "manager")):
    from domain.deadlines import Cadence, Duration

    return Cadence(Duration(1, "hours"), Duration(4, "hours"), escalate_after, to)


def test_urging_checks_its_values_before_the_orders_state():
    wo = _urgeable()
    before = wo.version
    # a stage not in play (state) and a malformed urging (value): the value is reported
    bad = dict(stage="callback", seq=1, due_at=at(70), department="ops", cadence=_cadence(),
               occurred_at=at(70))
    with pytest.raises(InvariantViolation):
        wo.urge(**bad)
    for change in ({"seq": 1, "first_seq": 2}, {"due_at": datetime(2026, 11, 23, 10, 0)},
                   {"first_due_at": datetime(2026, 11, 23, 10, 0)},
                   {"department": ""}, {"occurred_at": datetime(2026, 11, 23, 10, 0)},
                   {"cadence": _cadence(escalate_after=0)}):
        with pytest.raises(InvalidValue):
            wo.urge(**{**bad, **change})
    assert wo.version == before and wo.urgings == {"dispatch": 0}


def test_urging_escalates_up_the_cadence_chain_and_stops_at_its_top():
    wo = _urgeable()
    cadence = _cadence()
    for seq in range(1, 8):
        wo.urge("dispatch", seq, at(60 + seq), "dispatch", cadence, occurred_at=at(60 + seq))
    escalated = [(e.level, e.to, e.after_urgings) for e in wo.collect_events()
                 if type(e).__name__ == "Escalated"]
    assert escalated == [(1, "supervisor", 2), (2, "manager", 4)]
