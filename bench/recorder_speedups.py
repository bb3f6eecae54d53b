"""Before/after of the recorder fast paths (commands/recorder_speedups.py):
the audit-chained recorder of commands/event_store.py on the library's
insert, against the same chained recorder on the fast insert, each on its own
fresh store, in alternating rounds in one process, so that the machine's mood
(this disk's speed swings 10x) hits both alike. The raw durable single-row
commit rate is measured in the same rounds, as the ceiling of the one-at-a-time
ratio.

    .venv/bin/python -m bench.recorder_speedups --store sqlite
    .venv/bin/python -m bench.recorder_speedups --store postgres --rounds 3
    .venv/bin/python -m bench.recorder_speedups --store postgres --recorder-only

``--recorder-only`` times the recorders alone (``insert_events`` of batches of
1, 17 and 500 events, alternating old/new on twin tables): client CPU per
event (``process_time``: this process, so the database server's own work is
not in it) and wall time per batch, medians.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import time
from typing import Any, Iterator
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.persistence import StoredEvent

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


def fixed_batch(tag: str, n: int) -> list[StoredEvent]:
    state = (b'{"occurred_at":{"_type_":"datetime_iso","_data_":"2026-11-23T08:00:00+08:00"},'
             b'"command_id":"x","actor":"agent-1","queue":"general"' + b',"pad":"' +
             b"p" * 160 + b'"}')  # ~285 bytes, the workload's mean payload
    return [StoredEvent(originator_id=uuid5(NAMESPACE_URL, f"{tag}/{i % 3}"),
                        originator_version=1 + i // 3, topic="domain.call:Call.Offered",
                        state=state) for i in range(n)]


def recorder_only(store: str) -> None:
    from eventsourcing.utils import resolve_topic

    recorders: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        for name, topic in zip(("before", "after"), RECORDERS[store]):
            lx = stack.enter_context(store_with(store, topic))
            recorders[name] = lx.app.recorder
            assert isinstance(lx.app.recorder, resolve_topic(topic))
        print(f"\nrecorders alone, store={store}, medians of alternating inserts")
        for size, reps in ((1, 300), (17, 150), (500, 20)):
            cpu: dict[str, list[float]] = {"before": [], "after": []}
            wall: dict[str, list[float]] = {"before": [], "after": []}
            for i in range(reps):
                for name, rec in recorders.items():
                    events = fixed_batch(f"{name}-{size}-{i}", size)
                    c, w = time.process_time(), time.perf_counter()
                    rec.insert_events(events)
                    cpu[name].append(time.process_time() - c)
                    wall[name].append(time.perf_counter() - w)
            b, a = statistics.median(cpu["before"]), statistics.median(cpu["after"])
            bw, aw = statistics.median(wall["before"]), statistics.median(wall["after"])
            print(f"batch of {size:3}: client CPU per event before {b / size * 1e6:7.1f} us "
                  f"after {a / size * 1e6:7.1f} us ({b / a:4.2f}x); wall per batch before "
                  f"{bw * 1e6:7.0f} us after {aw * 1e6:7.0f} us ({bw / aw:4.2f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--in-flight", type=int, default=1000)
    ap.add_argument("--recorder-only", action="store_true")
    args = ap.parse_args(argv)
    if args.recorder_only:
        recorder_only(args.store)
        return 0
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
