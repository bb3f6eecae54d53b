"""Repeated fault reports for the same place merge into the open order (the
caller is linked, nothing is dispatched twice); a wrong merge is split."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from commands import messages as m
from commands import work_order_messages as wm
from domain.errors import InvariantViolation, NotFound
from domain.work_order import WorkOrderStatus
from tests.work_orders.conftest import events, local, open_order, order

T0 = local(2026, 11, 23, 9)


def _call(lx, ext: str, caller: str):
    return lx.commands.handle(m.OfferCall(external_id=ext, dialed_number="95598",
                                          caller_number=caller, occurred_at=T0)).aggregate_id


def test_a_second_report_for_the_same_transformer_is_merged_not_dispatched_again(lx):
    first = open_order(lx, "fault_repair", T0, "r1", location={"transformer": "T-88"},
                       customer={"phone": "13900000001"})
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=first.aggregate_id,
                                           department="grid-north",
                                           occurred_at=T0 + timedelta(minutes=3)))
    call_id = _call(lx, "ch-2", "13900000002")
    # Same transformer written differently, and a feeder too: still the same fault.
    second = open_order(lx, "fault_repair", T0 + timedelta(minutes=40), "r2",
                        location={"transformer": " t-88 ", "feeder": "F7"},
                        call_id=call_id, customer={"phone": "13900000002"},
                        summary="lights out on my floor")
    assert second.aggregate_id == first.aggregate_id
    assert second.result.outcome == "merged"
    wo = order(lx, first.aggregate_id)
    assert list(wo.links) == [f"call:{call_id}"] and call_id in wo.call_ids
    assert len(events(lx, wo.id, "Dispatched")) == 1
    assert wo.id in lx.app.repository.get(call_id).work_orders
    (linked,) = events(lx, wo.id, "CallerLinked")
    assert linked.pii["customer"]["phone"] == "13900000002"
    assert "13900000002" not in repr({k: v for k, v in vars(linked).items() if k != "pii"})
    # A retried merge (same idempotency key) changes nothing.
    again = open_order(lx, "fault_repair", T0 + timedelta(minutes=41), "r2",
                       location={"transformer": "T-88"}, call_id=call_id)
    assert again.duplicate and len(order(lx, wo.id).links) == 1


def test_reports_outside_the_window_elsewhere_or_after_resolution_open_new_orders(lx):
    first = open_order(lx, "fault_repair", T0, "w1", location={"feeder": "F1"}).aggregate_id
    late = open_order(lx, "fault_repair", T0 + timedelta(hours=25), "w2",
                      location={"feeder": "F1"}).aggregate_id
    elsewhere = open_order(lx, "fault_repair", T0 + timedelta(minutes=5), "w3",
                           location={"feeder": "F2"}).aggregate_id
    complaint = open_order(lx, "complaint", T0 + timedelta(minutes=6), "w4",
                           location={"feeder": "F2"}).aggregate_id
    assert len({first, late, elsewhere, complaint}) == 4
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=elsewhere, resolution="fixed",
                                          occurred_at=T0 + timedelta(hours=1)))
    after = open_order(lx, "fault_repair", T0 + timedelta(hours=2), "w5",
                       location={"feeder": "F2"})
    assert after.result is None and after.aggregate_id not in (elsewhere, complaint)


def test_a_wrong_merge_is_split_into_its_own_order_with_its_own_promise(lx):
    target = open_order(lx, "fault_repair", T0, "s1",
                        location={"address": "8 Pine Rd"}).aggregate_id
    call_id = _call(lx, "ch-s", "13700000000")
    report_at = T0 + timedelta(minutes=10)
    open_order(lx, "fault_repair", report_at, "s2", location={"address": "8 pine rd"},
               call_id=call_id, summary="sparks from the meter box next door")
    link_id = f"call:{call_id}"
    out = lx.commands.handle(wm.SplitWorkOrder(work_order_id=target, link_id=link_id,
                                               occurred_at=T0 + timedelta(minutes=30),
                                               command_id="split-1"))
    new = order(lx, out.aggregate_id)
    assert new.id != target and new.split_from == target
    assert new.call_ids == [call_id] and new.location == {"address": "8 pine rd"}
    # The split-off caller's promise dates from their report, not the correction.
    assert new.deadlines["dispatch"] == report_at + timedelta(minutes=5)
    (opened,) = events(lx, new.id, "Opened")
    assert opened.pii["summary"] == "sparks from the meter box next door"
    old = order(lx, target)
    assert old.links[link_id]["split_to"] == new.id and call_id not in old.call_ids
    assert new.id in lx.app.repository.get(call_id).work_orders
    retry = lx.commands.handle(wm.SplitWorkOrder(work_order_id=target, link_id=link_id,
                                                 command_id="split-1"))
    assert retry.duplicate
    with pytest.raises(InvariantViolation, match="already split"):
        lx.commands.handle(wm.SplitWorkOrder(work_order_id=target, link_id=link_id))
    with pytest.raises(NotFound, match="link_id|not linked"):
        lx.commands.handle(wm.SplitWorkOrder(work_order_id=target, link_id="call:nope"))


def test_a_manual_merge_can_be_undone_by_splitting(lx):
    a = open_order(lx, "complaint", T0, "ma").aggregate_id
    b = open_order(lx, "complaint", T0 + timedelta(minutes=1), "mb").aggregate_id
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=a, department="billing",
                                           occurred_at=T0 + timedelta(minutes=2)))
    lx.commands.handle(wm.MergeWorkOrder(work_order_id=a, into=b,
                                         occurred_at=T0 + timedelta(minutes=5)))
    assert order(lx, a).status == WorkOrderStatus.MERGED
    with pytest.raises(InvariantViolation):
        lx.commands.handle(m.ResolveWorkOrder(work_order_id=a, resolution="x"))
    out = lx.commands.handle(wm.SplitWorkOrder(work_order_id=b, link_id=f"order:{a}",
                                               occurred_at=T0 + timedelta(minutes=9)))
    assert out.aggregate_id == a
    restored = order(lx, a)
    assert restored.status == WorkOrderStatus.DISPATCHED and restored.department == "billing"
    with pytest.raises(InvariantViolation, match="itself"):
        lx.commands.handle(wm.MergeWorkOrder(work_order_id=a, into=a))


def test_simultaneous_reports_of_one_fault_give_one_order(lx):
    results = []

    def report(i: int) -> None:
        results.append(open_order(lx, "fault_repair", T0 + timedelta(seconds=i), f"sim-{i}",
                                  location={"transformer": "T-500"}))

    threads = [threading.Thread(target=report, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.aggregate_id for r in results}) == 1
    assert sorted(r.result.outcome for r in results if r.result) == ["merged"] * 5
    assert len(order(lx, results[0].aggregate_id).links) == 5


def test_a_referred_duplicate_records_the_partner_on_the_open_order(lx):
    first = open_order(lx, "fault_repair", T0, "rf1", location={"feeder": "F30"}).aggregate_id
    out = lx.commands.handle(wm.ReceiveReferral(type="fault_repair", summary="12345 caller",
                                                location={"feeder": "F30"}, partner="12345",
                                                reference="SZ-9",
                                                occurred_at=T0 + timedelta(minutes=3)))
    assert out.aggregate_id == first and out.result.outcome == "merged"
    assert order(lx, first).referral == {"partner": "12345", "reference": "SZ-9"}
    lx.commands.handle(wm.SendReply(work_order_id=first, partner="12345", text="crew on site"))
    (reply,) = events(lx, first, "ReplySent")
    assert reply.reference == "SZ-9" and reply.pii == {"text": "crew on site"}
    with pytest.raises(InvariantViolation, match="no referral with 110"):
        lx.commands.handle(wm.SendReply(work_order_id=first, partner="110", text="x"))
