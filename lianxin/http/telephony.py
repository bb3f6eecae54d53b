"""HTTP routes: agent and supervisor actions that need Asterisk (hold,
transfer, attended transfer, conference, listen/whisper, barge, force
hang-up) and the adapter's live status.

They act through the Stasis app running in this process (``lianxin demo``,
``lianxin telephony run --port``): elsewhere they answer 503. ``call_id`` is
the conversation id (the Call aggregate's id) or the caller's channel id.
``Idempotency-Key`` makes hold, resume, transfers and hang-up safe to retry
(the same key with another request is a 422, see ``lianxin.http.idempotency``).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lianxin.http import idempotency
from lianxin.http.problems import KEYED_ACTION_PROBLEMS, problem_response

router = APIRouter(prefix="/telephony", tags=["telephony"])
# The actions that take an Idempotency-Key.
KEYED: dict[str, Any] = dict(dependencies=[idempotency.FINGERPRINT],
                             responses=KEYED_ACTION_PROBLEMS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransferBody(_Body):
    target_type: Literal["queue", "agent", "external"]
    target: str = Field(min_length=1, description="queue name, employee number or phone number")


class ConsultBody(_Body):
    employee_no: str = Field(min_length=1)


class PartyBody(_Body):
    endpoint: str = Field(min_length=3, description="e.g. PJSIP/1003")
    party: str = Field(min_length=1, description="how the party is named on the call")


class MonitorBody(_Body):
    supervisor_id: str = Field(min_length=1)
    mode: Literal["listen", "whisper"] = "listen"
    endpoint: Optional[str] = Field(None, description="the supervisor's phone, called and "
                                                      "connected to the snoop")


class BargeBody(_Body):
    supervisor_id: str = Field(min_length=1)
    endpoint: str = Field(min_length=3)


class HangupBody(_Body):
    supervisor_id: str = Field(min_length=1)


def _control(request: Request) -> Any:
    stasis = request.app.state.lianxin.parts.get("telephony")
    if stasis is None or stasis.flow is None:
        return None
    from telephony_adapter.stasis.control import CallControl

    return CallControl(stasis)


def _unavailable(request: Request) -> Any:
    return problem_response(503, "Telephony adapter not running",
                            "no Stasis application runs in this process (start it with "
                            "`lianxin telephony run` or `lianxin demo`)",
                            instance=request.url.path, code="telephony-unavailable")


async def _act(request: Request, action: str, *args: Any, **kwargs: Any) -> Any:
    control = _control(request)
    if control is None:
        return _unavailable(request)
    if "key" in kwargs:
        await run_in_threadpool(idempotency.claim, request)
    # domain errors become problem+json through the app's handlers
    result = await getattr(control, action)(*args, **kwargs)
    return {"ok": True, "action": action, "channel": result if isinstance(result, str) else None}


@router.get("/status", summary="Live calls, queues and ready agents as the adapter sees them")
async def status(request: Request) -> Any:
    control = _control(request)
    if control is None:
        return _unavailable(request)
    return control.status()


@router.post("/calls/{call_id}/hold", summary="Put the caller on hold (music)", **KEYED)
async def hold(request: Request, call_id: str,
               idempotency_key: Optional[str] = Header(None)) -> Any:
    return await _act(request, "hold", call_id, key=idempotency_key)


@router.post("/calls/{call_id}/unhold", summary="Take the caller off hold", **KEYED)
async def unhold(request: Request, call_id: str,
                 idempotency_key: Optional[str] = Header(None)) -> Any:
    return await _act(request, "unhold", call_id, key=idempotency_key)


@router.post("/calls/{call_id}/transfer", summary="Blind transfer to a queue, agent or number",
             **KEYED)
async def transfer(request: Request, call_id: str, body: TransferBody,
                   idempotency_key: Optional[str] = Header(None)) -> Any:
    return await _act(request, "transfer", call_id, body.target_type, body.target,
                      key=idempotency_key)


@router.post("/calls/{call_id}/consult", summary="Attended transfer: call a colleague first")
async def consult(request: Request, call_id: str, body: ConsultBody) -> Any:
    return await _act(request, "consult", call_id, body.employee_no)


@router.post("/calls/{call_id}/consult/complete",
             summary="Attended transfer: hand the caller to the consulted colleague", **KEYED)
async def complete_transfer(request: Request, call_id: str,
                            idempotency_key: Optional[str] = Header(None)) -> Any:
    return await _act(request, "complete_transfer", call_id, key=idempotency_key)


@router.post("/calls/{call_id}/consult/cancel", summary="Attended transfer: back to the caller")
async def cancel_consult(request: Request, call_id: str) -> Any:
    return await _act(request, "cancel_consult", call_id)


@router.post("/calls/{call_id}/conference", summary="Three-way call: bring in a party")
async def add_party(request: Request, call_id: str, body: PartyBody) -> Any:
    return await _act(request, "add_party", call_id, body.endpoint, body.party)


@router.delete("/calls/{call_id}/conference/{party}", summary="Drop a conference party")
async def remove_party(request: Request, call_id: str, party: str) -> Any:
    return await _act(request, "remove_party", call_id, party)


@router.post("/calls/{call_id}/monitor", summary="Supervisor listens or whispers (snoop)")
async def monitor(request: Request, call_id: str, body: MonitorBody) -> Any:
    return await _act(request, "monitor", call_id, body.supervisor_id, body.mode, body.endpoint)


@router.delete("/calls/{call_id}/monitor/{supervisor_id}", summary="Stop listening/whispering")
async def stop_monitor(request: Request, call_id: str, supervisor_id: str) -> Any:
    return await _act(request, "stop_monitor", call_id, supervisor_id)


@router.post("/calls/{call_id}/barge", summary="Supervisor joins the conversation")
async def barge(request: Request, call_id: str, body: BargeBody) -> Any:
    return await _act(request, "barge", call_id, body.supervisor_id, body.endpoint)


@router.post("/calls/{call_id}/hangup", summary="Supervisor ends the call", **KEYED)
async def force_hangup(request: Request, call_id: str, body: HangupBody,
                       idempotency_key: Optional[str] = Header(None)) -> Any:
    return await _act(request, "force_hangup", call_id, body.supervisor_id, key=idempotency_key)
