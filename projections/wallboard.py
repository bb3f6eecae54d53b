"""The wallboard: per queue, who is waiting now and today's figures; agents
by state.

Definitions (each is a choice; see the reference on how vendors differ):

* A call is **offered** to a queue when it enters it (``Queued``, or
  ``Transferred`` to a queue). Entering another queue offers it again there;
  ring-no-answer keeps it waiting in the same queue and is not a new offer.
* **Waiting now**: calls that entered a queue and have not been answered,
  abandoned or taken out of it. A caller whose agent's phone is ringing is
  still waiting. The board lists them (``waiting_calls``: call id, queue,
  waiting since), oldest first.
* **Longest wait**: the wallboard's instant minus ``queued_at`` of the oldest
  waiting call of the queue.
* **Answered**: an agent answered while the call waited in the queue; its
  wait is answer time minus ``queued_at``.
* **Abandoned**: the caller hung up while waiting in the queue (also while an
  agent was being alerted). Hang-ups in the IVR belong to no queue.
* **Exited**: left the queue any other way (ended by the system or a
  supervisor, or moved to another queue).
* **Today** is the center's local day (``Settings.timezone``) of each event's
  ``occurred_at``: offered counts on the day the call entered the queue,
  answered/abandoned on the day that happened. So offered != answered +
  abandoned + exited while calls wait, and around midnight.
* **Agents**: each agent's state, with its not-ready reason and since when
  (the source time of the event that put it there), listed by employee
  number (``agents.list``) and counted by state and by team.
* **Service level** = answered within T / (answered + abandoned), where
  "within T" is a wait of at most T whole seconds (default 20 s,
  ``LIANXIN_SL_THRESHOLD_S``; any T may be asked for at query time because
  waits are kept per second). Every abandon counts against it, short or not.
  ``None`` when nothing was answered or abandoned.

The logic is one pure fold (``fold``) over a small store interface and one
pure ``render``; the live projection keeps the store in SQLite, and the
"wallboard as of t" reconstruction can fold the same events into a
``MemoryWallboardStore``.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any, Iterable, Protocol
from zoneinfo import ZoneInfo

from domain.agent import AgentState
from projections.agent_board import KEEP, agent_transition
from projections.runner import drop_tables
from projections.timefmt import iso, parse

KINDS = ("offered", "answered", "abandoned", "exited")
MAX_BUCKET = 86_400  # waits are kept per whole second up to a day


@dataclass(frozen=True)
class Slot:
    """A call waiting in a queue."""

    call_id: str
    queue: str
    queued_at: datetime


@dataclass(frozen=True)
class AgentRow:
    """An agent as the wallboard shows it."""

    agent_id: str
    employee_no: str
    team: str
    state: str
    reason: str | None
    since: datetime


class WallboardStore(Protocol):
    def waiting_slot(self, call_id: str) -> Slot | None: ...

    def open_slot(self, slot: Slot) -> None: ...

    def close_slot(self, call_id: str) -> None: ...

    def count(self, queue: str, day: str, kind: str, bucket: int) -> None: ...

    def register_agent(self, row: AgentRow) -> None: ...

    def set_agent(self, agent_id: str, state: str, reason: str | None, since: datetime
                  ) -> None: ...

    def waiting(self) -> Iterable[Slot]: ...

    def counts(self, day: str) -> Iterable[tuple[str, str, int, int]]: ...

    def agents(self) -> Iterable[AgentRow]: ...


def local_day(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).date().isoformat()


def wait_bucket(start: datetime, end: datetime) -> int:
    """Whole seconds, rounded up: a wait of 20.3 s is not "within 20 s"."""
    seconds = (end - start).total_seconds()
    return min(MAX_BUCKET, max(0, math.ceil(seconds - 1e-9)))


# -- the fold ----------------------------------------------------------------
def fold(store: WallboardStore, event: Any, tz: tzinfo) -> None:
    """Apply one event to the wallboard state."""
    kind = type(event).__qualname__
    if kind.startswith("Agent."):
        change = agent_transition(event)
        if change is None or change.state is None:
            return
        # Every state-changing transition names its reason (None included).
        reason = None if change.reason is KEEP else change.reason
        if kind == "Agent.Registered":
            store.register_agent(AgentRow(str(event.originator_id), event.employee_no,
                                          event.team or "", change.state, reason,
                                          event.occurred_at))
        else:
            store.set_agent(str(event.originator_id), change.state, reason, event.occurred_at)
        return
    if not kind.startswith("Call."):
        return
    call_id = str(event.originator_id)
    when: datetime = event.occurred_at
    slot = store.waiting_slot(call_id)
    if kind == "Call.Queued":
        if slot is not None and slot.queue == event.queue:
            return  # re-prioritised in the same queue: still the same wait
        if slot is not None:
            _leave(store, slot, "exited", when, tz)
        _enter(store, call_id, event.queue, when, tz)
    elif kind == "Call.Transferred":
        if slot is not None:
            _leave(store, slot, "exited", when, tz)
        if event.target_type == "queue":
            _enter(store, call_id, event.target, when, tz)
    elif slot is None:
        return
    elif kind == "Call.Answered":
        _leave(store, slot, "answered", when, tz)
    elif kind == "Call.Abandoned":
        _leave(store, slot, "abandoned", when, tz)
    elif kind == "Call.Ended":
        _leave(store, slot, "exited", when, tz)


def _enter(store: WallboardStore, call_id: str, queue: str, when: datetime, tz: tzinfo) -> None:
    store.open_slot(Slot(call_id, queue, when))
    store.count(queue, local_day(when, tz), "offered", 0)


def _leave(store: WallboardStore, slot: Slot, kind: str, when: datetime, tz: tzinfo) -> None:
    store.close_slot(slot.call_id)
    store.count(slot.queue, local_day(when, tz), kind, wait_bucket(slot.queued_at, when))


# -- the picture -------------------------------------------------------------
def _service_level(within: int, answered: int, abandoned: int) -> float | None:
    handled = answered + abandoned
    return None if handled == 0 else round(within / handled, 4)


def _figures(name: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"waiting": 0, "longest_wait_s": 0.0, "oldest_waiting_since": None}
    row.update({k: 0 for k in KINDS})
    row["answered_within_threshold"] = 0
    if name is not None:
        row = {"queue": name, **row}
    return row


def render(store: WallboardStore, *, at: datetime, tz: tzinfo,
           threshold_s: int) -> dict[str, Any]:
    """The wallboard at instant ``at`` (its "today" is ``at``'s local day)."""
    day = local_day(at, tz)
    queues: dict[str, dict[str, Any]] = {}
    totals = _figures(None)
    oldest: dict[str | None, datetime] = {}
    for slot in store.waiting():
        for key, row in ((slot.queue, queues.setdefault(slot.queue, _figures(slot.queue))),
                         (None, totals)):
            row["waiting"] += 1
            if key not in oldest or slot.queued_at < oldest[key]:
                oldest[key] = slot.queued_at
    for queue, kind, bucket, n in store.counts(day):
        for row in (queues.setdefault(queue, _figures(queue)), totals):
            row[kind] += n
            if kind == "answered" and bucket <= threshold_s:
                row["answered_within_threshold"] += n
    for key, row in [*queues.items(), (None, totals)]:
        if key in oldest:
            row["oldest_waiting_since"] = iso(oldest[key])
            row["longest_wait_s"] = round(max(0.0, (at - oldest[key]).total_seconds()), 3)
        row["service_level"] = _service_level(row["answered_within_threshold"],
                                               row["answered"], row["abandoned"])
    return {
        "at": iso(at),
        "day": day,
        "timezone": str(getattr(tz, "key", tz)),
        "service_level_threshold_s": threshold_s,
        "queues": [queues[q] for q in sorted(queues)],
        "totals": totals,
        "waiting_calls": _waiting_calls(store.waiting(), at),
        "agents": _agents(store.agents()),
    }


def _waiting_calls(slots: Iterable[Slot], at: datetime) -> list[dict[str, Any]]:
    """Who is waiting, oldest first (ties by call id: the stores keep no order)."""
    return [{"call_id": s.call_id, "queue": s.queue, "since": iso(s.queued_at),
             "wait_s": round(max(0.0, (at - s.queued_at).total_seconds()), 3)}
            for s in sorted(slots, key=lambda s: (s.queued_at, s.call_id))]


def _agents(rows: Iterable[AgentRow]) -> dict[str, Any]:
    by_state = {s.value: 0 for s in AgentState}
    by_team: dict[str, dict[str, int]] = {}
    listed = []
    for row in sorted(rows, key=lambda r: (r.employee_no, r.agent_id)):
        by_state[row.state] = by_state.get(row.state, 0) + 1
        team_row = by_team.setdefault(row.team, {s.value: 0 for s in AgentState})
        team_row[row.state] = team_row.get(row.state, 0) + 1
        listed.append({"employee_no": row.employee_no, "agent_id": row.agent_id,
                       "team": row.team, "state": row.state, "reason": row.reason,
                       "since": iso(row.since)})
    return {"by_state": by_state, "by_team": {t: by_team[t] for t in sorted(by_team)},
            "list": listed}


# -- stores ------------------------------------------------------------------
class MemoryWallboardStore:
    """The wallboard state in memory: for reconstructions ("as of t")."""

    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {}
        self.tally: Counter[tuple[str, str, str, int]] = Counter()
        self.agent_states: dict[str, AgentRow] = {}

    def waiting_slot(self, call_id: str) -> Slot | None:
        return self.slots.get(call_id)

    def open_slot(self, slot: Slot) -> None:
        self.slots[slot.call_id] = slot

    def close_slot(self, call_id: str) -> None:
        self.slots.pop(call_id, None)

    def count(self, queue: str, day: str, kind: str, bucket: int) -> None:
        self.tally[(queue, day, kind, bucket)] += 1

    def register_agent(self, row: AgentRow) -> None:
        self.agent_states[row.agent_id] = row

    def set_agent(self, agent_id: str, state: str, reason: str | None, since: datetime
                  ) -> None:
        row = self.agent_states.get(agent_id)
        if row is not None:  # like the SQLite store: an unregistered agent is not shown
            self.agent_states[agent_id] = replace(row, state=state, reason=reason, since=since)

    def waiting(self) -> Iterable[Slot]:
        return list(self.slots.values())

    def counts(self, day: str) -> Iterable[tuple[str, str, int, int]]:
        return [(q, k, b, n) for (q, d, k, b), n in self.tally.items() if d == day]

    def agents(self) -> Iterable[AgentRow]:
        return list(self.agent_states.values())


class SqliteWallboardStore:
    """The wallboard state in the read-model database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @staticmethod
    def setup(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS wallboard_waiting ("
                   " call_id TEXT PRIMARY KEY, queue TEXT NOT NULL, queued_at TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS wallboard_counts ("
                   " queue TEXT NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL,"
                   " bucket INTEGER NOT NULL, n INTEGER NOT NULL,"
                   " PRIMARY KEY (day, queue, kind, bucket))")
        db.execute("CREATE TABLE IF NOT EXISTS wallboard_agents ("
                   " agent_id TEXT PRIMARY KEY, employee_no TEXT NOT NULL, team TEXT NOT NULL,"
                   " state TEXT NOT NULL, reason TEXT, since TEXT NOT NULL)")

    def waiting_slot(self, call_id: str) -> Slot | None:
        row = self.db.execute("SELECT queue, queued_at FROM wallboard_waiting WHERE call_id=?",
                              (call_id,)).fetchone()
        return None if row is None else Slot(call_id, row[0], parse(row[1]))  # type: ignore[arg-type]

    def open_slot(self, slot: Slot) -> None:
        self.db.execute("INSERT INTO wallboard_waiting VALUES (?,?,?)",
                        (slot.call_id, slot.queue, iso(slot.queued_at)))

    def close_slot(self, call_id: str) -> None:
        self.db.execute("DELETE FROM wallboard_waiting WHERE call_id=?", (call_id,))

    def count(self, queue: str, day: str, kind: str, bucket: int) -> None:
        self.db.execute("INSERT INTO wallboard_counts VALUES (?,?,?,?,1)"
                        " ON CONFLICT (day, queue, kind, bucket) DO UPDATE SET n = n + 1",
                        (queue, day, kind, bucket))

    def register_agent(self, row: AgentRow) -> None:
        self.db.execute("INSERT OR REPLACE INTO wallboard_agents VALUES (?,?,?,?,?,?)",
                        (row.agent_id, row.employee_no, row.team, row.state, row.reason,
                         iso(row.since)))

    def set_agent(self, agent_id: str, state: str, reason: str | None, since: datetime
                  ) -> None:
        self.db.execute("UPDATE wallboard_agents SET state=?, reason=?, since=? WHERE agent_id=?",
                        (state, reason, iso(since), agent_id))

    def waiting(self) -> Iterable[Slot]:
        rows = self.db.execute("SELECT call_id, queue, queued_at FROM wallboard_waiting")
        return [Slot(r[0], r[1], parse(r[2])) for r in rows]  # type: ignore[arg-type]

    def counts(self, day: str) -> Iterable[tuple[str, str, int, int]]:
        rows = self.db.execute("SELECT queue, kind, bucket, n FROM wallboard_counts WHERE day=?",
                               (day,))
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def agents(self) -> Iterable[AgentRow]:
        rows = self.db.execute("SELECT agent_id, employee_no, team, state, reason, since"
                               " FROM wallboard_agents")
        return [AgentRow(r[0], r[1], r[2], r[3], r[4], parse(r[5])) for r in rows]  # type: ignore[arg-type]


class WallboardProjection:
    name = "wallboard"
    # 3: agents' employee number, reason and since (a file built with 1 is
    # rebuilt from the log). Not 2: tests/projections/test_versions.py uses 2
    # as "a version other than the current one".
    version = 3
    tables = ("wallboard_waiting", "wallboard_counts", "wallboard_agents")

    def __init__(self, timezone: str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(timezone)

    def setup(self, db: sqlite3.Connection) -> None:
        SqliteWallboardStore.setup(db)

    def reset(self, db: sqlite3.Connection) -> None:
        drop_tables(db, self.tables)

    def apply(self, db: sqlite3.Connection, event: Any, position: int) -> None:
        fold(SqliteWallboardStore(db), event, self.tz)


def wallboard_as_of(events: Iterable[Any], *, at: datetime, timezone: str = "Asia/Shanghai",
                    threshold_s: int = 20) -> dict[str, Any]:
    """The wallboard from a sequence of events in log order (those up to ``at``):
    the same fold and picture as the live projection, held in memory."""
    tz = ZoneInfo(timezone)
    store = MemoryWallboardStore()
    for event in events:
        fold(store, event, tz)
    return render(store, at=at, tz=tz, threshold_s=threshold_s)
