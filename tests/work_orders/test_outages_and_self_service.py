"""Outage notices: flagged when published less than 7 days ahead; a fault
call from a covered area during the outage is answered as information (no
repair order); the IVR reads outages and order statuses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands import messages as m
from commands import work_order_messages as wm
from domain.errors import InvalidValue, InvariantViolation
from queries import self_service
from queries import work_orders as q
from tests.work_orders.conftest import events, local, open_order

NOW = local(2026, 11, 23, 9)


def _publish(lx, ref: str, start, end, areas=("feeder:F12",), kind="planned", at=NOW):
    return lx.commands.handle(wm.PublishOutage(reference=ref, kind=kind, areas=list(areas),
                                               start=start, end=end, reason="line upgrade",
                                               occurred_at=at, command_id=f"pub-{ref}"))


def test_notices_less_than_seven_days_ahead_are_flagged(lx):
    _publish(lx, "TD-1", NOW + timedelta(days=7), NOW + timedelta(days=7, hours=6))
    _publish(lx, "TD-2", NOW + timedelta(days=6, hours=23), NOW + timedelta(days=7, hours=2),
             areas=("transformer:T-3",))
    q.fresh(lx)
    board = {o["reference"]: o for o in q.outage_board(lx, now=NOW)}
    assert board["TD-1"]["short_notice"] is False
    assert board["TD-2"]["short_notice"] is True
    assert [e.short_notice for e in events(lx, name="Published")] == [False, True]
    again = _publish(lx, "TD-1", NOW + timedelta(days=7), NOW + timedelta(days=7, hours=6))
    assert again.duplicate
    with pytest.raises(InvariantViolation, match="already published"):
        lx.commands.handle(wm.PublishOutage(reference="TD-1", kind="planned", areas=["x"],
                                            start=NOW, end=NOW + timedelta(hours=1), reason="r"))
    with pytest.raises(InvalidValue, match="ends after"):
        _publish(lx, "TD-3", NOW + timedelta(hours=2), NOW + timedelta(hours=1))


def test_fault_calls_from_a_covered_area_during_an_outage_get_information(lx):
    start, end = NOW + timedelta(hours=1), NOW + timedelta(hours=5)
    _publish(lx, "TD-9", start, end, areas=["feeder:F12", "area:Xihu Garden"])
    during = open_order(lx, "fault_repair", start + timedelta(minutes=30), "in",
                        location={"feeder": "f12", "address": "3 Lake Rd"})
    assert during.aggregate_id is None
    assert during.new_events == 1  # the answer, on the outage (no work order)
    assert during.result.outcome == "outage_information"
    assert during.result.outage["reference"] == "TD-9"
    assert during.result.outage["end"] == end.isoformat()
    assert events(lx, name="Opened") == []
    # Before it starts, after it ends, elsewhere, or not a fault: an order as usual.
    before = open_order(lx, "fault_repair", start - timedelta(minutes=1), "before",
                        location={"feeder": "F12"})
    after = open_order(lx, "fault_repair", end + timedelta(minutes=1), "after",
                       location={"feeder": "F99"})
    complaint = open_order(lx, "complaint", start + timedelta(minutes=30), "cmp",
                           location={"feeder": "F12"})
    assert None not in (before.aggregate_id, after.aggregate_id, complaint.aggregate_id)
    # A cancelled outage no longer answers calls.
    lx.commands.handle(wm.CancelOutage(reference="TD-9", reason="postponed",
                                       occurred_at=start))
    again = open_order(lx, "fault_repair", start + timedelta(minutes=40), "again",
                       location={"area": "xihu garden"})
    assert again.aggregate_id is not None


def test_answers_given_from_a_notice_are_recorded_on_the_outage(lx):
    start, end = NOW + timedelta(hours=1), NOW + timedelta(hours=5)
    outage_id = _publish(lx, "TD-40", start, end, areas=["feeder:F40"]).aggregate_id
    call_id = lx.commands.handle(m.OfferCall(external_id="oq-1", dialed_number="95598",
                                             occurred_at=start)).aggregate_id
    at = start + timedelta(minutes=10)
    first = open_order(lx, "fault_repair", at, "oq-1", call_id=call_id,
                       location={"feeder": "F40"}, customer={"phone": "13900000000"},
                       summary="lights out at 5 Hill Rd")
    assert first.result.outcome == "outage_information"
    # A retry of the same report answers again and records nothing new.
    again = open_order(lx, "fault_repair", at, "oq-1", call_id=call_id,
                       location={"feeder": "F40"}, summary="lights out at 5 Hill Rd")
    assert again.result.outcome == "outage_information" and again.new_events == 0
    open_order(lx, "fault_repair", at + timedelta(minutes=5), "oq-2",
               location={"feeder": "F40"}, channel="app")
    answered = events(lx, outage_id, "EnquiryAnswered")
    assert [(e.call_id, e.area, e.work_order_type, e.channel, e.occurred_at)
            for e in answered] == [
        (call_id, "feeder:f40", "fault_repair", "phone", at),
        (None, "feeder:f40", "fault_repair", "app", at + timedelta(minutes=5))]
    assert answered[0].customer_ref and "13900000000" not in answered[0].customer_ref
    assert answered[0].pii["summary"] == "lights out at 5 Hill Rd"
    assert lx.app.repository.get(outage_id).enquiries == 2
    # Counted on the board and listed for audit, without the personal data.
    q.fresh(lx)
    (board,) = [o for o in q.outage_board(lx, now=at) if o["reference"] == "TD-40"]
    assert board["enquiries"] == 2
    listed = q.outage_enquiries(lx, "TD-40")
    assert [a["call_id"] for a in listed["answered"]] == [str(call_id), None]
    assert "Hill" not in str(listed) and "139" not in str(listed)


def test_the_ivr_reads_outages_and_order_status(lx):
    start, end = NOW + timedelta(days=8), NOW + timedelta(days=8, hours=4)
    _publish(lx, "TD-20", start, end, areas=["feeder:F12"])
    _publish(lx, "TD-21", NOW - timedelta(hours=1), NOW + timedelta(hours=1),
             areas=["feeder:F12"], kind="temporary", at=NOW - timedelta(hours=2))
    found = self_service.outage_info(lx, "F12", at=NOW)
    assert [(o["reference"], o["kind"], o["current"]) for o in found] == [
        ("TD-21", "temporary", True), ("TD-20", "planned", False)]
    later = self_service.outage_info(lx, "feeder:f12", at=NOW + timedelta(hours=2))
    assert [o["reference"] for o in later] == ["TD-20"]
    assert self_service.outage_info(lx, "F13", at=NOW) == []
    # Order status by the number the caller keys in.
    wo_id = open_order(lx, "complaint", NOW, "ivr-1").aggregate_id
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department="billing",
                                           occurred_at=NOW + timedelta(minutes=5)))
    number = lx.app.repository.get(wo_id).number
    assert self_service.work_order_status(lx, number) == "dispatched"
    assert self_service.work_order_status(lx, "0000") is None
    assert self_service.work_order_status(lx, "12; DROP TABLE") is None


def test_the_stasis_self_service_desk_speaks_our_answers(lx):
    import asyncio

    from telephony_adapter.stasis.selfservice import SelfServiceDesk

    _publish(lx, "TD-30", NOW - timedelta(hours=1), NOW + timedelta(days=30),
             areas=["feeder:F40"], at=NOW - timedelta(hours=2))
    wo_id = open_order(lx, "complaint", NOW, "desk").aggregate_id
    number = lx.app.repository.get(wo_id).number
    desk = SelfServiceDesk(lx)
    status = asyncio.run(desk("work_order_status", number))
    assert status.result == "open" and "custom/status-open" in status.sounds
    outage = asyncio.run(desk("outage_info", "F40"))
    assert outage.result.startswith("1 outage")
