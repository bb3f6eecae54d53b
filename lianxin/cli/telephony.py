"""CLI commands: the Stasis app on a real Asterisk (``lianxin telephony
run``) and the README's main command, ``lianxin demo``: a simulated Asterisk,
the Stasis app and the HTTP API running a call-center day compressed in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import datetime, time as dtime, timedelta, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo

import typer

from lianxin.cli.core import fail, group


def register(root: typer.Typer) -> None:
    """Add this area's commands and groups to the root `lianxin` app."""
    tel = group(root, "telephony", "The Stasis application on Asterisk ARI (IVR, ACD, calls)")

    @tel.command("run")
    def run(ari_url: str = typer.Option(..., "--ari-url",
                                        help="Asterisk HTTP base, e.g. http://pbx:8088"),
            app: str = typer.Option("lianxin", "--app", help="Stasis application name"),
            user: str = typer.Option(..., "--user", help="ARI user (ari.conf)"),
            password: str = typer.Option(..., "--password", help="ARI password"),
            port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                               help="also serve the HTTP API on this port"),
            host: str = typer.Option("127.0.0.1", "--host", help="HTTP interface"),
            config_dir: Optional[str] = typer.Option(
                None, "--config-dir", help="folder with ivr.toml and queues.toml")) -> None:
        """Connect to Asterisk over ARI and run the call center's Stasis app
        until Ctrl-C (reconnects by itself when Asterisk goes away)."""
        if not ari_url.startswith(("http://", "https://")):
            fail(f"--ari-url: must start with http:// or https://, not {ari_url!r}", 2)
        cfg = _config(config_dir)
        from lianxin.wiring import build

        lx = build()
        try:
            asyncio.run(_serve_asterisk(lx, cfg, ari_url, app, user, password, host, port))
        except KeyboardInterrupt:
            pass
        finally:
            lx.close()

    @root.command("demo")
    def demo(speed: float = typer.Option(120.0, "--speed", min=1.0, max=2000.0,
                                         help="simulated seconds per real second"),
             hours: float = typer.Option(12.0, "--hours", min=0.05, max=48.0,
                                         help="length of the simulated day"),
             start_hour: float = typer.Option(8.0, "--start-hour", min=0.0, max=23.99,
                                              help="clock time the simulated day starts at"),
             port: int = typer.Option(8000, "--port", min=0, max=65535,
                                      help="HTTP API port (0: any free port)"),
             host: str = typer.Option("127.0.0.1", "--host", help="HTTP interface"),
             seed: int = typer.Option(7, "--seed", help="random seed of the simulated day"),
             every: float = typer.Option(2.0, "--every", min=0.2,
                                         help="real seconds between wallboard lines")) -> None:
        """A call-center day on the embedded defaults: a simulated Asterisk,
        the Stasis app (IVR, ACD, recording, survey) and the HTTP API with
        live read models. Stops after the simulated day (or Ctrl-C) with a
        summary."""
        from lianxin.wiring import build

        cfg = _config(None)
        lx = build()
        try:
            asyncio.run(_demo(lx, cfg, speed=speed, hours=hours, start_hour=start_hour,
                              host=host, port=port, seed=seed, every=every))
        except KeyboardInterrupt:
            typer.echo("\ninterrupted")
        finally:
            lx.close()


def _config(config_dir: Optional[str]) -> Any:
    from domain.errors import InvalidValue
    from telephony_adapter.stasis.config import load

    try:
        return load(config_dir)
    except InvalidValue as exc:
        fail(f"telephony configuration: {exc.message}", 2)
    except FileNotFoundError as exc:
        fail(f"--config-dir: {exc.filename} does not exist", 2)


async def _http(lx: Any, host: str, port: int) -> tuple[Any, asyncio.Task, int]:
    import socket

    import uvicorn

    from lianxin.http import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        fail(f"--port: cannot listen on {host}:{port} ({exc.strerror})", 2)
    sock.listen(128)
    sock.setblocking(False)
    server = uvicorn.Server(uvicorn.Config(create_app(lx), log_level="warning",
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def _stop_http(server: Any, task: asyncio.Task) -> None:
    server.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


def live_calls_of(lx: Any) -> Any:
    """What the store believes is live, from the read models brought up to
    date first (the Stasis app ends those whose channel is gone)."""
    def read() -> list[tuple[Any, str]]:
        from uuid import UUID

        from queries.calls import live_calls

        lx.read_models().run_once()
        return [(UUID(str(c["call_id"])), str(c["external_id"])) for c in live_calls(lx)]

    return read


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _serve_asterisk(lx: Any, cfg: Any, ari_url: str, app: str, user: str,
                          password: str, host: str, port: Optional[int]) -> None:
    from telephony_adapter.ari.client import AriClient
    from telephony_adapter.ari.errors import AriAuthError
    from telephony_adapter.stasis.app import StasisApp
    from telephony_adapter.stasis.selfservice import SelfServiceDesk

    client = AriClient(ari_url, app, user, password)
    stasis = StasisApp(lx.commands, client, cfg, app_name=app,
                       self_service=SelfServiceDesk(lx), known_live_calls=live_calls_of(lx))
    lx.parts["telephony"] = stasis
    http = await _http(lx, host, port) if port else None
    stop = asyncio.Event()
    _stop_on_signals(stop)
    typer.echo(f"Stasis app {app!r} on {client.events_url.split('?')[0]} "
               f"(data: {lx.settings.home}, store: {lx.settings.store})")
    if http:
        typer.echo(f"HTTP API on http://{host}:{http[2]} (docs: /docs, status: /telephony/status)")
    runner = asyncio.create_task(stasis.run(client.events(raw=True)))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done and runner.exception() is not None:
            exc = runner.exception()
            if isinstance(exc, AriAuthError):
                fail(f"--user/--password: Asterisk refused the login ({exc.message})")
            fail(f"the Stasis app stopped: {exc}")
    finally:
        for task in (runner, stopper):
            task.cancel()
        with contextlib.suppress(BaseException):
            await runner
        await client.close()
        if http:
            await _stop_http(http[0], http[1])
        lx.parts.pop("telephony", None)


# -- the demo -------------------------------------------------------------------
DEMO_AGENTS: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("1001", "Li Na", {"repair": 4}), ("1002", "Wang Wei", {"repair": 3}),
    ("1003", "Zhang Min", {"repair": 3}), ("1004", "Liu Yang", {"repair": 2}),
    ("1005", "Chen Jie", {"repair": 2, "billing": 1}), ("1006", "Yang Fang", {"repair": 2}),
    ("1007", "Zhao Lei", {"billing": 3}), ("1008", "Huang Li", {"billing": 2}),
    ("1009", "Zhou Tao", {"billing": 2}), ("1010", "Wu Xia", {"billing": 1, "repair": 1}),
    ("1011", "Xu Qiang", {"billing": 2}), ("1012", "Sun Hui", {"complaints": 3, "billing": 1}),
    ("1013", "Ma Jun", {"complaints": 2}), ("1014", "Zhu Ying", {"repair": 1, "billing": 1,
                                                                 "complaints": 2}),
    ("1015", "Hu Bin", {"repair": 1, "billing": 1, "complaints": 2}),
)
AGENT_WRAP_UP_S = 20.0


def _staff_demo_agents(lx: Any) -> None:
    from commands import messages as m
    from domain.agent import AgentState, agent_id_for
    from domain.errors import DomainError

    for emp, name, skills in DEMO_AGENTS:
        try:
            lx.commands.handle(m.RegisterAgent(employee_no=emp, name=name, team="demo",
                                               skills=skills, command_id=f"demo-register-{emp}"))
        except DomainError:
            pass  # registered by an earlier demo on this data directory
        agent = lx.app.repository.get(agent_id_for(emp))
        if agent.state == AgentState.LOGGED_OUT:
            lx.commands.handle(m.LogIn(employee_no=emp, endpoint=f"PJSIP/{emp}"))
            agent = lx.app.repository.get(agent_id_for(emp))
        if agent.state in (AgentState.NOT_READY, AgentState.WRAP_UP):
            lx.commands.handle(m.MakeReady(employee_no=emp))


def _day_start(tz: str, start_hour: float) -> datetime:
    zone = ZoneInfo(tz)
    today = datetime.now(zone).date()
    local = datetime.combine(today, dtime(0, 0), zone) + timedelta(hours=start_hour)
    # in UTC: the simulator stamps events with the clock's wall time + "+0000"
    return local.astimezone(timezone.utc)


def _board_line(lx: Any, stasis: Any, gen: Any, at: datetime) -> str:
    status = stasis.flow.acd
    waiting = " ".join(f"{q}:{len(status.waiting(q))}" for q in status.queues)
    s = gen.stats
    served = ""
    try:
        from queries.wallboard import wallboard

        board = wallboard(lx, at=at)
        queues = board.get("queues") if isinstance(board, dict) else None
        if isinstance(queues, list):
            answered = sum(int(q.get("answered", 0) or 0) for q in queues)
            abandoned = sum(int(q.get("abandoned", 0) or 0) for q in queues)
            served = f" | wallboard today: answered {answered} abandoned {abandoned}"
    except Exception:  # noqa: BLE001 - the live line still shows the adapter's view
        served = ""
    local = at.astimezone(ZoneInfo(lx.settings.timezone))
    return (f"[{local:%H:%M}] calls {s.placed} connected {s.connected} "
            f"abandoned {s.abandoned} surveys {s.survey_answers} | waiting {waiting} | "
            f"ready agents {len(status.ready_agents())}/{len(DEMO_AGENTS)} | "
            f"ARI events {stasis.stats['events']} commands {stasis.stats['commands']}{served}")


async def _demo(lx: Any, cfg: Any, *, speed: float, hours: float, start_hour: float,
                host: str, port: int, seed: int, every: float) -> None:
    from telephony_adapter.ari.client import AriClient
    from telephony_adapter.simulator import run_simulator
    from telephony_adapter.simulator.load import AgentLoad, LoadGenerator, QueueLoad
    from telephony_adapter.stasis.app import StasisApp
    from telephony_adapter.stasis.selfservice import SelfServiceDesk

    _staff_demo_agents(lx)
    start = _day_start(lx.settings.timezone, start_hour)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with run_simulator(speed=speed, start=start, seed=seed) as sim:
        client = AriClient(sim.base_url, sim.app, sim.username, sim.password,
                           backoff_initial=0.05, backoff_max=1.0)
        stasis = StasisApp(lx.commands, client, cfg, app_name=sim.app, clock=sim.clock.now,
                           self_service=SelfServiceDesk(lx),
                           auto_ready_after_s=AGENT_WRAP_UP_S + 5, tick_s=0.02,
                           known_live_calls=live_calls_of(lx))
        lx.parts["telephony"] = stasis
        server, server_task, bound = await _http(lx, host, port)
        runner = asyncio.create_task(stasis.run(client.events(raw=True)))
        await sim.wait_for_app(timeout=10)
        gen = LoadGenerator(
            sim,
            queues=[QueueLoad("95598", 70, ivr_digits="11", patience_mean=150),   # repair
                    QueueLoad("95598", 40, ivr_digits="3", patience_mean=120),    # billing
                    QueueLoad("95598", 15, ivr_digits="4", patience_mean=200),    # complaints
                    QueueLoad("95598", 25, ivr_digits="0", patience_mean=100)],   # any agent
            agents=[AgentLoad(f"PJSIP/{emp}", wrap_up=AGENT_WRAP_UP_S)
                    for emp, _, _ in DEMO_AGENTS],
            seed=seed, start_hour=start_hour)
        base = f"http://{host}:{bound}"
        typer.echo(
            f"Lianxin demo: a {hours:g} h call-center day from "
            f"{start.astimezone(ZoneInfo(lx.settings.timezone)):%H:%M} at x{speed:g} "
            f"(about {hours * 3600 / speed / 60:.1f} real minutes; Ctrl-C stops it)\n"
            f"  data          {lx.settings.home} (store: {lx.settings.store})\n"
            f"  wallboard     {base}/wallboard\n"
            f"  API docs      {base}/docs\n"
            f"  live calls    {base}/telephony/status\n"
            f"  CLI           lianxin wallboard | lianxin call list | lianxin agent list\n"
            f"  simulated ARI {sim.base_url}/ari (user {sim.username})\n")
        load = asyncio.create_task(gen.run(hours * 3600))
        stopper = asyncio.create_task(stop.wait())
        try:
            while not load.done() and not stop.is_set():
                await asyncio.wait({load, stopper}, timeout=every,
                                   return_when=asyncio.FIRST_COMPLETED)
                typer.echo(_board_line(lx, stasis, gen, sim.clock.now()))
        finally:
            await gen.stop()
            load.cancel()
            stopper.cancel()
            with contextlib.suppress(BaseException):
                await load
            await stasis.drain()
            s = gen.stats
            typer.echo(
                f"\nSummary of the simulated day "
                f"({sim.clock.now().astimezone(ZoneInfo(lx.settings.timezone)):%Y-%m-%d %H:%M}):\n"
                f"  calls placed {s.placed}, connected to an agent {s.connected}, "
                f"abandoned {s.abandoned}, survey answers {s.survey_answers}\n"
                f"  adapter: {stasis.stats['events']} ARI events, {stasis.stats['commands']} "
                f"commands, {stasis.stats['duplicates']} duplicates dropped, "
                f"{stasis.stats['rejected']} refused\n"
                f"  the events stay in {lx.settings.home}: `lianxin wallboard --at "
                f"{sim.clock.now().isoformat(timespec='seconds')}` shows that day again")
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
            await client.close()
            await _stop_http(server, server_task)
            lx.parts.pop("telephony", None)
