"""HTTP routes: work-order follow-through (deadlines, urging, merge/split,
referrals, callbacks), outage notices and shift handovers.

The basic lifecycle (POST /work-orders to open — which also answers
``merged`` or ``outage_information`` in ``result`` — dispatch, accept,
progress, resolve, close, reopen) is served by ``lianxin.http.core``. The
command routes here follow its conventions: JSON body = the command message,
``Idempotency-Key``, ``If-Match``, ``X-Actor`` headers, an Outcome answer;
errors are RFC 7807 problems (422 bad field or a key reused for another
request, 404 unknown, 409 refused).
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any, Optional
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response

from commands import work_order_messages as wm
from commands.messages import Command
from commands.timers import WorkOrderTimers, timer_service
from domain.errors import InvalidValue
from domain.handover import SNAPSHOT_LISTS
from lianxin.http import idempotency, problems
from lianxin.http.core import CommandOutcome, body_model, execute, parse_if_match, read_models
from lianxin.wiring import register_service
from queries import self_service
from queries import work_orders as q

router = APIRouter()
register_service(timer_service)

TAG = "work orders"
MinPosition = Query(None, ge=0, description="wait until the read models reached this position")
Now = Query(None, description="the moment to judge deadlines at (ISO-8601 with offset); "
                              "default now")


def _route(path: str, cmd: type[Command], summary: str, path_params: dict[str, type],
           *, creates: bool = False, tag: str = TAG, fill: Any = None,
           server_fields: tuple[str, ...] = ()) -> None:
    """A POST route for ``cmd``; ``fill(request, values)`` adds the
    ``server_fields`` the server computes (the handover snapshot): they are
    not part of the body, so a client that sends one gets a 422 naming it."""
    Body = body_model(cmd, tuple(path_params) + server_fields)
    required = any(f.is_required() for f in Body.model_fields.values())

    def call(request: Request, response: Response, **kw: Any) -> CommandOutcome:
        body = kw.pop("body")
        key, if_match, x_actor = kw.pop("idempotency_key"), kw.pop("if_match"), kw.pop("x_actor")
        values = {k: getattr(body, k) for k in Body.model_fields} if body is not None else {}
        if key is not None:
            if not key.strip():
                raise InvalidValue("Idempotency-Key must not be empty", field="Idempotency-Key")
            values["command_id"] = key
        expected = parse_if_match(if_match)
        if expected is not None:
            values["expected_version"] = expected
        if x_actor and not values.get("actor"):
            values["actor"] = x_actor
        if fill is not None:
            fill(request, values)
        result = execute(request, cmd(**values, **kw))
        if creates and not result.duplicate:
            response.status_code = 201
        response.headers["Lianxin-Position"] = str(result.position)
        return result

    P = inspect.Parameter
    params = [P("request", P.POSITIONAL_OR_KEYWORD, annotation=Request),
              P("response", P.POSITIONAL_OR_KEYWORD, annotation=Response)]
    params += [P(n, P.KEYWORD_ONLY, annotation=t, default=Path(...))
               for n, t in path_params.items()]
    params += [
        P("body", P.KEYWORD_ONLY, annotation=Body if required else Optional[Body],  # type: ignore[valid-type]
          default=... if required else None),
        P("idempotency_key", P.KEYWORD_ONLY, annotation=Optional[str],
          default=Header(None, alias="Idempotency-Key")),
        P("if_match", P.KEYWORD_ONLY, annotation=Optional[str],
          default=Header(None, alias="If-Match")),
        P("x_actor", P.KEYWORD_ONLY, annotation=Optional[str],
          default=Header(None, alias="X-Actor")),
    ]
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__name__ = cmd.__name__
    router.add_api_route(path, call, methods=["POST"], response_model=CommandOutcome,
                         summary=summary, tags=[tag], status_code=201 if creates else 200,
                         responses=problems.COMMAND_PROBLEMS,
                         dependencies=[idempotency.FINGERPRINT])


def _snapshot(request: Request, values: dict[str, Any]) -> None:
    """The handover lists are what the read models say at that moment, never
    what a client claims: a handover is evidence of what was handed over."""
    lx = request.app.state.lianxin
    q.fresh(lx)
    values.update(q.handover_snapshot(lx, now=values.get("occurred_at")))


WO = {"work_order_id": UUID}
OUTAGE = {"reference": str}

_route("/work-orders/referrals", wm.ReceiveReferral,
       "Receive an order from 12345 / 110 / 119 (partner and their reference)", {}, creates=True)
_route("/work-orders/{work_order_id}/refer", wm.ReferWorkOrder,
       "Hand the order to a linked public service", WO)
_route("/work-orders/{work_order_id}/reply", wm.SendReply,
       "Report the result back to the referring partner", WO)
_route("/work-orders/{work_order_id}/pause", wm.PauseClock,
       "Pause the deadline clock (waiting for the customer)", WO)
_route("/work-orders/{work_order_id}/resume", wm.ResumeClock,
       "Resume the clock: deadlines move by the time paused", WO)
_route("/work-orders/{work_order_id}/callback-attempts", wm.RecordCallbackAttempt,
       "Record a callback attempt (retries per policy; reached may reopen)", WO)
_route("/work-orders/{work_order_id}/reassign-callback", wm.ReassignCallback,
       "Give the pending callback (回访) to another agent (and team)", WO)
_route("/work-orders/{work_order_id}/split", wm.SplitWorkOrder,
       "Split a wrongly merged report off into its own order", WO)
_route("/work-orders/{work_order_id}/merge", wm.MergeWorkOrder,
       "Merge this order into another (duplicate)", WO)
_route("/outages", wm.PublishOutage, "Publish an outage notice (flagged if < 7 days ahead)", {},
       creates=True, tag="outages")
_route("/outages/{reference}/revise", wm.ReviseOutage, "Change an outage's window", OUTAGE,
       tag="outages")
_route("/outages/{reference}/cancel", wm.CancelOutage, "Cancel an outage", OUTAGE, tag="outages")
_route("/handovers", wm.CreateHandover,
       "Write a shift handover (its lists always come from the read models)", {},
       creates=True, tag="handovers", fill=_snapshot, server_fields=SNAPSHOT_LISTS)
_route("/handovers/{handover_id}/acknowledge", wm.AcknowledgeHandover,
       "The incoming shift acknowledges the handover", {"handover_id": UUID}, tag="handovers")


@router.post("/work-orders/timers/tick", tags=[TAG],
             summary="Fire every urging, escalation and callback give-up due by `now`")
def tick(request: Request, now: Optional[datetime] = Now) -> dict[str, Any]:
    lx = request.app.state.lianxin
    if now is not None and now.tzinfo is None:
        raise InvalidValue("now must carry a timezone offset", field="now")
    timers = lx.parts.get("work_order_timers")
    if timers is None:
        timers = lx.parts["work_order_timers"] = WorkOrderTimers(lx)
    return timers.tick(now).as_dict()


@router.get("/work-orders/inbox", tags=[TAG],
            summary="A department's inbox: overdue, due soon, open")
def get_inbox(request: Request, response: Response,
              department: Optional[str] = Query(None, description="omit for the dispatch desk"),
              now: Optional[datetime] = Now,
              min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    return q.inbox(request.app.state.lianxin, department, now=now)


@router.get("/work-orders/urgings", tags=[TAG], summary="Urgings and escalations in play")
def get_urgings(request: Request, response: Response, department: Optional[str] = None,
                min_position: Optional[int] = MinPosition) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    return q.urging_list(request.app.state.lianxin, department)


@router.get("/work-orders/callbacks", tags=[TAG], summary="Callback worklist (回访)")
def get_callbacks(request: Request, response: Response, agent: Optional[str] = None,
                  team: Optional[str] = None, now: Optional[datetime] = Now,
                  min_position: Optional[int] = MinPosition) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    return q.callback_worklist(request.app.state.lianxin, agent=agent, team=team, now=now)


@router.get("/work-orders/status/{number}", tags=[TAG],
            summary="What the IVR tells a caller who keys this order number")
def get_status(request: Request, number: str) -> dict[str, Any]:
    return {"number": number,
            "status": self_service.work_order_status(request.app.state.lianxin, number)}


@router.get("/work-orders/{ref}", tags=[TAG], summary="One work order by id or number")
def get_work_order(request: Request, response: Response, ref: str,
                   min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    return q.get_work_order(request.app.state.lianxin, ref)


@router.get("/outages", tags=["outages"], summary="Outage board: current and coming outages")
def get_outages(request: Request, response: Response, now: Optional[datetime] = Now,
                include_past: bool = False, area: Optional[str] = None,
                min_position: Optional[int] = MinPosition) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    lx = request.app.state.lianxin
    if area is not None:
        return q.outages_in_area(lx, area, at=now)
    return q.outage_board(lx, now=now, include_past=include_past)


@router.get("/outages/{reference}/enquiries", tags=["outages"],
            summary="The fault reports this notice answered instead of a repair order")
def get_outage_enquiries(request: Request, response: Response, reference: str,
                         min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    return q.outage_enquiries(request.app.state.lianxin, reference)


@router.get("/handovers/snapshot", tags=["handovers"],
            summary="What a handover written now would list")
def get_snapshot(request: Request, response: Response, now: Optional[datetime] = Now,
                 min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    return q.handover_snapshot(request.app.state.lianxin, now=now)


@router.get("/handovers", tags=["handovers"], summary="Recent shift handovers")
def get_handovers(request: Request, response: Response,
                  min_position: Optional[int] = MinPosition) -> list[dict[str, Any]]:
    read_models(request, min_position, response)
    return q.handovers(request.app.state.lianxin)


@router.get("/handovers/{handover_id}", tags=["handovers"], summary="One handover")
def get_handover(request: Request, response: Response, handover_id: UUID,
                 min_position: Optional[int] = MinPosition) -> dict[str, Any]:
    read_models(request, min_position, response)
    return q.get_handover(request.app.state.lianxin, handover_id)
