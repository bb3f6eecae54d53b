"""Write-path benchmark: events/s through the real command path and
projection lag, each next to a ceiling measured in the same run on the same
database.

    .venv/bin/python -m bench.append --store sqlite
    .venv/bin/python -m bench.append --store postgres --quick

What is measured (everything goes through ``lianxin.wiring.build()``, so the
configured recorder, mapper and bus are what is timed):

* one command at a time: a single caller runs call lifecycles (13 commands,
  17 events each) one command after the other; each command is its own
  durable commit. Compared with raw durable single-row commits
  (one INSERT + COMMIT at a time, same payload bytes, same database).
* many calls in flight: callers run their own calls concurrently, so the bus
  commits the commands that arrive together in one transaction. Three kinds
  of caller: one event loop with a coroutine per agent awaiting
  ``handle_async`` (the telephony adapter), one driver submitting a step of
  every call in flight with ``handle_many`` (a burst, an importer), and
  threads calling ``handle`` (an HTTP worker pool). Compared with raw batched
  inserts of the same payloads, and with the 20k events/s goal.
* projection lag: 32 agents' calls paced to 1k events/s in total, with the
  real read models (``Lianxin.read_models()``) following in the background;
  lag = from a command's acknowledgement until a reader blocked in
  ``wait_for(position)`` is released.

Every figure is printed next to its ceiling with the ratio, and each goal with
PASS or MISS. The machine is shared: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from bench._common import (COMMANDS_PER_CALL, EVENTS_PER_CALL, agent_setup, bench_settings,
                           call_lifecycle, percentile, raw_inserter, stored_rows)
from commands import messages as m
from commands.bus import Outcome
from domain.call import CallState, call_id_for
from lianxin.wiring import Lianxin, build


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    ceiling: float | None = None
    ceiling_name: str = ""
    goal: str = ""
    passed: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None  # when not simply value / ceiling (e.g. a median of rounds)


def _check(outcomes: Sequence[Outcome | BaseException]) -> int:
    events = 0
    for o in outcomes:
        if isinstance(o, BaseException):
            raise RuntimeError(f"a benchmark command failed: {o!r}") from o
        events += o.new_events
    return events


def _setup_agents(lx: Lianxin, nos: Sequence[str]) -> None:
    _check(lx.commands.handle_many(agent_setup(nos)))


# -- scenarios -----------------------------------------------------------------
def one_at_a_time(lx: Lianxin, calls: int, first: int = 0) -> tuple[float, float]:
    """(commands/s, events/s) for a single caller, calls ``first``.. on agent seq-1."""
    cmds = [c for n in range(first, first + calls) for c in call_lifecycle("seq", n, "seq-1")]
    handle = lx.commands.handle
    events = 0
    start = time.perf_counter()
    for c in cmds:
        events += handle(c).new_events
    elapsed = time.perf_counter() - start
    return len(cmds) / elapsed, events / elapsed


def threads_in_flight(lx: Lianxin, threads: int, calls_each: int,
                      tag: str = "thr") -> tuple[float, float, int]:
    """(events/s, mean commands per commit, events) with one thread per agent."""
    nos = [f"{tag}-{k}" for k in range(threads)]
    _setup_agents(lx, nos)
    errors: list[BaseException] = []
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        cmds = [c for n in range(calls_each)
                for c in call_lifecycle(f"{tag}{k}", n, nos[k])]
        barrier.wait()
        try:
            for c in cmds:
                counts[k] += lx.commands.handle(c).new_events
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    commits_before = _commits(lx)
    barrier.wait()
    start = time.perf_counter()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a benchmark command failed: {errors[0]!r}") from errors[0]
    events = sum(counts)
    commits = _commits(lx) - commits_before
    return events / elapsed, (threads * calls_each * COMMANDS_PER_CALL) / max(commits, 1), events


def waves_in_flight(lx: Lianxin, in_flight: int, waves: int,
                    tag: str = "wav") -> tuple[float, int]:
    """(events/s, events): ``in_flight`` calls advance one step per
    ``handle_many``; a finished call is replaced by a new one on the same
    agent, so the number of calls in flight stays constant."""
    nos = [f"{tag}-{k}" for k in range(in_flight)]
    _setup_agents(lx, nos)
    scripts = [call_lifecycle(f"{tag}{k}", n, nos[k]) for n in range(waves // COMMANDS_PER_CALL + 1)
               for k in range(in_flight)]
    # script of agent k, call n is scripts[n * in_flight + k]
    plan = [[scripts[(w // COMMANDS_PER_CALL) * in_flight + k][w % COMMANDS_PER_CALL]
             for k in range(in_flight)] for w in range(waves)]
    events = 0
    handle_many = lx.commands.handle_many
    start = time.perf_counter()
    for wave in plan:
        events += _check(handle_many(wave))
    elapsed = time.perf_counter() - start
    return events / elapsed, events


def asyncio_in_flight(lx: Lianxin, in_flight: int, calls_each: int) -> tuple[float, float, int]:
    """(events/s, mean commands per commit, events): one event loop, one
    coroutine per agent running its calls one after the other with
    ``handle_async``: how the telephony adapter drives many live calls."""
    import asyncio

    nos = [f"aio-{k}" for k in range(in_flight)]
    _setup_agents(lx, nos)
    scripts = [[c for n in range(calls_each) for c in call_lifecycle(f"aio{k}", n, nos[k])]
               for k in range(in_flight)]

    async def agent(cmds: list[m.Command]) -> int:
        events = 0
        for c in cmds:
            events += (await lx.commands.handle_async(c)).new_events
        return events

    async def main() -> int:
        return sum(await asyncio.gather(*(agent(s) for s in scripts)))

    commits_before = _commits(lx)
    start = time.perf_counter()
    events = asyncio.run(main())
    elapsed = time.perf_counter() - start
    commits = _commits(lx) - commits_before
    return events / elapsed, (in_flight * calls_each * COMMANDS_PER_CALL) / max(commits, 1), events


def _commits(lx: Lianxin) -> int:
    return int(getattr(lx.commands.bus, "commits", 0))


def projection_lag(lx: Lianxin, rate: float, seconds: float) -> tuple[list[float], str, float]:
    """Lag samples (s) at ``rate`` events/s, which projections ran, achieved
    rate. The read models are the real ones (``Lianxin.read_models()``: every
    registered projection, woken by the bus on each commit)."""
    runner = lx.read_models()
    which = ", ".join(p.name for p in runner.projections)
    runner.run_once()  # catch up with what is already stored
    runner.start()
    # A reader waiting for each acknowledged position through the public
    # read-your-writes call: lag is what that reader experiences.
    acks: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    lags: list[float] = []

    def watch() -> None:
        while (item := acks.get()) is not None:
            position, acked = item
            if not runner.wait_for(position, timeout=30):
                raise RuntimeError(f"projections did not reach {position} within 30 s")
            lags.append(time.perf_counter() - acked)

    watcher = threading.Thread(target=watch, name="lag-watcher")
    watcher.start()
    # Several agents' calls at once (a center's load comes from many calls),
    # each caller pacing its share of the rate.
    callers = 32
    nos = [f"lag-{k}" for k in range(callers)]
    calls = int(rate * seconds / EVENTS_PER_CALL / callers) + 1
    scripts = [[c for n in range(calls) for c in call_lifecycle(f"lag{k}", n, nos[k])]
               for k in range(callers)]
    counts = [0] * callers
    errors: list[BaseException] = []
    try:
        _setup_agents(lx, nos)
        start = time.perf_counter() + 0.05

        def caller(k: int) -> None:
            handle, share = lx.commands.handle, rate / callers
            # staggered, so the callers do not all fire at the same instant
            first = start + k / rate
            try:
                for c in scripts[k]:
                    due = first + counts[k] / share
                    now = time.perf_counter()
                    if due > now:
                        time.sleep(due - now)
                    out = handle(c)
                    acks.put((out.position, time.perf_counter()))
                    counts[k] += out.new_events
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        achieved = sum(counts) / (time.perf_counter() - start)
    finally:
        acks.put(None)
        watcher.join()
        runner.stop()  # the throughput scenarios measure the write path alone
    if errors:
        raise RuntimeError(f"a benchmark command failed: {errors[0]!r}") from errors[0]
    if len(lags) != sum(len(x) for x in scripts):
        raise RuntimeError("the lag watcher lost track of some commands")
    return lags, which, achieved


# -- the run -------------------------------------------------------------------
@dataclass
class Sizes:
    rounds: int  # alternating rounds: raw single-row commits, then one command at a time
    seq_calls: int  # per round
    raw_seconds: float  # per round
    threads: int
    thread_calls: int
    aio_in_flight: int
    aio_calls: int
    waves_in_flight: int
    waves: int
    lag_seconds: float


QUICK = Sizes(3, 15, 0.7, 32, 2, 256, 2, 256, 26, 3.0)
FULL = Sizes(5, 40, 1.5, 64, 4, 1000, 3, 1000, 52, 10.0)
RAW_BATCH = 1000


def run(store: str, quick: bool, plain_recorder: bool = False,
        sizes: Sizes | None = None) -> list[Figure]:
    z = sizes or (QUICK if quick else FULL)
    figures: list[Figure] = []
    with bench_settings(store, plain_recorder=plain_recorder) as settings:
        lx = build(settings)
        raw = None
        try:
            # Lag first, on a store that the read models can follow from the
            # start; then the runner is stopped.
            recorder = f"{type(lx.app.recorder).__module__}.{type(lx.app.recorder).__qualname__}"
            lags, which, achieved = projection_lag(lx, 1000.0, z.lag_seconds)

            _setup_agents(lx, ["seq-1"])
            one_at_a_time(lx, 5, first=10**6)  # warm up; its payloads feed the ceilings
            rows = stored_rows(lx.app)
            raw = raw_inserter(settings)
            singles, chained, seqs, ratios, layout_ratios = [], [], [], [], []
            for k in range(z.rounds):
                # alternate, so that all three see the same disk and the same neighbours
                singles.append(raw.single(rows, z.raw_seconds))
                chained.append(raw.single_chained(rows, z.raw_seconds))
                seqs.append(one_at_a_time(lx, z.seq_calls, first=k * z.seq_calls))
                ratios.append(seqs[-1][0] / singles[-1])
                layout_ratios.append(chained[-1] / singles[-1])

            thr_eps, thr_per_commit = threads_in_flight(lx, z.threads, z.thread_calls)[:2]
            aio_eps, aio_per_commit = asyncio_in_flight(lx, z.aio_in_flight, z.aio_calls)[:2]
            wav_eps = waves_in_flight(lx, z.waves_in_flight, z.waves)[0]
            _verify(lx)
            rows = stored_rows(lx.app, limit=50_000)
            raw_batch = statistics.median(raw.batched(rows, RAW_BATCH) for _ in range(3))
        finally:
            if raw is not None:
                raw.close()
            lx.close()

    raw_single = statistics.median(singles)
    cps = statistics.median(c for c, _ in seqs)
    eps = statistics.median(e for _, e in seqs)
    ratio = statistics.median(ratios)
    payload = sum(len(r.state) for r in rows) / len(rows)
    figures.append(Figure("one command at a time", cps, "commands/s (= commits/s)", raw_single,
                          "raw durable single-row commits/s (median of alternating rounds)",
                          ">= 0.5x raw", ratio >= 0.5,
                          {"events_per_s": eps, "round_ratios": [round(r, 2) for r in ratios]},
                          ratio=ratio))
    figures.append(Figure("raw commits in the store's layout", statistics.median(chained),
                          "commits/s, each an event row and its audit-chain row", raw_single,
                          "raw durable single-row commits/s (same rounds)",
                          notes={"round_ratios": [round(r, 2) for r in layout_ratios],
                                 "meaning": "what a command path with no Python at all could reach"},
                          ratio=statistics.median(layout_ratios)))
    ceiling = f"raw batched inserts ({RAW_BATCH} rows/commit) rows/s"
    figures.append(Figure(f"{z.aio_in_flight} calls in flight, asyncio handle_async",
                          aio_eps, "events/s", raw_batch, ceiling, ">= 20000 events/s",
                          aio_eps >= 20000, {"commands_per_commit": aio_per_commit}))
    figures.append(Figure(f"{z.waves_in_flight} calls in flight, handle_many per step",
                          wav_eps, "events/s", raw_batch, ceiling, ">= 20000 events/s",
                          wav_eps >= 20000))
    figures.append(Figure(f"{z.threads} threads, one call each in flight", thr_eps,
                          "events/s", raw_batch, ceiling, ">= 20000 events/s",
                          thr_eps >= 20000, {"commands_per_commit": thr_per_commit}))
    p50, p99 = percentile(lags, 50) * 1000, percentile(lags, 99) * 1000
    figures.append(Figure(f"projection lag p50 at {achieved:.0f} events/s", p50, "ms",
                          notes={"projections": which}))
    figures.append(Figure(f"projection lag p99 at {achieved:.0f} events/s", p99, "ms",
                          goal="<= 50 ms at 1k events/s", passed=p99 <= 50 and achieved >= 950,
                          notes={"samples": len(lags), "max_ms": max(lags) * 1000}))
    figures.append(Figure("mean stored payload", payload, "bytes",
                          notes={"recorder": recorder}))
    return figures


def _verify(lx: Lianxin) -> None:
    """The benchmark is only worth its figures if the calls really ended well."""
    for ext in ("seq-0", "thr0-0", "aio0-0", "wav0-0", "lag0-0"):
        call = lx.app.repository.get(call_id_for(ext))
        assert call.state == CallState.ENDED and call.wrapped_up and call.survey_score == 5, ext
    # an acknowledged command is never lost: a retry is recognised as applied
    again = lx.commands.handle(m.AnswerSurvey(call_id=call_id_for("seq-0"), score=5,
                                              command_id="seq-0:survey"))
    assert again.duplicate and again.new_events == 0


def print_table(store: str, figures: list[Figure]) -> None:
    print(f"\nLianxin append benchmark, store={store}")
    print(f"{'measure':<44} {'value':>12} {'ceiling':>12} {'ratio':>7}  goal")
    for f in figures:
        ceiling = f"{f.ceiling:,.0f}" if f.ceiling else ""
        r = f.ratio if f.ratio is not None else (f.value / f.ceiling if f.ceiling else None)
        ratio = f"{r:.2f}x" if r is not None else ""
        verdict = "" if f.passed is None else ("PASS" if f.passed else "MISS")
        print(f"{f.name:<44} {f.value:>12,.1f} {ceiling:>12} {ratio:>7}  "
              f"{f.goal} {verdict}".rstrip())
        extra = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in f.notes.items()}
        if f.ceiling_name or extra:
            print(f"{'':<4}{f.unit}; ceiling: {f.ceiling_name or '-'}; {extra}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument("--plain-recorder", action="store_true",
                    help="use the library's recorder instead of the configured one "
                         "(shows what the audit hash chain costs)")
    args = ap.parse_args(argv)
    figures = run(args.store, args.quick, args.plain_recorder)
    print_table(args.store, figures)
    if args.json:
        print(json.dumps([f.__dict__ for f in figures], default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
