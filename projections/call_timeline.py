"""Call timeline and call summary.

``call_timeline``: every event of a conversation in aggregate order, with its
offset in seconds from the call's first ``occurred_at``, the event type, the
actor and its operational fields. ``pii`` is not copied here, with one
exception: values the timeline always showed and that later event versions
moved into ``pii`` (an outbound call's dialed number, an external
transfer's number, a conference party's name: ``SHOWN_FROM_PII``) are still
shown under their old names. The read
model is rebuilt from the events, so once such a value is erased from the
events a rebuild removes it here too.

``calls``: each call's current state (the read side of GET /calls/{id}).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from projections.runner import drop_tables
from projections.timefmt import iso, parse

# Fields every event has; the timeline shows them as columns, not in ``fields``.
COMMON = {"originator_id", "originator_version", "originator_topic", "timestamp", "occurred_at",
          "command_id",
          "actor", "pii"}

# The call's state after each state-changing event.
STATE_AFTER = {
    "Offered": "offered", "IvrEntered": "ivr", "Queued": "queued", "AgentAlerted": "ringing",
    "RingNoAnswer": "queued", "Answered": "connected", "Held": "held", "Resumed": "connected",
    "Ended": "ended", "Abandoned": "abandoned",
}


def plain(value: Any) -> Any:
    """An event field as JSON-friendly data."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


# Per event type, the ``pii`` keys shown as fields of the same name (they were
# operational fields before: Offered v1 ``dialed_number`` of an outbound
# call, Transferred v1 ``target`` of an external transfer,
# ConferencePartyJoined and -Left v1 ``party``).
SHOWN_FROM_PII = {"Offered": ("dialed_number",), "Transferred": ("target",),
                  "ConferencePartyJoined": ("party",), "ConferencePartyLeft": ("party",)}


def key_fields(event: Any) -> dict[str, Any]:
    fields = {k: plain(v) for k, v in sorted(vars(event).items())
              if k not in COMMON and not k.startswith("_")}
    pii = getattr(event, "pii", None) or {}
    for key in SHOWN_FROM_PII.get(type(event).__qualname__.split(".", 1)[-1], ()):
        if pii.get(key) is not None:
            fields[key] = plain(pii[key])
    return fields


class CallTimelineProjection:
    name = "call_timeline"
    version = 1

    def reset(self, db: sqlite3.Connection) -> None:
        drop_tables(db, ("call_timeline", "calls"))

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS call_timeline ("
            " call_id TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,"
            " occurred_at TEXT NOT NULL, offset_s REAL NOT NULL, event_type TEXT NOT NULL,"
            " actor TEXT, command_id TEXT, fields TEXT NOT NULL,"
            " PRIMARY KEY (call_id, version))")
        db.execute(
            "CREATE TABLE IF NOT EXISTS calls ("
            " call_id TEXT PRIMARY KEY, external_id TEXT NOT NULL, direction TEXT NOT NULL,"
            " dialed_number TEXT NOT NULL, trunk TEXT NOT NULL, state TEXT NOT NULL,"
            " queue TEXT, agent_id TEXT, offered_at TEXT NOT NULL, queued_at TEXT,"
            " answered_at TEXT, ended_at TEXT, hung_up_by TEXT, abandon_stage TEXT,"
            " transfers INTEGER NOT NULL DEFAULT 0, dispositions TEXT NOT NULL DEFAULT '[]',"
            " survey_score INTEGER, work_orders TEXT NOT NULL DEFAULT '[]',"
            " last_at TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS calls_state ON calls(state)")

    def apply(self, db: sqlite3.Connection, event: Any, position: int) -> None:
        kind = type(event).__qualname__
        if not kind.startswith("Call."):
            return
        name = kind.split(".", 1)[1]
        call_id = str(event.originator_id)
        when: datetime = event.occurred_at
        if name == "Offered":
            first = when
            db.execute(
                "INSERT INTO calls (call_id, external_id, direction, dialed_number, trunk, state,"
                " offered_at, last_at, version, position) VALUES (?,?,?,?,?,'offered',?,?,?,?)",
                (call_id, event.external_id, event.direction,
                 event.dialed_number or (event.pii or {}).get("dialed_number") or "", event.trunk,
                 iso(when), iso(when), event.originator_version, position))
        else:
            row = db.execute("SELECT offered_at FROM calls WHERE call_id=?", (call_id,)).fetchone()
            first = parse(row[0]) if row else when
            self._update_summary(db, name, event, call_id, position)
        db.execute("INSERT INTO call_timeline VALUES (?,?,?,?,?,?,?,?,?)",
                   (call_id, event.originator_version, position, iso(when),
                    round((when - first).total_seconds(), 6), name, event.actor,
                    event.command_id, json.dumps(key_fields(event), sort_keys=True,
                                                 ensure_ascii=False)))

    def _update_summary(self, db: sqlite3.Connection, name: str, event: Any, call_id: str,
                        position: int) -> None:
        when = iso(event.occurred_at)
        sets = ["version=?", "position=?"]
        args: list[Any] = [event.originator_version, position]
        if name not in ("WrapUpCompleted", "SurveyAnswered", "WorkOrderLinked"):
            sets.append("last_at=?")
            args.append(when)
        if name in STATE_AFTER:
            sets.append("state=?")
            args.append(STATE_AFTER[name])
        if name == "Queued":
            sets += ["queued_at=CASE WHEN queue IS ? AND queued_at IS NOT NULL"
                     " THEN queued_at ELSE ? END", "queue=?"]
            args += [event.queue, when, event.queue]
        elif name == "AgentAlerted":
            sets.append("agent_id=?")
            args.append(str(event.agent_id))
        elif name == "RingNoAnswer":
            sets.append("agent_id=NULL")
        elif name == "Answered":
            sets.append("answered_at=COALESCE(answered_at, ?)")
            args.append(when)
        elif name == "Transferred" and getattr(event, "to_leg_id", None):
            # handed to the answered consult leg: connected to the colleague
            # at once (ConsultAlerted / ConsultAnswered came before)
            sets += ["transfers=transfers+1", "agent_id=?", "state='connected'"]
            to_agent = getattr(event, "to_agent_id", None)
            args.append(str(to_agent) if to_agent is not None else None)
        elif name == "Transferred":
            sets += ["transfers=transfers+1", "agent_id=NULL",
                     "state=?"]
            args.append("queued" if event.target_type in ("queue", "agent")
                        else "outside" if event.target_type == "external" else "ivr")
            if event.target_type == "queue":
                sets += ["queue=?", "queued_at=?"]
                args += [event.target, when]
        elif name in ("Ended", "Abandoned"):
            sets += ["ended_at=?", "hung_up_by=?"]
            args += [when, getattr(event, "hung_up_by", "caller")]
            if name == "Abandoned":
                sets.append("abandon_stage=?")
                args.append(event.stage)
        elif name == "WrapUpCompleted":
            sets.append("dispositions=?")
            args.append(json.dumps(list(event.dispositions), ensure_ascii=False))
        elif name == "SurveyAnswered":
            sets.append("survey_score=?")
            args.append(event.score)
        elif name == "WorkOrderLinked":
            sets.append("work_orders=json_insert(work_orders, '$[#]', ?)")
            args.append(str(event.work_order_id))
        db.execute(f"UPDATE calls SET {', '.join(sets)} WHERE call_id=?", (*args, call_id))
