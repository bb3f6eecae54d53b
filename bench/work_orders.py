"""Work-order benchmark: what deadlines, the duplicate index and the timers
cost, each as a ratio to a plain one-event command measured in the same run
on the same database.

    .venv/bin/python -m bench.work_orders --store sqlite
    .venv/bin/python -m bench.work_orders --store postgres --orders 1000

Measured (all through ``lianxin.wiring.build()`` and ``handle_many``):

* baseline: ``NoteProgress`` on existing orders (one event, no policy work);
* open: fault orders at distinct transformers (Opened + DeadlinesSet +
  the FaultLocation index: three events and the policy arithmetic);
* first tick: the timer visits every order once (nothing due yet);
* idle tick: nothing due, every order's next moment known: the cost a
  ``lianxin serve`` loop pays every 15 s with that many open orders;
* catch-up tick: half an hour without a tick, so every order has missed
  urging moments (and an escalation level): they fire as one merged urging
  per deadline (recording how many moments were missed) and one escalation.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta, timezone

from bench._common import bench_settings
from commands import messages as m
from commands.timers import WorkOrderTimers
from domain.work_order import work_order_id_for
from lianxin.wiring import build

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(store: str, orders: int) -> dict:
    with bench_settings(store) as settings:
        lx = build(settings)
        try:
            opens = [m.OpenWorkOrder(type="fault_repair", summary="no power", command_id=f"o{i}",
                                     location={"transformer": f"T-{i}"}, occurred_at=T0)
                     for i in range(orders)]
            t_open = _timed(lambda: lx.commands.handle_many(opens))
            ids = [work_order_id_for(f"o{i}") for i in range(orders)]
            notes = [m.NoteProgress(work_order_id=i, note="called the crew", occurred_at=T0)
                     for i in ids]
            t_base = _timed(lambda: lx.commands.handle_many(notes))
            timers = WorkOrderTimers(lx)
            t_first = _timed(lambda: timers.tick(T0 + timedelta(minutes=1)))
            t_idle = _timed(lambda: timers.tick(T0 + timedelta(minutes=2)))
            report = None

            def catch_up() -> None:
                nonlocal report
                report = timers.tick(T0 + timedelta(minutes=30, seconds=1))

            t_catch = _timed(catch_up)
            timers.close()
        finally:
            lx.close()
    per_base = t_base / orders
    assert report is not None
    return {
        "store": store, "orders": orders,
        "baseline_note_progress_ms": round(per_base * 1000, 3),
        "open_fault_order_vs_baseline": round(t_open / orders / per_base, 2),
        "first_tick_per_order_vs_baseline": round(t_first / orders / per_base, 2),
        "idle_tick_total_vs_one_baseline_command": round(t_idle / per_base, 2),
        "catch_up_urgings": report.urged, "catch_up_escalations": report.escalated,
        "catch_up_per_urging_vs_baseline": round(t_catch / max(report.urged, 1) / per_base, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--orders", type=int, default=2000)
    args = p.parse_args()
    print(json.dumps(run(args.store, args.orders), indent=2))


if __name__ == "__main__":
    main()
