"""Durable work-order timers: urging, escalation and callback give-up.

Nothing about a timer is stored as "scheduled": every due moment is derived
from the order's own events (its deadlines and the urging cadence stamped
with them, how many due moments its urgings already stand for, its pauses,
its callback task). The timer fires one command per deadline for the
moments due, with a command id made of the order, stage, deadline and the
first moment's number, and the aggregate accepts an urging starting at
moment ``n`` only when it stands for ``n-1`` already. Hence:

* nothing fires twice: a re-fire after a crash, or the same moment fired by
  two processes, is a duplicate (same id) or out of turn (already counted);
* nothing is missed, and nothing storms: a process that was down records
  every moment that fell due meanwhile in one urging per deadline (``seq``
  the latest moment, ``missed`` how many before it, ``first_due_at`` the
  earliest), and escalates at most once, to the level they call for;
* a paused clock is not urged, and moments that fell due during the pause
  are not due at all: urging carries on at the next step after the resume.

To avoid loading every order on every tick, the timer follows the
notification log with its own position (``timers.sqlite`` under
LIANXIN_HOME) and keeps, per order with something still to come, the next
moment it must look at it. Any new event of an order makes it look again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from commands import work_order_messages as wm
from commands.messages import Command
from commands.work_order_rules import WorkOrderRules, cadence_for, rules_of
from domain.deadlines import due_urging, next_urging
from domain.errors import DomainError
from domain.work_order import WorkOrder, WorkOrderStatus

log = logging.getLogger(__name__)

WORK_ORDER_TOPIC = "domain.work_order:WorkOrder."
PAGE = 1000
CHUNK = 500  # orders looked at (and commands fired) per batch
ACTOR = "timer"


@dataclass
class TickReport:
    now: datetime
    urged: int = 0
    missed: int = 0  # due moments merged into the urgings fired (catching up)
    escalated: int = 0
    callbacks_given_up: int = 0
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "urged": self.urged, "missed": self.missed,
                "escalated": self.escalated,
                "callbacks_given_up": self.callbacks_given_up, "duplicates": self.duplicates,
                "refused": list(self.refused)}


def _timing(wo: WorkOrder, stage: str, rules: WorkOrderRules) -> tuple[timedelta, timedelta]:
    cadence = cadence_for(wo, stage, rules.policy)
    return cadence.lead.approx, cadence.interval.approx


def due_commands(wo: WorkOrder, now: datetime, rules: WorkOrderRules) -> list[Command]:
    """The commands the moments due by ``now`` call for, oldest first: one
    urging per deadline, standing for every moment due since the last one."""
    out: list[Command] = []
    if not wo.is_paused:
        for stage in wo.active_stages():
            deadline = wo.deadlines[stage]
            lead, interval = _timing(wo, stage, rules)
            urged = wo.urgings.get(stage, 0)
            due = due_urging(deadline, lead, interval, urged, wo.last_urge_due.get(stage), now,
                             wo.pauses)
            if due is None:
                continue
            first = urged + 1
            out.append(wm.UrgeWorkOrder(
                work_order_id=wo.id, stage=stage, first_seq=first, seq=urged + due.count,
                first_due_at=due.first_due_at, due_at=due.due_at, deadline=deadline,
                occurred_at=now, actor=ACTOR,
                command_id=f"urge:{wo.id}:{stage}:{deadline.isoformat()}:{first}"))
    task = wo.callback_task
    if (task and task["state"] == "pending" and now >= task["give_up_at"]
            and wo.status in (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED)):
        out.append(wm.GiveUpCallback(work_order_id=wo.id, task=task["task"], occurred_at=now,
                                     actor=ACTOR,
                                     command_id=f"callback-give-up:{wo.id}:{task['task']}"))
    out.sort(key=lambda c: getattr(c, "due_at", None) or now)
    return out


def next_moment(wo: WorkOrder, rules: WorkOrderRules) -> datetime | None:
    """When this order next needs the timer, if ever (without new events)."""
    moments: list[datetime] = []
    if not wo.is_paused:
        for stage in wo.active_stages():
            lead, interval = _timing(wo, stage, rules)
            moments.append(next_urging(wo.deadlines[stage], lead, interval,
                                       wo.urgings.get(stage, 0), wo.last_urge_due.get(stage),
                                       wo.pauses))
    task = wo.callback_task
    if task and task["state"] == "pending" and wo.status in (WorkOrderStatus.RESOLVED,
                                                             WorkOrderStatus.CLOSED):
        moments.append(task["give_up_at"])
    return min(moments, default=None)


class WorkOrderTimers:
    def __init__(self, lianxin: Any, db_path: Path | str | None = None) -> None:
        self.lianxin = lianxin
        self.app = lianxin.app
        self.commands = lianxin.commands
        self.rules: WorkOrderRules = rules_of(lianxin.commands.bus.ctx)
        path = db_path or Path(lianxin.settings.ensure_home()) / "timers.sqlite"
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS timer_position ("
                        "name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS timer_watch ("
                        "work_order_id TEXT PRIMARY KEY, next_due REAL)")  # NULL: look now
        self.db.execute("CREATE INDEX IF NOT EXISTS timer_watch_due ON timer_watch (next_due)")
        self.db.execute("INSERT OR IGNORE INTO timer_position VALUES ('work_orders', 0)")
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return int(self.db.execute("SELECT position FROM timer_position "
                                   "WHERE name='work_orders'").fetchone()[0])

    def follow(self) -> int:
        """Note every order with new events since the last look."""
        seen = 0
        while True:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                start = self.position  # inside the write lock: another process may have moved it
                batch = self.app.recorder.select_notifications(
                    start=start, limit=PAGE, inclusive_of_start=False)
                ids = {str(n.originator_id) for n in batch
                       if n.topic.startswith(WORK_ORDER_TOPIC)}
                self.db.executemany("INSERT INTO timer_watch VALUES (?, NULL) ON CONFLICT"
                                    "(work_order_id) DO UPDATE SET next_due=NULL",
                                    [(i,) for i in ids])
                if batch:
                    self.db.execute("UPDATE timer_position SET position=? WHERE name='work_orders'",
                                    (batch[-1].id,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            seen += len(batch)
            if len(batch) < PAGE:
                return seen

    def tick(self, now: datetime | None = None) -> TickReport:
        """Fire everything due by ``now`` (default: the wall clock)."""
        now = now or datetime.now(timezone.utc)
        report = TickReport(now)
        with self._lock:
            self.follow()
            rows = self.db.execute("SELECT work_order_id FROM timer_watch WHERE next_due IS NULL"
                                   " OR next_due <= ? ORDER BY next_due",
                                   (now.timestamp(),)).fetchall()
            for start in range(0, len(rows), CHUNK):
                self._visit([UUID(r[0]) for r in rows[start:start + CHUNK]], now, report)
        return report

    def _visit(self, wo_ids: list[UUID], now: datetime, report: TickReport) -> None:
        orders: dict[UUID, WorkOrder] = {}
        for wo_id in wo_ids:
            try:
                orders[wo_id] = self.app.repository.get(wo_id)
            except Exception:  # noqa: BLE001 - not (yet) readable: look again next tick
                log.warning("timer: work order %s could not be loaded", wo_id)
        # One batch for the chunk: the bus commits it together, in order, so
        # an order's urgings still arrive one after the other.
        cmds = [c for wo in orders.values() for c in due_commands(wo, now, self.rules)]
        fired = set()
        for cmd, result in zip(cmds, self.commands.handle_many(cmds) if cmds else []):
            if isinstance(result, DomainError):
                # The order moved on between reading and firing: the next
                # look (its new events mark it) decides again.
                report.refused.append(f"{cmd.command_id}: {result.message}")
            elif isinstance(result, BaseException):
                raise result
            elif result.duplicate:
                report.duplicates += 1
            elif isinstance(cmd, wm.UrgeWorkOrder):
                report.urged += 1
                report.missed += cmd.seq - (cmd.first_seq or cmd.seq)
                report.escalated += result.new_events - 1  # Urged, then Escalated if any
            else:
                report.callbacks_given_up += 1
            fired.add(cmd.work_order_id)
        for wo_id in fired:
            orders[wo_id] = self.app.repository.get(wo_id)
        gone, later = [], []
        for wo_id, wo in orders.items():
            upcoming = next_moment(wo, self.rules)
            if upcoming is None:
                gone.append((str(wo_id),))
            else:
                later.append((upcoming.timestamp(), str(wo_id)))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("DELETE FROM timer_watch WHERE work_order_id=?", gone)
            self.db.executemany("UPDATE timer_watch SET next_due=? WHERE work_order_id=?", later)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def pending(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM timer_watch").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class TimerLoop:
    """The in-process loop ``lianxin serve`` runs (see ``register_service``)."""

    def __init__(self, lianxin: Any, interval_s: float = 15.0) -> None:
        self.timers = WorkOrderTimers(lianxin)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.timers.tick()
                except Exception:  # noqa: BLE001 - keep ticking; every tick re-derives
                    log.exception("work-order timer tick failed")
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=loop, name="work-order-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.timers.close()


def timer_service(lianxin: Any) -> TimerLoop:
    """Factory for ``lianxin.wiring.register_service``."""
    return TimerLoop(lianxin)
