"""How fast a queue_log imports, next to the command path running the very same
commands in the same run.

    .venv/bin/python -m bench.queue_log --store sqlite --calls 5000

A synthetic day (seeded, so every run imports the same file) of ``--calls``
callers over 20 agents: answered, ring-no-answer then answered, abandoned,
timed out and transferred, in realistic proportions. Figures:

* parse + translate only (no store): what the importer itself costs;
* import into a fresh store, lines/s and events/s;
* baseline: the same commands the importer produced, sent straight to
  ``CommandService.handle_many`` on another fresh store (the ceiling the
  importer can reach; the ratio is the importer's overhead on top);
* re-import of the same file (everything already there: nothing written).
"""

from __future__ import annotations

import argparse
import random
import time
from zoneinfo import ZoneInfo

from bench._common import bench_settings
from lianxin.wiring import build
from telephony_adapter.queue_log import AgentDirectory, ImportOptions, import_queue_log
from telephony_adapter.queue_log.parser import Record, parse_lines
from telephony_adapter.queue_log.translate import Translator

T0 = 1795132800  # 2026-11-20 08:00 Asia/Shanghai


def synthetic_day(calls: int, agents: int = 20, seed: int = 7) -> str:
    rnd = random.Random(seed)
    lines: list[tuple[int, int, str]] = []
    seq = 0

    def w(t: int, callid: str, queue: str, agent: str, event: str, *data: object) -> None:
        nonlocal seq
        seq += 1
        lines.append((t, seq, "|".join([str(t), callid, queue, agent, event, *map(str, data)])))

    names = [f"PJSIP/{2000 + i}" for i in range(agents)]
    free_at = {n: T0 for n in names}
    for n in names:
        w(T0 - 300, "MANAGER", "power", n, "ADDMEMBER", "")
    span = 10 * 3600
    arrivals = sorted(T0 + rnd.randrange(span) for _ in range(calls))
    for k, start in enumerate(arrivals):
        callid = f"{start}.{k}"
        w(start, callid, "power", "NONE", "ENTERQUEUE", "", f"138{rnd.randrange(10**8):08d}", 1)
        roll = rnd.random()
        wait = rnd.randrange(0, 60)
        ready = [n for n in names if free_at[n] <= start + wait]
        if roll < 0.12 or not ready:
            w(start + wait + 5, callid, "power", "NONE", "ABANDON", 1, 1, wait + 5)
            continue
        if roll < 0.17:
            w(start + 90, callid, "power", "NONE", "EXITWITHTIMEOUT", 1, 1, 90)
            continue
        agent = rnd.choice(ready)
        if roll < 0.27 and len(ready) > 1:
            missed = rnd.choice([n for n in ready if n != agent])
            w(start + wait, callid, "power", missed, "RINGNOANSWER", 15000)
            free_at[missed] = start + wait
            wait += 15
        ring = rnd.randrange(1, 8)
        talk = rnd.randrange(30, 400)
        answer = start + wait + ring
        w(answer, callid, "power", agent, "CONNECT", wait + ring, f"{answer}.{k}9", ring)
        if roll > 0.97:
            w(answer + talk, callid, "power", agent, "BLINDTRANSFER", 8001, "from-internal",
              wait + ring, talk, 1)
        else:
            end = "COMPLETECALLER" if rnd.random() < 0.6 else "COMPLETEAGENT"
            w(answer + talk, callid, "power", agent, end, wait + ring, talk, 1)
        free_at[agent] = answer + talk + 1
    for n in names:
        w(T0 + span + 3600, "MANAGER", "power", n, "REMOVEMEMBER", "")
    lines.sort()
    return "\n".join(text for _, _, text in lines) + "\n"


def _steps(text: str) -> list:
    records = [r for r in parse_lines(text.splitlines(), ZoneInfo("Asia/Shanghai"))
               if isinstance(r, Record)]
    return Translator(AgentDirectory(), team="bench").run(records).steps


def alternate(store: str, calls: int, rounds: int) -> int:
    text = synthetic_day(calls)
    steps = _steps(text)
    for _ in range(rounds):
        for label in ("import", "baseline"):
            with bench_settings(store) as settings:
                lx = build(settings)
                try:
                    t = time.perf_counter()
                    if label == "import":
                        import_queue_log(lx, text, ImportOptions(team="bench"))
                    else:
                        lx.commands.handle_many([s.command for s in steps])
                    print(f"{label:9} {time.perf_counter() - t:6.2f} s "
                          f"({lx.app.max_position()} events)", flush=True)
                finally:
                    lx.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--alternate", type=int, default=0, metavar="ROUNDS",
                        help="only time import and baseline alternately, ROUNDS times each "
                             "(tells a real gap from a noisy machine)")
    args = parser.parse_args(argv)
    if args.alternate:
        return alternate(args.store, args.calls, args.alternate)

    text = synthetic_day(args.calls)
    n_lines = text.count("\n")
    tz = ZoneInfo("Asia/Shanghai")

    t = time.perf_counter()
    records = [r for r in parse_lines(text.splitlines(), tz) if isinstance(r, Record)]
    steps = Translator(AgentDirectory(), team="bench").run(records).steps
    translate_s = time.perf_counter() - t

    with bench_settings(args.store) as settings:
        lx = build(settings)
        try:
            t = time.perf_counter()
            outcomes = lx.commands.handle_many([s.command for s in steps])
            baseline_s = time.perf_counter() - t
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            assert not failed, failed[:3]
            base_events = lx.app.max_position()
        finally:
            lx.close()
    with bench_settings(args.store) as settings:
        lx = build(settings)
        try:
            t = time.perf_counter()
            summary = import_queue_log(lx, text, ImportOptions(team="bench"))
            import_s = time.perf_counter() - t
            assert summary.ok and summary.events_created == base_events, summary.skipped[:3]
            t = time.perf_counter()
            again = import_queue_log(lx, text, ImportOptions(team="bench"))
            reimport_s = time.perf_counter() - t
            assert again.events_created == 0
        finally:
            lx.close()

    print(f"queue_log import, store={args.store}: {n_lines} lines, {args.calls} calls, "
          f"{len(steps)} commands, {base_events} events")
    print(f"{'figure':44} {'lines/s':>10} {'events/s':>10} {'vs baseline':>12}")
    rows = [
        ("parse + translate only (no store)", translate_s, None),
        ("baseline: same commands, handle_many", baseline_s, base_events),
        ("import (parse, translate, commands)", import_s, summary.events_created),
        ("re-import of the same file (no writes)", reimport_s, None),
    ]
    for label, seconds, events in rows:
        ratio = baseline_s / seconds
        ev = f"{events / seconds:10.0f}" if events else f"{'-':>10}"
        print(f"{label:44} {n_lines / seconds:10.0f} {ev} {ratio:11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
