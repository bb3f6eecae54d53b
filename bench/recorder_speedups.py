"""Before/after of the recorder fast paths (commands/recorder_speedups.py):
the audit-chained recorder of commands/event_store.py on the library's
insert, against the same chained recorder on the fast insert, each on its own
fresh store, in alternating rounds in one process, so that the machine's mood
(this disk's speed swings 10x) hits both alike. The raw durable single-row
commit rate is measured in the same rounds, as the ceiling of the one-at-a-time
ratio.

    .venv/bin/python -m bench.recorder_speedups --store sqlite
    .venv/bin/python -m bench.recorder_speedups --store postgres --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
from typing import Iterator

from bench._common import bench_settings, raw_inserter, stored_rows
from bench.append import _setup_agents, asyncio_in_flight, one_at_a_time, waves_in_flight
from lianxin.wiring import Lianxin, build

RECORDERS = {
    "sqlite": ("commands.event_store:ChainedSQLiteApplicationRecorder",
               "commands.recorder_speedups:FastChainedSQLiteApplicationRecorder"),
    "postgres": ("commands.event_store:ChainedPostgresApplicationRecorder",
                 "commands.recorder_speedups:FastChainedPostgresApplicationRecorder"),
}


@contextlib.contextmanager
def store_with(store: str, topic: str) -> Iterator[Lianxin]:
    with bench_settings(store) as settings:
        settings = dataclasses.replace(settings, extra_env={
            **settings.extra_env, "APPLICATION_RECORDER_TOPIC": topic})
        lx = build(settings)
        try:
            yield lx
        finally:
            lx.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--in-flight", type=int, default=1000)
    args = ap.parse_args(argv)
    before_topic, after_topic = RECORDERS[args.store]
    res: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}, "raw": {}}
    with store_with(args.store, before_topic) as before, \
            store_with(args.store, after_topic) as after:
        for lx in (before, after):
            _setup_agents(lx, ["seq-1"])
            one_at_a_time(lx, 3, first=10**6)  # warm-up; its payloads feed the ceiling
        rows = stored_rows(after.app)
        raw = raw_inserter(after.settings)
        try:
            for k in range(args.rounds):
                res["raw"].setdefault("single", []).append(raw.single(rows, 1.5))
                for name, lx in (("before", before), ("after", after)):
                    r = res[name]
                    r.setdefault("one command at a time, commands/s", []).append(
                        one_at_a_time(lx, 30, first=k * 30)[0])
                    r.setdefault(f"{args.in_flight} calls in flight, handle_many, events/s",
                                 []).append(waves_in_flight(lx, args.in_flight, 26,
                                                            tag=f"w{k}")[0])
                    if k == 0:  # its agent names are fixed, so once per store
                        r.setdefault(f"{args.in_flight} calls in flight, asyncio, events/s",
                                     []).append(asyncio_in_flight(lx, args.in_flight, 1)[0])
        finally:
            raw.close()
    single = statistics.median(res["raw"]["single"])
    print(f"\nrecorder before (library insert) and after (fast insert), audit chain in both, "
          f"store={args.store}, median of {args.rounds} alternating rounds")
    print(f"{'raw durable single-row commits/s (ceiling)':52} {single:9,.0f}")
    for key in res["before"]:
        b = statistics.median(res["before"][key])
        a = statistics.median(res["after"][key])
        extra = ""
        if key.startswith("one command"):
            extra = f"  ratio to raw: before {b / single:.2f}x after {a / single:.2f}x"
        print(f"{key:52} before {b:9,.0f}  after {a:9,.0f}  {a / b:5.2f}x{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
