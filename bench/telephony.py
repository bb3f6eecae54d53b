"""Telephony adapter benchmark: what the Stasis app sustains against the ARI
simulator, next to the core's raw append rate measured in the same run.

    .venv/bin/python -m bench.telephony            # full run (about a minute)
    .venv/bin/python -m bench.telephony --quick    # smaller, for a smoke check

Figures (each one printed with its ratio to a baseline of the same run):

* core append: the command path alone, one command at a time (what the
  adapter does: it submits the commands of each ARI event in order), call
  lifecycles of 13 commands / 17 events. Events/s: the baseline.
* translation: dedupe + tracker over every captured trace (commands counted,
  not stored): microseconds of adapter overhead per ARI event, pure Python.
* trace replay: the same traces through the whole app into the store:
  ARI events/s and domain events/s (ratio to the core append rate).
* live: C concurrent callers on the simulator over real HTTP + WebSocket,
  each answered, IVR'd (key 0), queued, rung, bridged, recorded, hung up;
  calls/s, ARI events/s and domain events/s, and the adapter's own time per
  ARI event (translation, plus the ARI requests of its lane; lanes do not
  wait for commits). Ratio of domain events/s to the core append rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import (COMMANDS_PER_CALL, EVENTS_PER_CALL, agent_setup, bench_settings,
                           call_lifecycle)
from commands import messages as m
from lianxin.wiring import build

# Simulated seconds per real second in the live runs: the callers' and phones'
# timing (ring 1 s, talk 10 s) compressed, slow enough that the figure is the
# adapter's throughput rather than its tolerance to compressed timeouts.
SPEED = 5.0

TRACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ari_traces"


def core_append(lx: Any, calls: int) -> dict[str, float]:
    svc = lx.commands
    for cmd in agent_setup(["9000"]):
        svc.handle(cmd)
    start = time.perf_counter()
    for n in range(calls):
        for cmd in call_lifecycle("core", n, "9000"):
            svc.handle(cmd)
    elapsed = time.perf_counter() - start
    return {"calls": calls, "events_per_s": calls * EVENTS_PER_CALL / elapsed,
            "commands_per_s": calls * COMMANDS_PER_CALL / elapsed}


def core_append_batched(lx: Any, calls: int, width: int = 50) -> dict[str, float]:
    """The same lifecycles, ``width`` calls in flight, each step of all of
    them submitted together (one commit): the most the write path gives an
    adapter that batches perfectly."""
    svc = lx.commands
    for cmd in agent_setup([f"95{i:02d}" for i in range(width)]):
        svc.handle(cmd)
    start = time.perf_counter()
    for base in range(0, calls, width):
        lives = [call_lifecycle("batch", base + i, f"95{i:02d}") for i in range(width)]
        for step in range(COMMANDS_PER_CALL):
            svc.handle_many([life[step] for life in lives])
    elapsed = time.perf_counter() - start
    n = (calls // width) * width
    return {"calls": n, "events_per_s": n * EVENTS_PER_CALL / elapsed}


def _trace_events() -> list[list[dict[str, Any]]]:
    out = []
    for path in sorted(TRACES.glob("*.jsonl")):
        if path.stem.endswith(".rest"):
            continue
        out.append([json.loads(line)["message"] for line in path.open() if line.strip()])
    return out


class _CountingService:
    """Stands in for CommandService to time translation alone."""

    def __init__(self) -> None:
        self.commands = 0
        self.bus = None

    def handle_many(self, cmds: list[Any]) -> list[Any]:
        self.commands += len(cmds)
        return [None] * len(cmds)


def translation(rounds: int) -> dict[str, float]:
    from telephony_adapter.stasis.app import StasisApp
    from telephony_adapter.stasis.config import load
    from telephony_adapter.stasis.events import event_key

    traces = _trace_events()
    cfg = load()
    n_events = 0
    commands = 0
    elapsed = 0.0
    for r in range(rounds):
        for evs in traces:
            app = StasisApp(_CountingService(), None, cfg, control=False)  # type: ignore[arg-type]
            start = time.perf_counter()
            for ev in evs:
                key = event_key(ev)
                if key in app._seen:
                    continue
                app._seen[key] = None
                out = app.tracker.translate(ev)
                commands += len(out.commands)
            elapsed += time.perf_counter() - start
            n_events += len(evs)
    return {"ari_events": n_events, "us_per_event": elapsed / n_events * 1e6,
            "commands": commands}


def trace_replay(lx: Any, rounds: int) -> dict[str, float]:
    from telephony_adapter.stasis.app import StasisApp
    from telephony_adapter.stasis.config import load

    traces = _trace_events()
    cfg = load()
    svc = lx.commands
    start_pos = lx.app.max_position()
    n_events = 0
    start = time.perf_counter()

    async def run() -> None:
        nonlocal n_events
        for r in range(rounds):
            for i, evs in enumerate(traces):
                # fresh ids per round: the traces are the same calls otherwise
                suffix = f"-r{r}"
                app = StasisApp(svc, None, cfg, control=False)  # type: ignore[arg-type]
                for emp in ("1001", "1002"):
                    for cmd in (m.MakeReady(employee_no=emp),):
                        try:
                            svc.handle(cmd)
                        except Exception:  # noqa: BLE001 - already ready
                            pass
                for ev in evs:
                    await app.handle(_rename(ev, suffix))
                    n_events += 1

    for emp in ("1001", "1002"):
        svc.handle(m.RegisterAgent(employee_no=emp, name=emp))
        svc.handle(m.LogIn(employee_no=emp, endpoint=f"PJSIP/{emp}"))
    asyncio.run(run())
    elapsed = time.perf_counter() - start
    domain_events = lx.app.max_position() - start_pos
    return {"ari_events": n_events, "ari_events_per_s": n_events / elapsed,
            "domain_events_per_s": domain_events / elapsed, "domain_events": domain_events}


def _rename(ev: dict[str, Any], suffix: str) -> dict[str, Any]:
    text = json.dumps(ev)
    for ch in {c for c in _ids(ev)}:
        text = text.replace(f'"{ch}"', f'"{ch}{suffix}"')
    return json.loads(text)


def _ids(ev: dict[str, Any]) -> list[str]:
    out = []
    for key in ("channel", "peer", "replace_channel", "transferee"):
        v = ev.get(key)
        if isinstance(v, dict) and v.get("id"):
            out.append(v["id"])
    return out


async def live(lx: Any, concurrency: int, waves: int, speed: float) -> dict[str, float]:
    from telephony_adapter.ari.client import AriClient
    from telephony_adapter.simulator import AnswerAfter, run_simulator
    from telephony_adapter.stasis.app import StasisApp
    from telephony_adapter.stasis.config import load

    agents = [f"7{n:03d}" for n in range(concurrency)]
    for emp in agents:
        lx.commands.handle(m.RegisterAgent(employee_no=emp, name=emp))
        lx.commands.handle(m.LogIn(employee_no=emp, endpoint=f"PJSIP/{emp}"))
        lx.commands.handle(m.MakeReady(employee_no=emp))
    async with run_simulator(speed=speed) as sim:
        for emp in agents:
            sim.register_endpoint(f"PJSIP/{emp}", AnswerAfter(delay=1))
        client = AriClient(sim.base_url, sim.app, sim.username, sim.password)
        app = StasisApp(lx, client, load(), app_name=sim.app, clock=sim.clock.now,
                        auto_ready_after_s=1.0, tick_s=0.01)
        task = asyncio.create_task(app.run(client.events(raw=True)))
        await sim.wait_for_app()
        core = sim.core

        async def caller(i: int) -> bool:
            ch = sim.place_call(caller=f"139{i:08d}")
            # wait for the greeting, key 0, wait for an agent, talk, hang up
            for _ in range(4000):
                if ch not in core.channels or core.channels[ch].playbacks:
                    break
                await asyncio.sleep(0.002)
            await sim.press(ch, "0")
            for _ in range(20000):
                c = core.channels.get(ch)
                if c is None:
                    return False
                br = core.bridges.get(c.bridge or "")
                if br is not None and br.bridge_type == "mixing" and len(br.channels) >= 2:
                    break
                await asyncio.sleep(0.002)
            else:
                return False
            await sim.sleep(10)
            sim.hangup(ch)
            return True

        start_events = app.stats["events"]
        start_busy = app.stats["busy_s"]
        start_pos = lx.app.max_position()
        start = time.perf_counter()
        served = 0
        for w in range(waves):
            results = await asyncio.gather(*(caller(w * concurrency + i)
                                             for i in range(concurrency)))
            served += sum(results)
        # the last hang-ups are processed
        deadline = time.perf_counter() + 30
        while app.tracker.live_calls() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        ari_events = app.stats["events"] - start_events
        busy = app.stats["busy_s"] - start_busy
        domain_events = lx.app.max_position() - start_pos
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        await client.close()
    return {"concurrency": concurrency, "speed": speed, "calls": waves * concurrency, "served": served,
            "calls_per_s": served / elapsed, "ari_events_per_s": ari_events / elapsed,
            "domain_events_per_s": domain_events / elapsed,
            "ms_per_ari_event": busy / max(1, ari_events) * 1e3,
            "ari_events": ari_events, "domain_events": domain_events,
            "rejected": app.stats["rejected"], "seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--store", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    calls = 60 if args.quick else 300
    rounds = 3 if args.quick else 20
    # (concurrent calls, waves, simulation speed)
    levels = [(10, 1, SPEED)] if args.quick else [(10, 3, SPEED), (50, 2, SPEED),
                                                  (100, 1, SPEED), (100, 2, 20.0),
                                                  (200, 1, 20.0)]
    figures: dict[str, Any] = {}

    def fresh(fn: Any, *a: Any) -> Any:
        with bench_settings(args.store) as settings:
            lx = build(settings)
            try:
                return fn(lx, *a)
            finally:
                lx.close()

    figures["core_append"] = fresh(core_append, calls)
    figures["core_append_batched"] = fresh(core_append_batched, calls)
    figures["translation"] = translation(rounds)
    figures["trace_replay"] = fresh(trace_replay, max(1, rounds // 4))
    figures["live"] = [fresh(lambda lx: asyncio.run(live(lx, c, w, speed=sp)))
                       for c, w, sp in levels]
    base = figures["core_append"]["events_per_s"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    batched = figures["core_append_batched"]["events_per_s"]
    print(f"store: {args.store}")
    print(f"core append, one command at a time: {base:,.0f} events/s "
          f"({figures['core_append']['commands_per_s']:,.0f} commands/s) = baseline 1.00")
    print(f"core append, 50 calls' steps per commit: {batched:,.0f} events/s = "
          f"{batched / base:.2f} x baseline")
    t = figures["translation"]
    print(f"adapter overhead (dedupe + translation, no store): {t['us_per_event']:.1f} us per "
          f"ARI event over {t['ari_events']} events")
    r = figures["trace_replay"]
    print(f"trace replay into the store, one event at a time: {r['ari_events_per_s']:,.0f} ARI "
          f"events/s, {r['domain_events_per_s']:,.0f} domain events/s = "
          f"{r['domain_events_per_s'] / base:.2f} x baseline")
    for f in figures["live"]:
        print(f"live x{f['speed']:g}, {f['concurrency']} concurrent calls: "
              f"{f['calls_per_s']:.1f} calls/s, {f['ari_events_per_s']:,.0f} ARI events/s, "
              f"{f['domain_events_per_s']:,.0f} domain events/s = "
              f"{f['domain_events_per_s'] / base:.2f} x baseline; adapter time {f['ms_per_ari_event']:.1f} ms "
              f"per ARI event; served {f['served']}/{f['calls']}, "
              f"refused commands {f['rejected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
