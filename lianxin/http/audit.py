"""HTTP routes: replay for inspectors, past states, and the audit trail.

Reading a timeline, a recording or exporting a call's events needs the
reader's name (``X-Actor``) and a ``reason``; the read is recorded (an
AccessLog event, in the same chained log) before anything is returned, so a
read that could not be recorded is not served.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any, Optional
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from commands.audit_messages import RecordAccess
from domain.errors import InvalidValue
from lianxin.wiring import register_service
from queries import audit_bundle, audit_trail, point_in_time, replay
from queries.audit_anchors import anchor_service

router = APIRouter()
# Periodic anchors while `lianxin serve` runs (idle unless LIANXIN_AUDIT_ANCHOR_EVERY).
register_service(anchor_service)


def _lx(request: Request) -> Any:
    return request.app.state.lianxin


def _require_reader(actor: Optional[str], reason: Optional[str]) -> tuple[str, str]:
    if not actor or not actor.strip():
        raise InvalidValue("the X-Actor header must name who is reading", field="X-Actor")
    if not reason or not reason.strip():
        raise InvalidValue("a reason for reading is required", field="reason")
    return actor.strip(), reason.strip()


def _record(lx: Any, subject_kind: str, subject_id: str, resource_kind: str, resource: str,
            actor: str, reason: str) -> int:
    out = lx.commands.handle(RecordAccess(subject_kind=subject_kind, subject_id=subject_id,
                                          resource_kind=resource_kind, resource=resource,
                                          reason=reason, actor=actor,
                                          command_id=f"access-{uuid.uuid4()}"))
    return out.position


def _call_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidValue(f"{text!r} is not a valid call id", field="call_id") from None


# -- replay ----------------------------------------------------------------------
@router.get("/calls/{call_id}/timeline", tags=["audit"])
def call_timeline(request: Request, call_id: str, reason: Optional[str] = Query(None),
                  x_actor: Optional[str] = Header(None)) -> dict[str, Any]:
    """Every event of the conversation in order, with offsets and actors."""
    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    cid = _call_id(call_id)
    result = replay.timeline(lx, cid)
    result["access_recorded_at_position"] = _record(lx, "call", str(cid), "timeline", "",
                                                    actor, why)
    return result


@router.get("/calls/{call_id}/recordings/{name}", tags=["audit"])
def call_recording(request: Request, call_id: str, name: str, reason: Optional[str] = Query(None),
                   x_actor: Optional[str] = Header(None)) -> Any:
    """The recording's reference and place in the call; the audio file itself
    when it is kept under ``$LIANXIN_HOME/recordings``."""
    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    cid = _call_id(call_id)
    info = replay.recording(lx, cid, name)
    position = _record(lx, "call", str(cid), "recording", name, actor, why)
    audio = Path(lx.settings.home) / "recordings" / f"{name}.{info['format']}"
    if audio.is_file() and audio.resolve().parent == (Path(lx.settings.home) / "recordings").resolve():
        return FileResponse(audio, headers={"X-Access-Recorded-At-Position": str(position)})
    return {**info, "audio_available": False, "access_recorded_at_position": position}


@router.get("/calls/{call_id}/accesses", tags=["audit"])
def call_accesses(request: Request, call_id: str, reason: Optional[str] = Query(None),
                  x_actor: Optional[str] = Header(None)) -> dict[str, Any]:
    """Who read this call's timeline, recordings or past state, when and why.
    The reasons may name the customer, so this read is named and recorded too."""
    from domain.access_log import access_log_id_for

    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    cid = _call_id(call_id)
    events = replay.stored_events(lx.app, access_log_id_for("call", str(cid)))
    listing = [{"position": pos, "at": e.occurred_at.isoformat(), "actor": e.actor,
                "resource_kind": e.resource_kind, "resource": e.resource,
                "reason": e.pii.get("reason")}
               for pos, e in events if type(e).__name__ == "Accessed"]
    if not listing:  # nothing to show: not a read of anyone's data, and no log to open
        replay.timeline(lx, cid, with_agents=False)  # an unknown call is a 404
        return {"call_id": str(cid), "accesses": []}
    position = _record(lx, "call", str(cid), "accesses", "", actor, why)
    return {"call_id": str(cid), "accesses": listing, "access_recorded_at_position": position}


# -- past states -----------------------------------------------------------------
# Each past state is read, then its reading is recorded (like a timeline), then
# it is returned: a read that could not be recorded is not served.
@router.get("/as-of/{timestamp}/wallboard", tags=["audit"])
def wallboard_as_of(request: Request, timestamp: str,
                    threshold_s: Optional[int] = Query(None), reason: Optional[str] = Query(None),
                    x_actor: Optional[str] = Header(None)) -> dict[str, Any]:
    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    at = point_in_time.parse_instant(timestamp)
    board = point_in_time.wallboard_as_of(lx, at, threshold_s=threshold_s)
    return _recorded(lx, board, ("center", "wallboard"), at, actor, why)


@router.get("/as-of/{timestamp}/calls/{call_id}", tags=["audit"])
def call_as_of(request: Request, timestamp: str, call_id: str,
               reason: Optional[str] = Query(None),
               x_actor: Optional[str] = Header(None)) -> dict[str, Any]:
    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    at = point_in_time.parse_instant(timestamp)
    cid = _call_id(call_id)
    state = point_in_time.call_as_of(lx, cid, at)
    return _recorded(lx, state, ("call", str(cid)), at, actor, why)


@router.get("/as-of/{timestamp}/agents/{employee_no}", tags=["audit"])
def agent_as_of(request: Request, timestamp: str, employee_no: str,
                reason: Optional[str] = Query(None),
                x_actor: Optional[str] = Header(None)) -> dict[str, Any]:
    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    at = point_in_time.parse_instant(timestamp)
    state = point_in_time.agent_as_of(lx, employee_no, at)
    return _recorded(lx, state, ("agent", employee_no), at, actor, why)


@router.get("/as-of/{timestamp}/work-orders/{work_order_id}", tags=["audit"])
def work_order_as_of(request: Request, timestamp: str, work_order_id: str,
                     reason: Optional[str] = Query(None),
                     x_actor: Optional[str] = Header(None)) -> dict[str, Any]:
    actor, why = _require_reader(x_actor, reason)
    lx = _lx(request)
    at = point_in_time.parse_instant(timestamp)
    try:
        wid = UUID(work_order_id)
    except ValueError:
        raise InvalidValue(f"{work_order_id!r} is not a valid work order id",
                           field="work_order_id") from None
    state = point_in_time.work_order_as_of(lx, wid, at)
    return _recorded(lx, state, ("work_order", str(wid)), at, actor, why)


def _recorded(lx: Any, result: dict[str, Any], subject: tuple[str, str], at: Any, actor: str,
              why: str) -> dict[str, Any]:
    """Record the read of a past state (resource: the instant asked for)."""
    position = _record(lx, subject[0], subject[1], "state", at.isoformat(), actor, why)
    return {**result, "access_recorded_at_position": position}


# -- the trail -------------------------------------------------------------------
@router.get("/audit/verify", tags=["audit"])
def audit_verify(request: Request, from_: Optional[int] = Query(None, alias="from", ge=1),
                 to: Optional[int] = Query(None, ge=1)) -> dict[str, Any]:
    """Recompute the chain; ``ok`` false names the first bad position."""
    return audit_trail.verify(_lx(request), from_, to, workers=1).as_dict()


@router.get("/audit/head", tags=["audit"])
def audit_head(request: Request) -> dict[str, Any]:
    position, chain_hash = audit_trail.head(_lx(request))
    return {"position": position, "chain_hash": chain_hash}


@router.post("/audit/exports", tags=["audit"])
def audit_export(request: Request, body: dict[str, Any],
                 x_actor: Optional[str] = Header(None)) -> Any:
    """A bundle (zip) for a regulator. Body: ``from``/``to`` (positions or
    ISO instants; an instant ``from`` with a position ``to`` ends a time range
    at that position), at most one of ``call``/``agent``/``work_order``, ``reason``."""
    actor, why = _require_reader(x_actor, body.get("reason"))
    lx = _lx(request)
    for key in ("from", "to", "call", "agent", "work_order"):
        if body.get(key) is not None and not isinstance(body[key], (str, int)):
            raise InvalidValue(f"{key} must be a string or a number", field=key)
    start, stop, since, until = _range(body.get("from"), body.get("to"))
    selection = audit_bundle.select(lx, call=_opt(body, "call"), agent=_opt(body, "agent"),
                                    work_order=_opt(body, "work_order"), since=since,
                                    until=until)
    subject_kind, subject_id = (("call", selection.value) if selection.kind == "call"
                                else ("center", "audit-export"))
    out_dir = Path(tempfile.mkdtemp(prefix="lianxin-export-"))
    path = out_dir / "bundle.zip"
    manifest = audit_bundle.export(lx, path, start=start, stop=stop, selection=selection)
    _record(lx, subject_kind, str(subject_id).split(" ")[0], "export",
            f"{manifest['range']['from']}..{manifest['range']['to']}", actor, why)
    return FileResponse(path, media_type="application/zip", filename="lianxin-audit.zip",
                        headers={"X-Chain-End-Hash": manifest["end"]["chain_hash"]},
                        background=BackgroundTask(_cleanup, out_dir))


def _opt(body: dict[str, Any], key: str) -> Optional[str]:
    value = body.get(key)
    return None if value is None else str(value)


def _range(lo: Any, hi: Any) -> tuple[Optional[int], Optional[int], Optional[str], Optional[str]]:
    """(start position, stop position, since, until): positions when both are
    whole numbers, instants otherwise. An instant ``from`` may be bounded by a
    position ``to``: a time-range bundle that ends at an anchor's position,
    so that the anchor can check it (``verify-bundle --anchor``)."""
    def is_pos(v: Any) -> bool:
        return isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit())

    lo_pos, hi_pos = lo is not None and is_pos(lo), hi is not None and is_pos(hi)
    if (lo is None or lo_pos) and (hi is None or hi_pos):
        return (None if lo is None else int(lo)), (None if hi is None else int(hi)), None, None
    if lo_pos:
        raise InvalidValue("from is a position and to an instant: give both as positions, "
                           "both as ISO instants, or an instant from with a position to",
                           field="from")
    if hi_pos:
        return None, int(hi), str(lo), None
    return None, None, (None if lo is None else str(lo)), (None if hi is None else str(hi))


def _cleanup(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)

