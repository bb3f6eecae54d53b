"""Property: whatever calls happen, every offered call lands in exactly one
outcome, and per 30-minute interval the warehouse's counts equal what the
generated scripts meant (offered = answered + abandoned + other exits)."""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands import messages as m
from lianxin.wiring import build
from tests.conftest import make_settings
from warehouse import kpis
from warehouse.service import load

CST = timezone(timedelta(hours=8))
BASE = datetime(2026, 4, 1, 8, 0, tzinfo=CST)
PATHS = {  # path -> the outcome KPI it must count in
    "answered": "answered", "rna_then_answered": "answered", "abandon_queue": "abandoned",
    "abandon_ringing": "abandoned", "abandon_ivr": "abandoned", "self_service": "self_service",
    "system_hangup": "other_exits", "waiting": "in_progress",
}
OUTCOMES = ["answered", "abandoned", "self_service", "other_exits", "in_progress"]

call_st = st.tuples(st.sampled_from(sorted(PATHS)), st.integers(0, 240 * 60),
                    st.integers(1, 300), st.integers(1, 600))


def _play(svc, i: int, path: str, start_s: int, wait: int, talk: int) -> None:
    t = BASE + timedelta(seconds=start_s)
    s = lambda n: t + timedelta(seconds=n)  # noqa: E731
    c = svc.handle(m.OfferCall(external_id=f"p{i}", dialed_number="95598",
                               caller_number=f"138{i:08d}", occurred_at=t)).aggregate_id
    if path in ("abandon_ivr", "self_service", "system_hangup"):
        svc.handle(m.EnterIvr(call_id=c, menu="main", occurred_at=s(1)))
        if path == "self_service":
            svc.handle(m.UseSelfService(call_id=c, service="bill", occurred_at=s(2)))
        svc.handle(m.EndCall(call_id=c, hung_up_by="system" if path == "system_hangup" else "caller",
                             occurred_at=s(wait)))
        return
    svc.handle(m.QueueCall(call_id=c, queue=f"q{i % 3}", occurred_at=s(1)))
    if path == "waiting":
        return
    if path == "abandon_queue":
        svc.handle(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=s(1 + wait)))
        return
    agents = [f"a{i}", f"b{i}"]
    for no in agents:
        svc.handle(m.RegisterAgent(employee_no=no, name=no, occurred_at=BASE))
        svc.handle(m.LogIn(employee_no=no, endpoint=f"SIP/{no}", occurred_at=BASE))
        svc.handle(m.MakeReady(employee_no=no, occurred_at=BASE))
    svc.handle(m.AlertAgent(call_id=c, employee_no=agents[0], occurred_at=s(1 + wait)))
    if path == "abandon_ringing":
        svc.handle(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=s(3 + wait)))
        return
    if path == "rna_then_answered":
        svc.handle(m.ReportRingNoAnswer(call_id=c, occurred_at=s(16 + wait)))
        svc.handle(m.AlertAgent(call_id=c, employee_no=agents[1], occurred_at=s(17 + wait)))
    svc.handle(m.AnswerCall(call_id=c, occurred_at=s(20 + wait)))
    svc.handle(m.EndCall(call_id=c, hung_up_by="agent", occurred_at=s(20 + wait + talk)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(call_st, min_size=1, max_size=25), batch=st.integers(3, 60))
def test_offered_splits_into_outcomes_per_interval(calls, batch):
    with tempfile.TemporaryDirectory() as tmp:
        lx = build(make_settings(Path(tmp) / "home"))
        try:
            expected: dict[datetime, Counter] = {}
            for i, (path, start_s, wait, talk) in enumerate(calls):
                _play(lx.commands, i, path, start_s, wait, talk)
                offered = BASE + timedelta(seconds=start_s)
                bucket = offered.replace(minute=offered.minute - offered.minute % 30, second=0,
                                         tzinfo=None)
                expected.setdefault(bucket, Counter()).update(["offered", PATHS[path]])
            load(lx, batch_size=batch)
            df = kpis(["offered", *OUTCOMES], interval="30m", directory=lx.settings.warehouse_dir)
        finally:
            lx.close()
    got = {r["interval_start"]: Counter({k: v for k, v in r.items() if k != "interval_start" and v})
           for r in df.to_dicts()}
    assert got == expected
    for r in df.to_dicts():
        assert r["offered"] == sum(r[k] for k in OUTCOMES)
