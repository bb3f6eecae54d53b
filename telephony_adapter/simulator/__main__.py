"""Run the fake Asterisk as its own process, optionally with callers and agents.

    python -m telephony_adapter.simulator --port 8088 --agents 5 --load 120 --speed 60

An adapter (or curl) then talks to ``http://127.0.0.1:8088/ari`` as to Asterisk. Running it
apart from the adapter keeps the adapter's latency honest: in one process the simulator's
REST answers share the adapter's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from telephony_adapter.simulator.endpoints import AnswerAfter
from telephony_adapter.simulator.load import AgentLoad, LoadGenerator, QueueLoad
from telephony_adapter.simulator.server import run_simulator


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m telephony_adapter.simulator",
                                description="A fake Asterisk speaking ARI on loopback.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    p.add_argument("--app", default="lianxin")
    p.add_argument("--username", default="lianxin")
    p.add_argument("--password", default="lianxin")
    p.add_argument("--speed", type=_positive, default=1.0, help="simulated seconds per second")
    p.add_argument("--agents", type=int, default=0,
                   help="register PJSIP/1001.. phones that answer after 1-5 s")
    p.add_argument("--load", type=float, default=0.0,
                   help="peak calls per hour to --dialed (0: no generated callers)")
    p.add_argument("--dialed", default="95598")
    p.add_argument("--ivr-digits", default="0", help="what generated callers key")
    p.add_argument("--hours", type=float, default=12.0, help="length of the generated day")
    p.add_argument("--start-hour", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    async with run_simulator(args.host, args.port, args.app, args.username, args.password,
                             speed=args.speed, seed=args.seed) as sim:
        print(f"ARI simulator listening on {sim.base_url}/ari (app {args.app}, "
              f"speed x{args.speed:g})", flush=True)
        agents = [AgentLoad(f"PJSIP/{1001 + n}", ring_delay=3.0, ring_jitter=2.0)
                  for n in range(args.agents)]
        for agent in agents:
            sim.register_endpoint(agent.endpoint, AnswerAfter(agent.ring_delay, agent.ring_jitter))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if args.load > 0:
            load = LoadGenerator(sim, [QueueLoad(args.dialed, args.load,
                                                 ivr_digits=args.ivr_digits)],
                                 agents, seed=args.seed, start_hour=args.start_hour)
            run = asyncio.create_task(load.run(args.hours * 3600))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            await load.stop()
            print(f"load: {load.stats}", flush=True)
        else:
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:  # the port is taken, the address is not ours...
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
