"""Work-order views: one order, the department inbox (open, due soon,
overdue), the urging list, the callback worklist, the outage board and the
shift-handover snapshot. All read ``projections.work_order_inbox``.

"Due soon" and "overdue" depend on when you ask, so they are computed here
against ``now`` (default: the wall clock) from the stored deadlines: the
deadline in play is the one of the stage the order is in (dispatch while
open, acceptance while dispatched, and resolution throughout). A paused
clock is neither due soon nor overdue.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from domain.errors import InvalidValue, NotFound
from projections.timefmt import iso
from queries.read_db import reading

LIVE = ("open", "dispatched", "accepted")
STAGES_BY_STATUS = {"open": ("dispatch", "resolve"), "dispatched": ("accept", "resolve"),
                    "accepted": ("resolve",)}


def fresh(lianxin: Any, timeout: float = 2.0) -> None:
    """Read-your-writes for a process that holds the read models: let them
    catch up with the event log before answering."""
    read_models = getattr(lianxin, "read_models", None)
    if callable(read_models):
        runner = read_models()
        runner.wait_for(runner.head(), timeout=timeout)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise InvalidValue("now must carry a timezone offset", field="now")
    return now


def _order(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["location"] = json.loads(d["location"] or "{}")
    d["referrals_out"] = json.loads(d["referrals_out"] or "[]")
    d["replies"] = json.loads(d["replies"] or "[]")
    d["calendar_incomplete"] = bool(d["calendar_incomplete"])
    d.pop("position", None)
    stages = STAGES_BY_STATUS.get(d["status"], ())
    dues = [(d[f"{s}_due"], s) for s in stages if d.get(f"{s}_due")]
    d["next_due"], d["next_stage"] = min(dues) if dues else (None, None)
    d["paused"] = d["paused_at"] is not None
    return d


def _classify(order: dict[str, Any], now: datetime, soon: timedelta) -> str:
    due = order["next_due"]
    if due is None or order["paused"]:
        return "open"
    if due < iso(now):
        return "overdue"
    if due <= iso(now + soon):
        return "due_soon"
    return "open"


def _due_soon(lianxin: Any) -> timedelta:
    from commands.work_order_rules import rules_of

    ctx = getattr(getattr(getattr(lianxin, "commands", None), "bus", None), "ctx", None)
    return rules_of(ctx).policy.due_soon.approx


def get_work_order(lianxin: Any, ref: str | UUID) -> dict[str, Any]:
    """By id or by the number a caller reads out."""
    with reading(lianxin) as db:
        row = db.execute("SELECT * FROM wo_orders WHERE work_order_id=? OR number=?",
                         (str(ref), str(ref))).fetchone()
        if row is None:
            raise NotFound(f"work order {ref} not found", work_order=str(ref))
        order = _order(row)
        wid = order["work_order_id"]
        order["urging_history"] = [dict(r) for r in db.execute(
            "SELECT stage, seq, kind, level, deadline, due_at, department, at, missed,"
            " first_due_at FROM wo_urgings"
            " WHERE work_order_id=? ORDER BY position, kind DESC", (wid,))]
        order["links"] = [dict(r) for r in db.execute(
            "SELECT link_id, call_id, linked_at, split_to FROM wo_links WHERE work_order_id=?"
            " ORDER BY linked_at", (wid,))]
        order["callback_attempts"] = [dict(r) for r in db.execute(
            "SELECT task, attempt, at, result, reason, satisfaction, outcome"
            " FROM wo_callback_attempts WHERE work_order_id=? ORDER BY position", (wid,))]
    return order


def inbox(lianxin: Any, department: str | None = None, *, now: datetime | None = None,
          due_soon: timedelta | None = None) -> dict[str, Any]:
    """A department's live orders split into overdue, due soon and the rest.
    ``department=None`` is the dispatch desk: orders not yet dispatched."""
    now = _now(now)
    soon = due_soon if due_soon is not None else _due_soon(lianxin)
    marks = ",".join("?" * len(LIVE))
    with reading(lianxin) as db:
        if department is None:
            rows = db.execute("SELECT * FROM wo_orders WHERE status='open' AND department IS NULL"
                              " ORDER BY opened_at").fetchall()
        else:
            rows = db.execute(f"SELECT * FROM wo_orders WHERE department=? AND status IN ({marks})"
                              " ORDER BY opened_at", (department, *LIVE)).fetchall()
    out: dict[str, Any] = {"department": department, "now": iso(now), "overdue": [],
                           "due_soon": [], "open": []}
    for row in rows:
        order = _order(row)
        out[_classify(order, now, soon)].append(order)
    for key in ("overdue", "due_soon"):
        out[key].sort(key=lambda o: o["next_due"])
    out["counts"] = {k: len(out[k]) for k in ("overdue", "due_soon", "open")}
    return out


def urging_list(lianxin: Any, department: str | None = None,
                limit: int = 200) -> list[dict[str, Any]]:
    """Urgings and escalations of orders still in play, newest first."""
    marks = ",".join("?" * len(LIVE))
    sql = ("SELECT u.*, o.number, o.status, o.type, o.escalation_level FROM wo_urgings u"
           f" JOIN wo_orders o USING (work_order_id) WHERE o.status IN ({marks})")
    args: list[Any] = list(LIVE)
    if department is not None:
        sql += " AND u.department=?"
        args.append(department)
    with reading(lianxin) as db:
        rows = db.execute(sql + " ORDER BY u.position DESC LIMIT ?", (*args, limit)).fetchall()
    return [{k: r[k] for k in r.keys() if k != "position"} for r in rows]


def callback_worklist(lianxin: Any, *, agent: str | None = None, team: str | None = None,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """Pending callbacks (回访), soonest first, for one agent or team (or all)."""
    now = _now(now)
    sql = ("SELECT work_order_id, number, type, status, resolved_at, callback_task,"
           " callback_due, callback_next_due, callback_give_up, callback_attempts,"
           " callback_assignee, callback_team FROM wo_orders WHERE callback_state='pending'")
    args: list[Any] = []
    if agent is not None:
        sql += " AND callback_assignee=?"
        args.append(agent)
    if team is not None:
        sql += " AND callback_team=?"
        args.append(team)
    with reading(lianxin) as db:
        rows = [dict(r) for r in db.execute(sql + " ORDER BY callback_next_due", args)]
    for r in rows:
        r["overdue"] = r["callback_next_due"] is not None and r["callback_next_due"] < iso(now)
    return rows


def _outage(row: sqlite3.Row, now: datetime) -> dict[str, Any]:
    d = dict(row)
    d["areas"] = json.loads(d["areas"])
    d["short_notice"] = bool(d["short_notice"])
    d["current"] = d["cancelled_at"] is None and d["start"] <= iso(now) < d["end"]
    return d


def outage_board(lianxin: Any, *, now: datetime | None = None,
                 include_past: bool = False) -> list[dict[str, Any]]:
    """Current and coming outages (and past ones if asked), by start."""
    now = _now(now)
    sql = "SELECT * FROM wo_outages"
    args: list[Any] = []
    if not include_past:
        sql += " WHERE cancelled_at IS NULL AND end > ?"
        args.append(iso(now))
    with reading(lianxin) as db:
        return [_outage(r, now) for r in db.execute(sql + " ORDER BY start", args)]


def outage_enquiries(lianxin: Any, reference: str) -> dict[str, Any]:
    """The fault reports one notice answered instead of a repair order."""
    with reading(lianxin) as db:
        row = db.execute("SELECT outage_id, reference, enquiries FROM wo_outages"
                         " WHERE reference=?", (reference,)).fetchone()
        if row is None:
            raise NotFound(f"outage {reference} not found", reference=reference)
        items = [dict(r) for r in db.execute(
            "SELECT area, call_id, type, channel, at FROM wo_outage_enquiries"
            " WHERE outage_id=? ORDER BY position", (row["outage_id"],))]
    return {**dict(row), "answered": items}


def outages_in_area(lianxin: Any, area: str, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """Outages not yet over that cover ``area``: a ``kind:value`` key
    ("feeder:F12") or a bare name matched against every kind."""
    from domain.outage import area_key

    at = _now(at)
    text = area.strip()
    if ":" in text:
        where, args = "a.area=?", [area_key(text)]
    else:
        where, args = "(a.area=? OR a.area LIKE ?)", [area_key(text),
                                                      "%:" + area_key(text).split(":", 1)[1]]
    with reading(lianxin) as db:
        rows = db.execute("SELECT DISTINCT o.* FROM wo_outages o JOIN wo_outage_areas a"
                          f" USING (outage_id) WHERE {where} AND o.cancelled_at IS NULL"
                          " AND o.end > ? ORDER BY o.start", (*args, iso(at))).fetchall()
    return [_outage(r, at) for r in rows]


def handover_snapshot(lianxin: Any, *, now: datetime | None = None) -> dict[str, list[str]]:
    """What a shift hands over at ``now``: open calls, open and overdue
    orders (by number), pending callbacks (by order number)."""
    now = _now(now)
    try:
        from queries.calls import live_calls

        calls = [c["call_id"] for c in live_calls(lianxin)]
    except (ImportError, sqlite3.OperationalError):
        # Without the call read model: the calls this projection follows.
        with reading(lianxin) as db:
            calls = [r[0] for r in db.execute("SELECT call_id FROM wo_live_calls ORDER BY since")]
    marks = ",".join("?" * len(LIVE))
    with reading(lianxin) as db:
        rows = db.execute(f"SELECT * FROM wo_orders WHERE status IN ({marks})"
                          " ORDER BY opened_at", LIVE).fetchall()
        pending = [r[0] for r in db.execute(
            "SELECT number FROM wo_orders WHERE callback_state='pending'"
            " ORDER BY callback_next_due")]
    orders = [_order(r) for r in rows]
    soon = timedelta(0)
    return {"open_calls": calls, "open_orders": [o["number"] for o in orders],
            "overdue_orders": [o["number"] for o in orders
                               if _classify(o, now, soon) == "overdue"],
            "pending_callbacks": pending}


def get_handover(lianxin: Any, handover_id: str | UUID) -> dict[str, Any]:
    with reading(lianxin) as db:
        row = db.execute("SELECT * FROM wo_handovers WHERE handover_id=?",
                         (str(handover_id),)).fetchone()
    if row is None:
        raise NotFound(f"handover {handover_id} not found", handover_id=str(handover_id))
    d = dict(row)
    d["snapshot"] = json.loads(d["snapshot"])
    return d


def handovers(lianxin: Any, limit: int = 50) -> list[dict[str, Any]]:
    with reading(lianxin) as db:
        rows = db.execute("SELECT * FROM wo_handovers ORDER BY created_at DESC LIMIT ?",
                          (limit,)).fetchall()
    return [{**dict(r), "snapshot": json.loads(r["snapshot"])} for r in rows]
