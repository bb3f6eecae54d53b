"""Read-side benchmark: how fast the projections follow the log, and what a
wallboard / agent board / call query costs, each next to a baseline measured
in the same run on the same data.

    .venv/bin/python -m bench.read_side --store sqlite
    .venv/bin/python -m bench.read_side --store postgres --quick

* projection rate: a fresh ProjectionRunner (every registered projection)
  catching up on the whole log, in events/s, against the rate of merely
  reading and decoding the same notifications (``select_notifications`` +
  ``mapper.to_domain_event``, same page size): the ratio is the share of the
  read path's capacity left once the projections do their work.
* queries: p50/p99 latency of the wallboard, agent board and one call's
  events, against opening a read-only connection and running ``SELECT 1``
  (the floor every query pays).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from typing import Any, Callable

from bench._common import agent_setup, bench_settings, call_lifecycle, percentile
from domain.call import call_id_for
from lianxin.wiring import build, projections_for
from projections.runner import ProjectionRunner
from queries.agents import list_agents
from queries.calls import call_events
from queries.wallboard import wallboard


def _load(lx: Any, calls: int, agents: list[str]) -> int:
    cmds = agent_setup(agents)
    for n in range(calls):
        cmds += call_lifecycle("rs", n, agents[n % len(agents)])
    for start in range(0, len(cmds), 2000):
        for outcome in lx.commands.handle_many(cmds[start:start + 2000]):
            if isinstance(outcome, BaseException):
                raise outcome
    return lx.app.max_position()


def _decode_rate(lx: Any, page: int) -> float:
    app, start, count = lx.app, 0, 0
    began = time.perf_counter()
    while True:
        notes = app.recorder.select_notifications(start=start, limit=page,
                                                  inclusive_of_start=False)
        if not notes:
            break
        for n in notes:
            app.mapper.to_domain_event(n)
        count += len(notes)
        start = notes[-1].id
    return count / (time.perf_counter() - began)


def _project_rate(lx: Any, page: int, tag: str) -> float:
    path = lx.settings.home / f"bench_read_models_{tag}.sqlite"
    runner = ProjectionRunner(lx.app, path, projections_for(lx.settings), page=page)
    try:
        began = time.perf_counter()
        count = runner.run_once()
        return count / (time.perf_counter() - began)
    finally:
        runner.close()


def _latencies(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return percentile(times, 50), percentile(times, 99)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="fewer calls, fewer repeats")
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args(argv)
    calls = 300 if args.quick else 2000
    repeat = 50 if args.quick else 300
    agents = [f"8{n:03d}" for n in range(20)]
    with bench_settings(args.store) as settings:
        lx = build(settings)
        try:
            head = _load(lx, calls, agents)
            decode = [_decode_rate(lx, args.page) for _ in range(2)][-1]
            project = _project_rate(lx, args.page, "a")
            runner = lx.read_models()
            runner.run_once()
            path = settings.read_models_path

            def floor() -> None:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                db.execute("SELECT 1").fetchone()
                db.close()

            call = call_id_for(f"rs-{calls // 2}")
            base = _latencies(floor, repeat)
            rows = [
                ("wallboard", _latencies(lambda: wallboard(lx), repeat)),
                ("agent board (20 agents)", _latencies(lambda: list_agents(lx), repeat)),
                ("call events (1 call)", _latencies(lambda: call_events(lx, call), repeat)),
            ]
        finally:
            lx.close()
    print(f"store={args.store} events={head} calls={calls} page={args.page}")
    print(f"{'figure':32} {'value':>14} {'baseline':>14} {'ratio':>7}")
    print(f"{'projection catch-up (events/s)':32} {project:14.0f} {decode:14.0f} "
          f"{project / decode:7.2f}   baseline: read+decode only")
    for name, (p50, p99) in rows:
        print(f"{name + ' p50 (ms)':32} {p50:14.2f} {base[0]:14.2f} {p50 / base[0]:7.1f}"
              f"   p99 {p99:.2f} ms; baseline: connect + SELECT 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
