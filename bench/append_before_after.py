"""Before/after of the command bus: the bus of an earlier revision (read with
``git show REV:commands/bus.py``) against the working tree's, in one process
on one store, in alternating rounds, so the machine's mood hits both alike.

    .venv/bin/python -m bench.append_before_after --store sqlite --rev fe1ddb1

The earlier bus only has execute/execute_many, so the scenarios are the ones
both can run: one command at a time, threads, and handle_many waves.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import bench_settings
from bench.append import _setup_agents, one_at_a_time, threads_in_flight, waves_in_flight
from lianxin.wiring import build


def load_bus(rev: str):  # noqa: ANN201 - a module
    source = subprocess.run(["git", "show", f"{rev}:commands/bus.py"], check=True,
                            capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    path = Path(tempfile.mkdtemp()) / "bus_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("bus_before", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bus_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rev", default="fe1ddb1", help="revision of the 'before' bus")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    before_module = load_bus(args.rev)
    results: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    with bench_settings(args.store) as settings:
        lx = build(settings)
        try:
            after = lx.commands.bus
            before = before_module.CommandBus(lx.app, after.ctx)
            _setup_agents(lx, ["seq-1"])
            k = 0
            for _ in range(args.rounds):
                for name, bus in (("before", before), ("after", after)):
                    lx.commands.bus = bus
                    k += 1
                    r = results[name]
                    r.setdefault("one command at a time, commands/s", []).append(
                        one_at_a_time(lx, 10, first=k * 100)[0])
                    r.setdefault("32 threads, events/s", []).append(
                        threads_in_flight(lx, 32, 2, tag=f"t{k}")[0])
                    r.setdefault("256 calls in flight, handle_many, events/s", []).append(
                        waves_in_flight(lx, 256, 26, tag=f"w{k}")[0])
        finally:
            lx.commands.bus = after
            lx.close()
    print(f"\ncommand bus before ({args.rev}) and after (working tree), store={args.store}, "
          f"median of {args.rounds} alternating rounds")
    for key in results["before"]:
        b = statistics.median(results["before"][key])
        a = statistics.median(results["after"][key])
        print(f"{key:45} before {b:9,.0f}  after {a:9,.0f}  {a / b:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
