"""HTTP routes: the core commands (calls, agents, work orders) and queries
(wallboard, agent board, calls and their projected events).

Every command message of ``commands.messages`` is a POST whose JSON body is
the message without its path fields. ``Idempotency-Key`` is the command id
(a retry with the same key changes nothing and answers ``duplicate: true``;
the same key with another method, path or body is a 422 problem, see
``lianxin.http.idempotency``),
``If-Match`` pins the aggregate version (a mismatch is 409), ``X-Actor``
says who asked. The answer carries the Outcome: aggregate id, the log
position the command's events are complete up to, and whether it was a
duplicate. Pass that position as ``?min_position=`` to any query to read
your own writes (504 if the read models do not get there in time).
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime
from typing import Any, Optional, get_type_hints
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from commands import messages as m
from domain.errors import InvalidValue
from lianxin.http import idempotency, problems
from lianxin.http.problems import problem_response
from queries import agents as agent_queries
from queries import calls as call_queries
from queries import wallboard as wallboard_queries

router = APIRouter()

# How long a query waits for ?min_position= (app.state.read_timeout_s overrides).
READ_TIMEOUT_S = 5.0


class CommandOutcome(BaseModel):
    """What a command did."""

    aggregate_id: Optional[UUID] = Field(None, description="the aggregate it acted on")
    position: int = Field(description="log position its events are complete up to; "
                                      "pass as ?min_position= to read your writes")
    new_events: int = Field(description="events recorded by this command (0 for a duplicate)")
    duplicate: bool = Field(description="true when the command id was applied before")
    result: Any = None


# -- commands -----------------------------------------------------------------
HEADER_FIELDS = {"command_id", "expected_version"}


def body_model(cmd: type[m.Command], path_fields: tuple[str, ...]) -> type[BaseModel]:
    """The JSON body of a command: its dataclass fields minus the path ones.
    Unknown fields are refused (422 naming them) rather than ignored."""
    hints = get_type_hints(cmd)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cmd):
        if f.name in path_fields:
            continue
        if f.default is not dataclasses.MISSING:
            spec = Field(default=f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            spec = Field(default_factory=f.default_factory)  # type: ignore[misc]
        else:
            spec = Field(...)
        if f.name == "command_id":
            spec.description = "idempotency key (the Idempotency-Key header wins)"
        elif f.name == "expected_version":
            spec.description = "aggregate version to act on (the If-Match header wins)"
        elif f.name == "occurred_at":
            spec.description = "when it happened at the source, with offset (default: now)"
        fields[f.name] = (hints[f.name], spec)
    return create_model(f"{cmd.__name__}Body", __config__=ConfigDict(extra="forbid"),
                        **fields)


def parse_if_match(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise HTTPException(400, f"If-Match must be an aggregate version such as \"3\", "
                                 f"not {value!r}")
    return int(text)


def execute(request: Request, cmd: m.Command) -> CommandOutcome:
    idempotency.claim(request)
    outcome = request.app.state.lianxin.commands.handle(cmd)
    return CommandOutcome(aggregate_id=outcome.aggregate_id, position=outcome.position,
                          new_events=outcome.new_events, duplicate=outcome.duplicate,
                          result=outcome.result)


def command_route(path: str, cmd: type[m.Command], *, summary: str, tag: str,
                  path_params: dict[str, type] | None = None, creates: bool = False) -> None:
    path_params = path_params or {}
    Body = body_model(cmd, tuple(path_params))
    required = any(f.is_required() for f in Body.model_fields.values())

    def endpoint(request: Request, response: Response, body: Any,
                 idempotency_key: Optional[str], if_match: Optional[str],
                 x_actor: Optional[str], **path: Any) -> CommandOutcome:
        # Attribute values, not model_dump(): UUIDs and datetimes stay typed.
        values = {k: getattr(body, k) for k in Body.model_fields} if body is not None else {}
        if idempotency_key is not None:
            if not idempotency_key.strip():
                raise InvalidValue("Idempotency-Key must not be empty", field="Idempotency-Key")
            values["command_id"] = idempotency_key
        expected = parse_if_match(if_match)
        if expected is not None:
            values["expected_version"] = expected
        if x_actor and not values.get("actor"):
            values["actor"] = x_actor
        result = execute(request, cmd(**values, **path))
        # 201 only when something new was created; a retried creation is 200.
        response.status_code = 201 if creates and not result.duplicate else 200
        response.headers["Lianxin-Position"] = str(result.position)
        return result

    params = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("response", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Response),
    ]
    for name, typ in path_params.items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=typ,
                                        default=Path(...)))
    params += [
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Body if required else Optional[Body],  # type: ignore[valid-type]
                          default=... if required else None),
        inspect.Parameter("idempotency_key", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Optional[str],
                          default=Header(None, alias="Idempotency-Key",
                                         description="command id: retries are no-ops")),
        inspect.Parameter("if_match", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=Header(None, alias="If-Match",
                                         description="expected aggregate version")),
        inspect.Parameter("x_actor", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=Header(None, alias="X-Actor", description="who asks")),
    ]

    def call(request: Request, response: Response, **kwargs: Any) -> CommandOutcome:
        names = ("body", "idempotency_key", "if_match", "x_actor")
        fixed = {k: kwargs.pop(k) for k in names}
        return endpoint(request, response, fixed["body"], fixed["idempotency_key"],
                        fixed["if_match"], fixed["x_actor"], **kwargs)

    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__name__ = f"{cmd.__name__}"
    doc = (cmd.__doc__ or "").strip()
    if doc.startswith(cmd.__name__ + "("):  # the dataclass's generated signature
        doc = summary
    router.add_api_route(path, call, methods=["POST"], response_model=CommandOutcome,
                         summary=summary, tags=[tag], status_code=201 if creates else 200,
                         description=doc, responses=problems.COMMAND_PROBLEMS,
                         dependencies=[idempotency.FINGERPRINT])


CALL = {"call_id": UUID}
AGENT = {"employee_no": str}
WORK_ORDER = {"work_order_id": UUID}

COMMAND_ROUTES: list[tuple[str, type[m.Command], str, dict[str, type], bool]] = [
    ("/calls", m.OfferCall, "Offer a call (external_id is its idempotency key)", {}, True),
    ("/calls/{call_id}/ivr", m.EnterIvr, "Enter an IVR menu", CALL, False),
    ("/calls/{call_id}/menu-choice", m.ChooseMenuOption, "Record a DTMF menu choice", CALL, False),
    ("/calls/{call_id}/self-service", m.UseSelfService, "Record self-service use", CALL, False),
    ("/calls/{call_id}/queue", m.QueueCall, "Queue the call", CALL, False),
    ("/calls/{call_id}/alert", m.AlertAgent, "Alert a ready agent (route the call)", CALL, False),
    ("/calls/{call_id}/ring-no-answer", m.ReportRingNoAnswer, "The alerted agent did not answer",
     CALL, False),
    ("/calls/{call_id}/answer", m.AnswerCall, "The alerted agent answered", CALL, False),
    ("/calls/{call_id}/hold", m.HoldCall, "Put the caller on hold", CALL, False),
    ("/calls/{call_id}/resume", m.ResumeCall, "Take the caller off hold", CALL, False),
    ("/calls/{call_id}/transfer", m.TransferCall, "Transfer (blind or attended; to_leg_id: "
                                                  "to the answered consult leg)", CALL, False),
    ("/calls/{call_id}/consult/alert", m.AlertConsult,
     "Attended transfer: a colleague's phone rings for a consultation", CALL, False),
    ("/calls/{call_id}/consult/answer", m.AnswerConsult, "The consulted colleague answered",
     CALL, False),
    ("/calls/{call_id}/consult/missed", m.ReportConsultMissed,
     "The consulted colleague did not answer (no answer, busy, canceled)", CALL, False),
    ("/calls/{call_id}/consult/end", m.EndConsult,
     "The consultation ended without a transfer", CALL, False),
    ("/calls/{call_id}/conference/add", m.AddConferenceParty, "Add a conference party", CALL,
     False),
    ("/calls/{call_id}/conference/remove", m.RemoveConferenceParty,
     "Remove a conference party", CALL, False),
    ("/calls/{call_id}/monitor/start", m.StartMonitor, "Supervisor listens, whispers or barges",
     CALL, False),
    ("/calls/{call_id}/monitor/stop", m.StopMonitor, "Supervisor stops monitoring", CALL, False),
    ("/calls/{call_id}/force-disconnect", m.ForceDisconnect, "Supervisor ends the call", CALL,
     False),
    ("/calls/{call_id}/recording/start", m.StartRecording, "Recording started", CALL, False),
    ("/calls/{call_id}/recording/stop", m.StopRecording, "Recording stopped", CALL, False),
    ("/calls/{call_id}/end", m.EndCall, "The call ended (a caller hang-up before answer is an "
                                        "abandon)", CALL, False),
    ("/calls/{call_id}/wrap-up", m.CompleteWrapUp, "Complete after-call work", CALL, False),
    ("/calls/{call_id}/survey", m.AnswerSurvey, "Record the satisfaction survey answer", CALL,
     False),
    ("/agents", m.RegisterAgent, "Register an agent", {}, True),
    ("/agents/{employee_no}/login", m.LogIn, "Log in at an endpoint", AGENT, False),
    ("/agents/{employee_no}/logout", m.LogOut, "Log out", AGENT, False),
    ("/agents/{employee_no}/ready", m.MakeReady, "Become ready", AGENT, False),
    ("/agents/{employee_no}/not-ready", m.MakeNotReady, "Become not ready with a reason", AGENT,
     False),
    ("/agents/{employee_no}/skills", m.ChangeSkills, "Replace the agent's skills", AGENT, False),
    ("/work-orders", m.OpenWorkOrder, "Open a work order (Idempotency-Key makes its id)", {},
     True),
    ("/work-orders/{work_order_id}/dispatch", m.DispatchWorkOrder, "Dispatch to a department",
     WORK_ORDER, False),
    ("/work-orders/{work_order_id}/accept", m.AcceptWorkOrder, "The department accepts it",
     WORK_ORDER, False),
    ("/work-orders/{work_order_id}/progress", m.NoteProgress, "Note progress", WORK_ORDER, False),
    ("/work-orders/{work_order_id}/resolve", m.ResolveWorkOrder, "Resolve", WORK_ORDER, False),
    ("/work-orders/{work_order_id}/callback", m.RecordCallback, "Record a callback (回访)",
     WORK_ORDER, False),
    ("/work-orders/{work_order_id}/close", m.CloseWorkOrder, "Close a resolved work order",
     WORK_ORDER, False),
    ("/work-orders/{work_order_id}/reopen", m.ReopenWorkOrder, "Reopen", WORK_ORDER, False),
]

_TAGS = {"/calls": "calls", "/agents": "agents", "/work-orders": "work orders"}
for _path, _cmd, _summary, _params, _creates in COMMAND_ROUTES:
    _tag = next(t for prefix, t in _TAGS.items() if _path.startswith(prefix))
    command_route(_path, _cmd, summary=_summary, tag=_tag, path_params=_params,
                  creates=_creates)


# -- queries ------------------------------------------------------------------
MinPosition = Query(None, ge=0, description="wait until the read models reached this log "
                                            "position (read your own writes)")


def read_models(request: Request, min_position: int | None, response: Response) -> Any:
    """The runner, after waiting for ``min_position`` if asked."""
    runner = request.app.state.lianxin.read_models()
    timeout = getattr(request.app.state, "read_timeout_s", READ_TIMEOUT_S)
    if min_position is not None and not runner.wait_for(min_position, timeout):
        raise ReadTimeout(min_position, runner.position, timeout)
    response.headers["Lianxin-Position"] = str(runner.position)
    return runner


class ReadTimeout(Exception):
    def __init__(self, wanted: int, reached: int, timeout: float) -> None:
        super().__init__(f"read models reached {reached}, not {wanted}")
        self.wanted, self.reached, self.timeout = wanted, reached, timeout


def read_timeout_problem(request: Request, exc: ReadTimeout) -> Any:
    return problem_response(504, "Read models behind",
                            f"the read models did not reach position {exc.wanted} within "
                            f"{exc.timeout:g} s (they are at {exc.reached})",
                            type_="https://lianxin.dev/problems/read-timeout",
                            instance=request.url.path, code="read-timeout",
                            min_position=exc.wanted, position=exc.reached)


@router.get("/wallboard", tags=["queries"], summary="Per-queue wallboard and agents by state")
def get_wallboard(request: Request, response: Response,
                  min_position: Optional[int] = MinPosition,
                  at: Optional[datetime] = Query(None, description="instant (default now), "
                                                 "with offset; its local day is 'today'"),
                  threshold_s: Optional[int] = Query(None, ge=0, le=86400,
                                                     description="service-level threshold")
                  ) -> dict[str, Any]:
    read_models(request, min_position, response)
    return wallboard_queries.wallboard(request.app.state.lianxin, at=at, threshold_s=threshold_s)


@router.get("/agents", tags=["queries"], summary="The agent board")
def get_agents(request: Request, response: Response, min_position: Optional[int] = MinPosition,
               team: Optional[str] = None, state: Optional[str] = None) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    return agent_queries.list_agents(request.app.state.lianxin, team=team, state=state)


@router.get("/agents/{employee_no}", tags=["queries"], summary="One agent's state")
def get_agent(request: Request, response: Response, employee_no: str,
              min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    agent = agent_queries.get_agent(request.app.state.lianxin, employee_no)
    response.headers["ETag"] = f'"{agent["version"]}"'
    return agent


@router.get("/calls", tags=["queries"], summary="Live calls (not ended), oldest first")
def get_live_calls(request: Request, response: Response,
                   min_position: Optional[int] = MinPosition,
                   queue: Optional[str] = None) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    return call_queries.live_calls(request.app.state.lianxin, queue=queue)


@router.get("/calls/{call_id}", tags=["queries"], summary="A call's current state")
def get_call(request: Request, response: Response, call_id: UUID,
             min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    call = call_queries.get_call(request.app.state.lianxin, call_id)
    response.headers["ETag"] = f'"{call["version"]}"'
    return call


@router.get("/calls/{call_id}/events", tags=["queries"],
            summary="Every event of the call in order, with offsets (no personal data)")
def get_call_events(request: Request, response: Response, call_id: UUID,
                    min_position: Optional[int] = MinPosition) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    return call_queries.call_events(request.app.state.lianxin, call_id)


@router.get("/projections", tags=["operations"], summary="Read-model positions and lag")
def get_projections(request: Request) -> dict[str, Any]:
    runner = request.app.state.lianxin.read_models()
    return projection_status(runner)


def projection_status(runner: Any) -> dict[str, Any]:
    runner.refresh()
    head = runner.head()
    error = runner.last_error
    return {"head": head, "position": runner.position, "behind": head - runner.position,
            "running": runner.running,
            "last_error": None if error is None else f"{type(error).__name__}: {error}",
            "projections": {p.name: runner.position_of(p.name) for p in runner.projections}}


@router.get("/health", tags=["operations"], summary="Liveness")
def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "store": request.app.state.lianxin.settings.store}


def install(api: Any) -> None:
    """Handlers this router needs beyond the shared problem handlers."""
    api.add_exception_handler(ReadTimeout, read_timeout_problem)
