"""The inspector's replay of one conversation, read from the event store.

Read from the stored events (not a read model) so that what an inspector
sees is exactly the chained record: the call's own events in order, plus the
agent-side events *of this call* of every agent alerted on it (ringing,
missed, connect, release, and the ready / not-ready that ends the after-call
work of this call), each with its notification-log position, its offset in
seconds from the call's first ``occurred_at`` and its actor. Agent events are
chosen by the call they belong to, never by time: an agent's other calls and
sessions in the same minutes are other customers' business. Personal data
(``pii``) is never shown.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.errors import NotFound
from projections.agent_board import agent_transition
from queries.audit_trail import chain_source

COMMON = {"originator_id", "originator_version", "originator_topic", "timestamp",
          "occurred_at", "command_id", "actor", "pii"}


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def details(event: Any) -> dict[str, Any]:
    return {k: plain(v) for k, v in sorted(vars(event).items())
            if k not in COMMON and not k.startswith("_")}


def stored_events(app: Any, aggregate_id: UUID) -> list[tuple[int, Any]]:
    """(position, domain event) of one aggregate, in version order."""
    stored = app.recorder.select_events(aggregate_id)
    src = chain_source(app)
    try:
        positions = src.positions_of([aggregate_id])
    finally:
        src.close()
    # One aggregate's versions are written in order, so position order is
    # version order.
    return [(pos, app.mapper.to_domain_event(s)) for pos, s in zip(positions, stored)]


# The agent events that close after-call work (they carry its duration).
_ENDS_WRAP_UP = ("BecameReady", "BecameNotReady")


def agent_events_of_call(agent_events: list[tuple[int, Any]], call_id: UUID
                         ) -> list[tuple[int, Any]]:
    """The agent's events that belong to this call: those naming it
    (Ringing, MissedCall, CallConnected, CallReleased) and, after a release
    into wrap-up, the event that ends that wrap-up if it is a ready / not
    ready (the next state event of the agent: nothing else can intervene,
    an agent in wrap-up is not offered calls)."""
    out: list[tuple[int, Any]] = []
    in_wrap_up = False
    for pos, e in agent_events:
        name = type(e).__qualname__.split(".", 1)[1]
        if getattr(e, "call_id", None) == call_id:
            out.append((pos, e))
            in_wrap_up = name == "CallReleased" and bool(getattr(e, "wrap_up", False))
        elif in_wrap_up and _changes_state(e):
            if name in _ENDS_WRAP_UP and getattr(e, "wrap_up_s", None) is not None:
                out.append((pos, e))
            in_wrap_up = False
    return out


def _changes_state(event: Any) -> bool:
    change = agent_transition(event)
    return change is not None and change.state is not None


def _describe(name: str, d: dict[str, Any], agents: dict[str, str]) -> str:
    who = agents.get(str(d.get("agent_id") or d.get("from_agent_id")), "")
    # Personal values (an outbound call's number, an outside transfer target,
    # a conference guest) live in pii since the v2 events: never in a summary.
    party = agents.get(str(d.get("agent_id")), "") or "a party"
    dialed = d.get("dialed_number") or "a customer's number"
    target = ("an external number" if d.get("target_type") == "external"
              else f"{d.get('target_type')} {d.get('target')}")
    texts = {
        "Offered": f"call offered on {dialed} ({d.get('direction')})",
        "IvrEntered": f"IVR menu {d.get('menu')}",
        "MenuChoiceMade": f"IVR {d.get('menu')}: pressed {d.get('digits')} -> {d.get('target')}",
        "SelfServiceUsed": f"self-service {d.get('service')}: {d.get('result')}",
        "Queued": f"queued in {d.get('queue')} (priority {d.get('priority')})",
        "AgentAlerted": f"agent {who} alerted on leg {d.get('leg_id')}",
        "RingNoAnswer": f"agent {who} did not answer ({d.get('outcome')})",
        "Answered": f"answered by agent {who}",
        "Held": f"put on hold by {d.get('by')}",
        "Resumed": f"resumed by {d.get('by')}",
        "Transferred": f"{d.get('kind')} transfer to {target}",
        "ConferencePartyJoined": f"{party} joined the conference",
        "ConferencePartyLeft": f"{party} left the conference",
        "MonitorStarted": f"supervisor {d.get('supervisor_id')} started {d.get('mode')}",
        "MonitorStopped": f"supervisor {d.get('supervisor_id')} stopped monitoring",
        "RecordingStarted": f"recording {d.get('recording')} started ({d.get('format')})",
        "RecordingStopped": f"recording {d.get('recording')} stopped ({d.get('cause')})",
        "Ended": f"hung up by {d.get('hung_up_by')} ({d.get('cause')})",
        "Abandoned": f"caller abandoned in {d.get('stage')}",
        "WrapUpCompleted": f"wrap-up: {', '.join(d.get('dispositions') or [])}",
        "SurveyAnswered": f"survey {d.get('question')}: {d.get('score')}/5",
        "WorkOrderLinked": f"work order {d.get('work_order_number') or d.get('work_order_id')} linked",
    }
    return texts.get(name, name)


def timeline(lianxin: Any, call_id: UUID, *, with_agents: bool = True) -> dict[str, Any]:
    app = lianxin.app
    from domain.call import Call

    events = stored_events(app, call_id)
    if not events or not isinstance(events[0][1], Call.Offered):
        raise NotFound(f"call {call_id} not found", id=str(call_id))
    start: datetime = events[0][1].occurred_at
    end: datetime = max(e.occurred_at for _, e in events)
    agent_ids: list[UUID] = []
    for _, e in events:
        for attr in ("agent_id", "from_agent_id"):
            value = getattr(e, attr, None)
            if isinstance(value, UUID) and value not in agent_ids:
                agent_ids.append(value)
    agent_names: dict[str, str] = {}
    agent_rows: list[tuple[int, Any, str]] = []
    for agent_id in agent_ids:
        agent_events = stored_events(app, agent_id)
        if not agent_events:
            continue
        employee_no = getattr(agent_events[0][1], "employee_no", str(agent_id))
        agent_names[str(agent_id)] = employee_no
        if with_agents:
            agent_rows += [(pos, e, employee_no)
                           for pos, e in agent_events_of_call(agent_events, call_id)]
    entries: list[dict[str, Any]] = []
    recordings: dict[str, dict[str, Any]] = {}
    work_orders: list[dict[str, Any]] = []
    rows = [(pos, e, None) for pos, e in events] + agent_rows
    for pos, e, employee_no in sorted(rows, key=lambda r: r[0]):
        name = type(e).__qualname__.split(".", 1)[1]
        d = details(e)
        offset = round((e.occurred_at - start).total_seconds(), 3)
        if employee_no is None and name == "WorkOrderLinked":
            wo = _work_order(app, e.work_order_id)
            if wo is not None:
                d["work_order_number"] = wo["number"]
                work_orders.append(wo)
        if employee_no is None and name == "RecordingStarted":
            recordings[e.recording] = {"name": e.recording, "target": e.target,
                                       "format": e.format, "started_at": e.occurred_at.isoformat(),
                                       "start_offset_s": offset, "stop_offset_s": None,
                                       "duration_s": None, "stop_cause": None}
        if employee_no is None and name == "RecordingStopped" and e.recording in recordings:
            recordings[e.recording].update(stop_offset_s=offset, stop_cause=e.cause,
                                           duration_s=e.duration_s if e.duration_s is not None
                                           else round(offset - recordings[e.recording]
                                                      ["start_offset_s"], 3))
        entries.append({
            "position": pos,
            "source": "call" if employee_no is None else "agent",
            "agent": employee_no,
            "version": e.originator_version,
            "type": name,
            "occurred_at": e.occurred_at.isoformat(),
            "offset_s": offset,
            "actor": e.actor,
            "command_id": e.command_id,
            "summary": _describe(name, d, agent_names) if employee_no is None
            else f"agent {employee_no}: {name}",
            "details": d,
        })
    offered = events[0][1]
    return {
        "call_id": str(call_id),
        "external_id": offered.external_id,
        "started_at": start.isoformat(),
        "last_event_at": end.isoformat(),
        "duration_s": round((end - start).total_seconds(), 3),
        "agents": agent_names,
        "recordings": list(recordings.values()),
        "work_orders": work_orders,
        "events": entries,
    }


def _work_order(app: Any, work_order_id: UUID) -> dict[str, Any] | None:
    try:
        wo = app.repository.get(work_order_id)
    except AggregateNotFoundError:
        return None
    return {"id": str(work_order_id), "number": getattr(wo, "number", None),
            "type": getattr(wo, "type", None), "status": plain(getattr(wo, "status", None))}


def recording(lianxin: Any, call_id: UUID, name: str) -> dict[str, Any]:
    """One recording of a call: its reference and where it lies in the call."""
    tl = timeline(lianxin, call_id, with_agents=False)
    for rec in tl["recordings"]:
        if rec["name"] == name:
            return {"call_id": tl["call_id"], **rec}
    raise NotFound(f"call {call_id} has no recording {name!r}", id=name)
