"""Calls the ACD moved to another queue are counted: overflows per call in
`fact_call`, and the overflow_rate KPI over the calls that queued."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from commands import messages as m
from warehouse import kpis
from warehouse.service import load

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_overflowed_calls_are_counted_apart_from_requeues(sqlite_lianxin):
    lx = sqlite_lianxin
    svc = lx.commands

    def offered(ext: str):
        cid = svc.handle(m.OfferCall(external_id=ext, dialed_number="95598",
                                     occurred_at=at(0))).aggregate_id
        svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(1)))
        return cid

    moved = offered("o-1")  # overflowed, then abandoned in the second queue
    svc.handle(m.QueueCall(call_id=moved, queue="general", reason="overflow",
                           from_queue="power", occurred_at=at(61)))
    svc.handle(m.EndCall(call_id=moved, hung_up_by="caller", cause="normal", occurred_at=at(90)))
    requeued = offered("o-2")  # back to the same queue: not an overflow
    svc.handle(m.QueueCall(call_id=requeued, queue="power", reason="requeue", occurred_at=at(30)))
    offered("o-3")  # still waiting
    never = svc.handle(m.OfferCall(external_id="o-4", dialed_number="95598",
                                   occurred_at=at(0))).aggregate_id  # left in the IVR
    svc.handle(m.EndCall(call_id=never, hung_up_by="caller", cause="normal", occurred_at=at(5)))
    load(lx)
    df = kpis(["offered", "overflow_rate"], directory=lx.settings.warehouse_dir)
    assert df["offered"][0] == 4
    assert df["overflow_rate"][0] == 1 / 3  # of the three calls that queued
    by_queue = kpis(["overflow_rate"], by="queue", directory=lx.settings.warehouse_dir)
    rates = dict(zip(by_queue["queue"], by_queue["overflow_rate"]))
    assert rates["power"] == 1 / 3  # attributed to the first queue the caller entered
