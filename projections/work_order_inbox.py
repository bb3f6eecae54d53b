"""Work-order read models: the department inbox, the urging list, the
callback worklist, the outage board and shift handovers.

``wo_orders`` holds each order's current state and its deadlines; "due soon"
and "overdue" are not stored, they depend on the moment you ask
(``queries.work_orders`` compares the deadlines with ``now``). Personal data
(``pii``) is never copied here: a referral's reply is listed by partner,
reference and time, not by its text. The one exception is an order's
location, shown as it always was: its address has moved to ``pii`` in the
events (``Opened`` v2) and is read back from there; the read model is
rebuilt from the events, so an erased address leaves it on the next rebuild.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable

from projections.timefmt import iso

_ORDER_COLUMNS = (
    "work_order_id TEXT PRIMARY KEY, number TEXT, type TEXT, category TEXT, priority TEXT,"
    " channel TEXT, status TEXT, department TEXT, opened_at TEXT, opened_by TEXT,"
    " dispatched_at TEXT, accepted_at TEXT, resolved_at TEXT, closed_at TEXT, resolution TEXT,"
    " dispatch_due TEXT, accept_due TEXT, resolve_due TEXT, policy_version TEXT,"
    " paused_at TEXT, urgings INTEGER DEFAULT 0, last_urged_at TEXT,"
    " escalation_level INTEGER DEFAULT 0, merged_into TEXT, split_from TEXT,"
    " linked_reports INTEGER DEFAULT 0, location TEXT, referral_partner TEXT,"
    " referral_reference TEXT, reopen_count INTEGER DEFAULT 0,"
    " callback_task INTEGER, callback_state TEXT, callback_due TEXT, callback_next_due TEXT,"
    " callback_give_up TEXT, callback_attempts INTEGER DEFAULT 0, callback_assignee TEXT,"
    " callback_team TEXT, satisfaction INTEGER, missed_urgings INTEGER DEFAULT 0,"
    " calendar_incomplete INTEGER DEFAULT 0, referrals_out TEXT DEFAULT '[]',"
    " replies TEXT DEFAULT '[]', position INTEGER"
)

TABLES = ("wo_orders", "wo_urgings", "wo_links", "wo_callback_attempts", "wo_outages",
          "wo_outage_areas", "wo_outage_enquiries", "wo_handovers", "wo_live_calls")

STAGE_DUE = {"dispatch": "dispatch_due", "accept": "accept_due", "resolve": "resolve_due"}


class WorkOrderInboxProjection:
    name = "work_order_inbox"
    # 2: merged urgings (missed), calendar flag, referrals and replies,
    # outage enquiries. A new version makes the runner rebuild from the log.
    version = 2

    def reset(self, db: sqlite3.Connection) -> None:
        from projections.runner import drop_tables

        drop_tables(db, TABLES)

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS wo_orders ({_ORDER_COLUMNS})")
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS wo_orders_number ON wo_orders (number)")
        db.execute("CREATE INDEX IF NOT EXISTS wo_orders_dept ON wo_orders (department, status)")
        db.execute("CREATE TABLE IF NOT EXISTS wo_urgings (work_order_id TEXT, stage TEXT,"
                   " seq INTEGER, kind TEXT, level INTEGER, deadline TEXT, due_at TEXT,"
                   " department TEXT, at TEXT, position INTEGER, missed INTEGER DEFAULT 0,"
                   " first_due_at TEXT, PRIMARY KEY (position, kind))")
        db.execute("CREATE TABLE IF NOT EXISTS wo_links (work_order_id TEXT, link_id TEXT,"
                   " call_id TEXT, linked_at TEXT, split_to TEXT,"
                   " PRIMARY KEY (work_order_id, link_id))")
        db.execute("CREATE TABLE IF NOT EXISTS wo_callback_attempts (work_order_id TEXT,"
                   " task INTEGER, attempt INTEGER, at TEXT, result TEXT, reason TEXT,"
                   " satisfaction INTEGER, outcome TEXT, position INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS wo_outages (outage_id TEXT PRIMARY KEY,"
                   " reference TEXT, kind TEXT, areas TEXT, start TEXT, end TEXT, reason TEXT,"
                   " published_at TEXT, short_notice INTEGER, cancelled_at TEXT,"
                   " enquiries INTEGER DEFAULT 0)")
        db.execute("CREATE TABLE IF NOT EXISTS wo_outage_enquiries (outage_id TEXT, area TEXT,"
                   " call_id TEXT, type TEXT, channel TEXT, at TEXT,"
                   " position INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS wo_outage_areas (outage_id TEXT, area TEXT,"
                   " PRIMARY KEY (area, outage_id))")
        db.execute("CREATE TABLE IF NOT EXISTS wo_handovers (handover_id TEXT PRIMARY KEY,"
                   " from_shift TEXT, to_shift TEXT, created_at TEXT, created_by TEXT,"
                   " snapshot TEXT, acknowledged_by TEXT, acknowledged_at TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS wo_live_calls (call_id TEXT PRIMARY KEY,"
                   " since TEXT)")

    def apply(self, db: sqlite3.Connection, event: Any, position: int) -> None:
        handler = _HANDLERS.get(type(event).__qualname__)
        if handler is not None:
            handler(db, event, position)


def _set(db: sqlite3.Connection, event: Any, position: int, **values: Any) -> None:
    cols = ", ".join(f"{k}=?" for k in values)
    db.execute(f"UPDATE wo_orders SET {cols}, position=? WHERE work_order_id=?",
               (*values.values(), position, str(event.originator_id)))


def _location(e: Any) -> dict[str, str]:
    """The whole location an order was opened with: the infrastructure
    kinds from ``location``, the personal ones (an address) from ``pii``."""
    pii = getattr(e, "pii", None) or {}
    return {**e.location, **(pii.get("location") or {})}


def _opened(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_orders (work_order_id, number, type, category,"
               " priority, channel, status, opened_at, opened_by, location, position)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               (str(e.originator_id), e.number, e.type, e.category, e.priority, e.channel,
                "open", iso(e.occurred_at), e.actor, json.dumps(_location(e)), pos))


def _deadlines(db: sqlite3.Connection, e: Any, pos: int) -> None:
    values = {STAGE_DUE[s]: iso(d) for s, d in e.deadlines.items() if s in STAGE_DUE}
    if e.calendar_incomplete:  # once flagged, the order stays flagged for review
        values["calendar_incomplete"] = 1
    _set(db, e, pos, policy_version=e.policy_version, **values)


def _urged(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_urgings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (str(e.originator_id), e.stage, e.seq, "urging", None, iso(e.deadline),
                iso(e.due_at), e.department, iso(e.occurred_at), pos, e.missed,
                iso(e.first_due_at)))
    db.execute("UPDATE wo_orders SET urgings=urgings+1, missed_urgings=missed_urgings+?,"
               " last_urged_at=?, position=? WHERE work_order_id=?",
               (e.missed, iso(e.occurred_at), pos, str(e.originator_id)))


def _escalated(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_urgings VALUES (?,?,?,?,?,?,?,?,?,?,0,NULL)",
               (str(e.originator_id), e.stage, e.after_urgings, "escalation", e.level,
                iso(e.deadline), None, e.to, iso(e.occurred_at), pos))
    db.execute("UPDATE wo_orders SET escalation_level=max(escalation_level, ?), position=?"
               " WHERE work_order_id=?", (e.level, pos, str(e.originator_id)))


def _linked(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_links VALUES (?,?,?,?,NULL)",
               (str(e.originator_id), e.link_id, str(e.call_id) if e.call_id else None,
                iso(e.occurred_at)))
    db.execute("UPDATE wo_orders SET linked_reports=linked_reports+1, position=?"
               " WHERE work_order_id=?", (pos, str(e.originator_id)))


def _split(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("UPDATE wo_links SET split_to=? WHERE work_order_id=? AND link_id=?",
               (str(e.new_work_order_id), str(e.originator_id), e.link_id))
    db.execute("UPDATE wo_orders SET linked_reports=linked_reports-1, position=?"
               " WHERE work_order_id=?", (pos, str(e.originator_id)))


def _split_from(db: sqlite3.Connection, e: Any, pos: int) -> None:
    row = db.execute("SELECT status, department FROM wo_orders WHERE work_order_id=?",
                     (str(e.originator_id),)).fetchone()
    status = row[0] if row else "open"
    if status == "merged":
        status = "dispatched" if row[1] else "open"
    _set(db, e, pos, split_from=str(e.source_work_order_id), merged_into=None, status=status)


def _reopened(db: sqlite3.Connection, e: Any, pos: int) -> None:
    row = db.execute("SELECT department, callback_state FROM wo_orders WHERE work_order_id=?",
                     (str(e.originator_id),)).fetchone()
    dept = row[0] if row else None
    cb = "reopened" if row and row[1] == "pending" else (row[1] if row else None)
    db.execute("UPDATE wo_orders SET status=?, resolved_at=NULL, closed_at=NULL,"
               " reopen_count=reopen_count+1, callback_state=?, position=?"
               " WHERE work_order_id=?",
               ("dispatched" if dept else "open", cb, pos, str(e.originator_id)))


def _callback_scheduled(db: sqlite3.Connection, e: Any, pos: int) -> None:
    _set(db, e, pos, callback_task=e.task, callback_state="pending", callback_due=iso(e.due_at),
         callback_next_due=iso(e.due_at), callback_give_up=iso(e.give_up_at),
         callback_attempts=0, callback_assignee=e.assignee, callback_team=e.team)


def _callback_recorded(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_callback_attempts VALUES (?,?,?,?,?,?,?,?,?)",
               (str(e.originator_id), e.task, e.attempt, iso(e.occurred_at), e.result,
                e.reason, e.satisfaction, e.outcome, pos))
    # v1 events (upcast) are attempts outside any callback task: task 0.
    values: dict[str, Any] = {}
    if e.task:
        values.update(callback_attempts=e.attempt, callback_next_due=iso(e.next_due_at))
        if e.outcome != "retry":
            values["callback_state"] = e.outcome
    if e.satisfaction is not None:
        values["satisfaction"] = e.satisfaction
    if values:
        _set(db, e, pos, **values)


def _appended(column: str) -> Callable[[sqlite3.Connection, Any, int], None]:
    """Referrals out and replies: listed on the order by partner, reference
    and time (a reply's text is personal data and stays in the event)."""
    def apply(db: sqlite3.Connection, e: Any, pos: int) -> None:
        row = db.execute(f"SELECT {column} FROM wo_orders WHERE work_order_id=?",
                         (str(e.originator_id),)).fetchone()
        items = json.loads(row[0] or "[]") if row else []
        items.append({"partner": e.partner, "reference": e.reference, "at": iso(e.occurred_at)})
        _set(db, e, pos, **{column: json.dumps(items)})
    return apply


def _outage_published(db: sqlite3.Connection, e: Any, pos: int) -> None:
    oid = str(e.originator_id)
    db.execute("INSERT OR REPLACE INTO wo_outages VALUES (?,?,?,?,?,?,?,?,?,NULL,0)",
               (oid, e.reference, e.kind, json.dumps(e.areas), iso(e.start), iso(e.end),
                e.reason, iso(e.occurred_at), int(e.short_notice)))
    db.executemany("INSERT OR IGNORE INTO wo_outage_areas VALUES (?,?)",
                   [(oid, a) for a in e.areas])


def _outage_revised(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("UPDATE wo_outages SET start=?, end=?, reason=? WHERE outage_id=?",
               (iso(e.start), iso(e.end), e.reason, str(e.originator_id)))


def _outage_cancelled(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("UPDATE wo_outages SET cancelled_at=? WHERE outage_id=?",
               (iso(e.occurred_at), str(e.originator_id)))


def _enquiry_answered(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_outage_enquiries VALUES (?,?,?,?,?,?,?)",
               (str(e.originator_id), e.area, str(e.call_id) if e.call_id else None,
                e.work_order_type, e.channel, iso(e.occurred_at), pos))
    db.execute("UPDATE wo_outages SET enquiries=enquiries+1 WHERE outage_id=?",
               (str(e.originator_id),))


def _handover_created(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR REPLACE INTO wo_handovers VALUES (?,?,?,?,?,?,NULL,NULL)",
               (str(e.originator_id), e.from_shift, e.to_shift, iso(e.occurred_at), e.actor,
                json.dumps(e.snapshot)))


def _handover_acknowledged(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("UPDATE wo_handovers SET acknowledged_by=?, acknowledged_at=?"
               " WHERE handover_id=?", (e.by, iso(e.occurred_at), str(e.originator_id)))


def _call_offered(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("INSERT OR IGNORE INTO wo_live_calls VALUES (?,?)",
               (str(e.originator_id), iso(e.occurred_at)))


def _call_over(db: sqlite3.Connection, e: Any, pos: int) -> None:
    db.execute("DELETE FROM wo_live_calls WHERE call_id=?", (str(e.originator_id),))


def _simple(**fields: Callable[[Any], Any]) -> Callable[[sqlite3.Connection, Any, int], None]:
    def apply(db: sqlite3.Connection, e: Any, pos: int) -> None:
        _set(db, e, pos, **{k: f(e) for k, f in fields.items()})
    return apply


_HANDLERS: dict[str, Callable[[sqlite3.Connection, Any, int], None]] = {
    "WorkOrder.Opened": _opened,
    "WorkOrder.DeadlinesSet": _deadlines,
    "WorkOrder.Dispatched": _simple(status=lambda e: "dispatched",
                                    department=lambda e: e.department,
                                    dispatched_at=lambda e: iso(e.occurred_at),
                                    accepted_at=lambda e: None),
    "WorkOrder.Accepted": _simple(status=lambda e: "accepted",
                                  accepted_at=lambda e: iso(e.occurred_at)),
    "WorkOrder.Resolved": _simple(status=lambda e: "resolved",
                                  resolved_at=lambda e: iso(e.occurred_at),
                                  resolution=lambda e: e.resolution,
                                  paused_at=lambda e: None),  # no clock runs once resolved
    "WorkOrder.Closed": _simple(status=lambda e: "closed", closed_at=lambda e: iso(e.occurred_at)),
    "WorkOrder.Reopened": _reopened,
    "WorkOrder.Urged": _urged,
    "WorkOrder.Escalated": _escalated,
    "WorkOrder.ClockPaused": _simple(paused_at=lambda e: iso(e.occurred_at)),
    "WorkOrder.ClockResumed": _simple(paused_at=lambda e: None),
    "WorkOrder.CallerLinked": _linked,
    "WorkOrder.Split": _split,
    "WorkOrder.SplitFrom": _split_from,
    "WorkOrder.MergedInto": _simple(status=lambda e: "merged",
                                    merged_into=lambda e: str(e.target_id)),
    "WorkOrder.ReferralReceived": _simple(referral_partner=lambda e: e.partner,
                                          referral_reference=lambda e: e.reference),
    "WorkOrder.ReferredOut": _appended("referrals_out"),
    "WorkOrder.ReplySent": _appended("replies"),
    "WorkOrder.CallbackReassigned": _simple(callback_assignee=lambda e: e.assignee,
                                            callback_team=lambda e: e.team),
    "WorkOrder.CallbackTaskScheduled": _callback_scheduled,
    "WorkOrder.CallbackRecorded": _callback_recorded,
    "WorkOrder.CallbackGaveUp": _simple(callback_state=lambda e: "gave_up",
                                        callback_next_due=lambda e: None),
    "Outage.Published": _outage_published,
    "Outage.Revised": _outage_revised,
    "Outage.Cancelled": _outage_cancelled,
    "Outage.EnquiryAnswered": _enquiry_answered,
    "Handover.Created": _handover_created,
    "Handover.Acknowledged": _handover_acknowledged,
    "Call.Offered": _call_offered,
    "Call.Ended": _call_over,
    "Call.Abandoned": _call_over,
}


def _factory(settings: Any) -> WorkOrderInboxProjection:
    return WorkOrderInboxProjection()


def _register() -> None:
    # The composition root finds this module by scanning the projections
    # package; registering here keeps lianxin.wiring free of area imports.
    try:
        from lianxin.wiring import register_projection
    except ImportError:  # pragma: no cover - projections used without the app
        return
    register_projection(_factory)


_register()
