"""Calls: current state and projected timeline."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from domain.errors import NotFound
from queries.read_db import reading

LIVE = ("offered", "ivr", "queued", "ringing", "connected", "held", "outside")

_SUMMARY = ("SELECT c.*, a.employee_no AS employee_no FROM calls c"
            " LEFT JOIN agent_board a ON a.agent_id = c.agent_id")


def _summary(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["dispositions"] = json.loads(d["dispositions"])
    d["work_orders"] = json.loads(d["work_orders"])
    d["live"] = d["state"] in LIVE
    return d


def get_call(lianxin: Any, call_id: UUID | str) -> dict[str, Any]:
    """The call's current state as projected."""
    with reading(lianxin) as db:
        row = db.execute(f"{_SUMMARY} WHERE c.call_id=?", (str(call_id),)).fetchone()
    if row is None:
        raise NotFound(f"call {call_id} not found", call_id=str(call_id))
    return _summary(row)


def live_calls(lianxin: Any, *, queue: str | None = None) -> list[dict[str, Any]]:
    """Calls not yet ended or abandoned, oldest first."""
    sql = f"{_SUMMARY} WHERE c.state IN ({','.join('?' * len(LIVE))})"
    args: list[Any] = list(LIVE)
    if queue is not None:
        sql += " AND c.queue=?"
        args.append(queue)
    with reading(lianxin) as db:
        return [_summary(r) for r in db.execute(sql + " ORDER BY c.offered_at", args)]


def call_events(lianxin: Any, call_id: UUID | str) -> list[dict[str, Any]]:
    """Every event of the call in order, with offsets from its first event.
    Personal data (``pii``) is not part of the read model."""
    with reading(lianxin) as db:
        exists = db.execute("SELECT 1 FROM calls WHERE call_id=?", (str(call_id),)).fetchone()
        rows = db.execute("SELECT version, position, occurred_at, offset_s, event_type, actor,"
                          " command_id, fields FROM call_timeline WHERE call_id=?"
                          " ORDER BY version", (str(call_id),)).fetchall()
    if exists is None:
        raise NotFound(f"call {call_id} not found", call_id=str(call_id))
    return [{**dict(r), "fields": json.loads(r["fields"])} for r in rows]
