"""CLI commands: serving, projections, and inspecting/commanding calls,
agents and work orders.

Groups (``call``, ``agent``, ``work-orders``, ``projections``) are shared:
another area adds commands to one with ``group(root, "call")`` instead of
registering a second group of the same name (which would hide this one).

Errors exit with a non-zero code and a message naming the field: 1 for a
refused command or a missing record, 2 for bad options (typer's own).
Queries first bring the read models up to date (``--no-catch-up`` reads them
as they are, e.g. while a separate ``projections run`` follows the log).
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from typing import Any, Callable, NoReturn, Optional
from uuid import UUID

import typer

from commands import messages as m
from domain.errors import DomainError, InvalidValue

ROOT_STATE: dict[str, Any] = {}


def group(root: typer.Typer, name: str, help: str = "") -> typer.Typer:
    """The sub-command group ``name`` of ``root``, created on first use."""
    for info in root.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(no_args_is_help=True, help=help)
    root.add_typer(sub, name=name, help=help)
    return sub


# -- plumbing -----------------------------------------------------------------
class _Session:
    """One wired instance per CLI invocation, closed on exit."""

    def __init__(self) -> None:
        from lianxin.wiring import build

        self.lianxin = build()

    def __enter__(self) -> Any:
        return self.lianxin

    def __exit__(self, *exc: Any) -> None:
        self.lianxin.close()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def describe(exc: DomainError) -> str:
    field = exc.context.get("field")
    return f"{field}: {exc.message}" if field else exc.message


def emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def run_command(cmd_factory: Callable[[], m.Command]) -> None:
    """Build the command (domain/value errors name the field), run it, print
    the outcome as JSON."""
    try:
        cmd = cmd_factory()
    except (ValueError, TypeError) as exc:
        fail(str(exc), 2)
    with _Session() as lx:
        try:
            out = lx.commands.handle(cmd)
        except DomainError as exc:
            fail(describe(exc))
        emit({"aggregate_id": out.aggregate_id, "position": out.position,
              "new_events": out.new_events, "duplicate": out.duplicate})


def query(fn: Callable[[Any], Any], catch_up: bool) -> None:
    with _Session() as lx:
        runner = lx.read_models()
        if catch_up:
            runner.run_once()
        try:
            emit(fn(lx))
        except DomainError as exc:
            fail(describe(exc))


def parse_uuid(value: str, field: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidValue(f"{value!r} is not a valid id", field=field) from None


def parse_when(value: Optional[str], field: str = "--at") -> Optional[datetime]:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{field}: {value!r} is not an ISO-8601 time", 2)
    if when.tzinfo is None:
        fail(f"{field}: {value!r} must carry a timezone offset, e.g. +08:00", 2)
    return when


def parse_skills(items: list[str]) -> dict[str, int]:
    skills: dict[str, int] = {}
    for item in items:
        name, sep, level = item.partition("=")
        if not sep or not name or not level.lstrip("-").isdigit():
            fail(f"--skill: {item!r} must look like name=level, e.g. power=3", 2)
        skills[name] = int(level)
    return skills


CatchUp = typer.Option(True, "--catch-up/--no-catch-up",
                       help="bring the read models up to date before reading")
Key = typer.Option(None, "--key", help="idempotency key: a retry with the same key is a no-op")
Actor = typer.Option(None, "--actor", help="who asks (recorded on the event)")
When = typer.Option(None, "--at", help="when it happened (ISO-8601 with offset); default now")


# -- registration -------------------------------------------------------------
def register(root: typer.Typer) -> None:
    """Add this area's commands and groups to the root `lianxin` app."""
    _serve(root)
    _projections(group(root, "projections", "Run and inspect the read models"))
    _calls(group(root, "call", "Inspect calls"))
    _agents(group(root, "agent", "Agents: commands and the agent board"))
    _work_orders(group(root, "work-orders", "Work orders (工单)"))

    @root.command("wallboard")
    def wallboard(at: Optional[str] = typer.Option(None, help="instant (ISO-8601 with offset)"),
                  threshold: Optional[int] = typer.Option(None, "--threshold", min=0,
                                                          help="service-level seconds"),
                  catch_up: bool = CatchUp) -> None:
        """Per queue: waiting, longest wait, today's figures; agents by state."""
        from queries.wallboard import wallboard as board

        when = parse_when(at)
        query(lambda lx: board(lx, at=when, threshold_s=threshold), catch_up)


def _serve(root: typer.Typer) -> None:
    @root.command("serve")
    def serve(host: str = typer.Option("127.0.0.1", help="interface to listen on"),
              port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
              log_level: str = typer.Option("info", help="uvicorn log level")) -> None:
        """Serve the HTTP API, with the read models and services in-process."""
        import uvicorn

        from lianxin.http import create_app
        from lianxin.wiring import build

        lx = build()
        typer.echo(f"Lianxin on http://{host}:{port}  (API docs: /docs, wallboard: /wallboard)"
                   f"\ndata: {lx.settings.home}  store: {lx.settings.store}")
        try:
            uvicorn.run(create_app(lx, services=True), host=host, port=port,
                        log_level=log_level)
        finally:
            lx.close()


def _projections(g: typer.Typer) -> None:
    @g.command("run")
    def run(once: bool = typer.Option(False, "--once", help="catch up, then exit"),
            poll: float = typer.Option(0.1, min=0.001, help="seconds between polls"),
            page: int = typer.Option(1000, min=1, help="events per transaction"),
            pause: float = typer.Option(0.0, min=0.0, hidden=True,
                                        help="sleep between batches (tests)")) -> None:
        """Follow the event log and keep the read models up to date. Safe to
        kill at any instant: a restart resumes after the last committed batch."""
        with _Session() as lx:
            runner = lx.read_models()
            runner.page = page
            if once:
                typer.echo(f"applied {runner.run_once()} events; position {runner.position}")
                return
            stop: list[int] = []
            signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
            typer.echo(f"following the log from position {runner.position}", err=True)
            try:
                while not stop:
                    applied = runner.run_page() if pause else runner.run_once()
                    if pause and applied:
                        time.sleep(pause)
                    elif not applied:
                        time.sleep(poll)
            except KeyboardInterrupt:
                pass
            typer.echo(f"stopped at position {runner.position}", err=True)

    @g.command("status")
    def status() -> None:
        """Each projection's position against the head of the log."""
        from lianxin.http.core import projection_status

        with _Session() as lx:
            emit(projection_status(lx.read_models()))

    @g.command("rebuild")
    def rebuild(yes: bool = typer.Option(False, "--yes", help="confirm")) -> None:
        """Throw the read models away and rebuild them from the events.
        Stop `serve` and `projections run` on this data directory first."""
        if not yes:
            fail("--yes: rebuilding drops every read model; confirm with --yes", 2)
        from lianxin.settings import Settings

        path = Settings.from_env().read_models_path
        for suffix in ("", "-wal", "-shm"):
            target = path.with_name(path.name + suffix)
            if target.exists():
                target.unlink()
        with _Session() as lx:
            runner = lx.read_models()
            typer.echo(f"applied {runner.run_once()} events; position {runner.position}")


def _calls(g: typer.Typer) -> None:
    @g.command("show")
    def show(call_id: str = typer.Argument(..., help="conversation id"),
             events: bool = typer.Option(True, "--events/--no-events",
                                         help="include the projected events"),
             catch_up: bool = CatchUp) -> None:
        """A call's current state and its events with offsets."""
        from queries.calls import call_events, get_call

        def read(lx: Any) -> Any:
            cid = parse_uuid(call_id, "call_id")
            data = get_call(lx, cid)
            if events:
                data["events"] = call_events(lx, cid)
            return data

        query(read, catch_up)

    @g.command("list")
    def list_calls(queue: Optional[str] = typer.Option(None, help="only this queue"),
                   catch_up: bool = CatchUp) -> None:
        """Live calls, oldest first."""
        from queries.calls import live_calls

        query(lambda lx: live_calls(lx, queue=queue), catch_up)


def _agents(g: typer.Typer) -> None:
    @g.command("list")
    def list_agents(team: Optional[str] = typer.Option(None), state: Optional[str] = typer.Option(None),
                    catch_up: bool = CatchUp) -> None:
        """The agent board."""
        from queries.agents import list_agents as board

        query(lambda lx: board(lx, team=team, state=state), catch_up)

    @g.command("show")
    def show(employee_no: str, catch_up: bool = CatchUp) -> None:
        """One agent: state, reason, since when, current call."""
        from queries.agents import get_agent

        query(lambda lx: get_agent(lx, employee_no), catch_up)

    @g.command("register")
    def register_agent(employee_no: str, name: str = typer.Option(..., help="display name"),
                       team: str = typer.Option("", help="team"),
                       skill: list[str] = typer.Option([], "--skill", help="name=level, repeatable"),
                       key: Optional[str] = Key, actor: Optional[str] = Actor,
                       at: Optional[str] = When) -> None:
        """Register an agent."""
        skills = parse_skills(skill)
        run_command(lambda: m.RegisterAgent(employee_no=employee_no, name=name, team=team,
                                            skills=skills, command_id=key, actor=actor,
                                            occurred_at=parse_when(at)))

    @g.command("login")
    def login(employee_no: str, endpoint: str = typer.Option(..., help="e.g. PJSIP/1001"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Log in at an endpoint (the agent starts not ready)."""
        run_command(lambda: m.LogIn(employee_no=employee_no, endpoint=endpoint, command_id=key,
                                    actor=actor, occurred_at=parse_when(at)))

    @g.command("ready")
    def ready(employee_no: str, key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Become ready for calls."""
        run_command(lambda: m.MakeReady(employee_no=employee_no, command_id=key, actor=actor,
                                        occurred_at=parse_when(at)))

    @g.command("not-ready")
    def not_ready(employee_no: str, reason: str = typer.Option(..., help="reason code"),
                  key: Optional[str] = Key, actor: Optional[str] = Actor,
                  at: Optional[str] = When) -> None:
        """Become not ready with a reason code (break, meal, training...)."""
        run_command(lambda: m.MakeNotReady(employee_no=employee_no, reason=reason,
                                           command_id=key, actor=actor,
                                           occurred_at=parse_when(at)))

    @g.command("logout")
    def logout(employee_no: str, reason: str = typer.Option("", help="reason"),
               key: Optional[str] = Key, actor: Optional[str] = Actor,
               at: Optional[str] = When) -> None:
        """Log out."""
        run_command(lambda: m.LogOut(employee_no=employee_no, reason=reason, command_id=key,
                                     actor=actor, occurred_at=parse_when(at)))


def _work_orders(g: typer.Typer) -> None:
    def wo(value: str) -> UUID:
        try:
            return UUID(value)
        except ValueError:
            fail(f"work_order_id: {value!r} is not a valid id", 2)

    @g.command("open")
    def open_(type: str = typer.Option(..., "--type", help="consultation, complaint, report, "
                                       "fault_repair, suggestion, praise"),
              summary: str = typer.Option(..., help="what the customer asked for"),
              category: str = typer.Option("", help="category"),
              channel: str = typer.Option("phone", help="intake channel"),
              call: Optional[str] = typer.Option(None, "--call", help="originating call id"),
              priority: str = typer.Option("normal", help="low, normal, high, urgent"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Open a work order (--key makes its id: a retry opens nothing new)."""
        call_id = None
        if call is not None:
            try:
                call_id = UUID(call)
            except ValueError:
                fail(f"--call: {call!r} is not a valid call id", 2)
        run_command(lambda: m.OpenWorkOrder(type=type, summary=summary, category=category,
                                            channel=channel, call_id=call_id, priority=priority,
                                            command_id=key, actor=actor,
                                            occurred_at=parse_when(at)))

    @g.command("dispatch")
    def dispatch(work_order_id: str, department: str = typer.Option(..., help="department"),
                 key: Optional[str] = Key, actor: Optional[str] = Actor,
                 at: Optional[str] = When) -> None:
        """Dispatch to a department."""
        run_command(lambda: m.DispatchWorkOrder(work_order_id=wo(work_order_id),
                                                department=department, command_id=key,
                                                actor=actor, occurred_at=parse_when(at)))

    @g.command("accept")
    def accept(work_order_id: str, department: str = typer.Option(..., help="department"),
               key: Optional[str] = Key, actor: Optional[str] = Actor,
               at: Optional[str] = When) -> None:
        """The department accepts the work order."""
        run_command(lambda: m.AcceptWorkOrder(work_order_id=wo(work_order_id),
                                              department=department, command_id=key,
                                              actor=actor, occurred_at=parse_when(at)))

    @g.command("resolve")
    def resolve(work_order_id: str, resolution: str = typer.Option(..., help="resolution code"),
                note: str = typer.Option("", help="free text (personal data)"),
                key: Optional[str] = Key, actor: Optional[str] = Actor,
                at: Optional[str] = When) -> None:
        """Resolve the work order."""
        run_command(lambda: m.ResolveWorkOrder(work_order_id=wo(work_order_id),
                                               resolution=resolution, note=note, command_id=key,
                                               actor=actor, occurred_at=parse_when(at)))

    @g.command("close")
    def close(work_order_id: str, key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Close a resolved work order."""
        run_command(lambda: m.CloseWorkOrder(work_order_id=wo(work_order_id), command_id=key,
                                             actor=actor, occurred_at=parse_when(at)))

    @g.command("reopen")
    def reopen(work_order_id: str, reason: str = typer.Option(..., help="why"),
               key: Optional[str] = Key, actor: Optional[str] = Actor,
               at: Optional[str] = When) -> None:
        """Reopen a resolved or closed work order."""
        run_command(lambda: m.ReopenWorkOrder(work_order_id=wo(work_order_id), reason=reason,
                                              command_id=key, actor=actor,
                                              occurred_at=parse_when(at)))
