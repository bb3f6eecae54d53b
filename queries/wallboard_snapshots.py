"""Snapshots that speed up "the wallboard as of t" without changing it.

The reconstruction folds every event that occurred by t, in log order. A
snapshot at position P is the fold of *all* events up to P; it may stand in
for the first P positions of that fold only when none of them occurred after
t, i.e. when t >= the latest source time among positions 1..P. So each
snapshot records that latest time, and a query uses the highest snapshot that
qualifies, then folds the events after P that occurred by t. Late events
(recorded after later ones) only make fewer snapshots qualify, never a wrong
answer. A snapshot also records the chain hash at P and is ignored if the
chain there has changed.

Snapshots live in ``audit_snapshots.sqlite`` under LIANXIN_HOME: a cache,
safe to delete, rebuilt by ``lianxin audit snapshot-wallboard``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from commands.event_store import occurred_at_text, occurred_us
from projections.timefmt import iso, parse

FORMAT = 2  # 2: agents carry employee number, reason and since (format 1 rows are ignored)
EVERY = 10_000


def _path(lianxin: Any) -> Path:
    return Path(lianxin.settings.ensure_home()) / "audit_snapshots.sqlite"


def _db(lianxin: Any) -> sqlite3.Connection:
    db = sqlite3.connect(_path(lianxin), timeout=30)
    db.execute("CREATE TABLE IF NOT EXISTS wallboard_snapshots (position INTEGER PRIMARY KEY,"
               " max_occurred_us INTEGER NOT NULL, chain_hash TEXT NOT NULL,"
               " format INTEGER NOT NULL, state TEXT NOT NULL)")
    return db


def dump(store: Any) -> str:
    return json.dumps({
        "slots": [[s.call_id, s.queue, iso(s.queued_at)] for s in store.slots.values()],
        "tally": [[*k, n] for k, n in store.tally.items()],
        "agents": [[a.agent_id, a.employee_no, a.team, a.state, a.reason, iso(a.since)]
                   for a in store.agent_states.values()],
    })


def load(text: str) -> Any:
    from projections.wallboard import AgentRow, MemoryWallboardStore, Slot

    data = json.loads(text)
    store = MemoryWallboardStore()
    store.slots = {c: Slot(c, q, parse(w)) for c, q, w in data["slots"]}  # type: ignore[arg-type]
    store.tally = Counter({(q, d, k, int(b)): int(n) for q, d, k, b, n in data["tally"]})
    store.agent_states = {a[0]: AgentRow(a[0], a[1], a[2], a[3], a[4], parse(a[5]))  # type: ignore[arg-type]
                          for a in data["agents"]}
    return store


def _decode(lianxin: Any, record: tuple[int, Any, int, str, bytes]) -> Any:
    from eventsourcing.persistence import StoredEvent

    _pos, oid, version, topic, state = record
    oid = oid if isinstance(oid, UUID) else UUID(str(oid))
    return lianxin.app.mapper.to_domain_event(StoredEvent(oid, version, topic, state))


def build(lianxin: Any, every: int = EVERY) -> int:
    """Add snapshots every ``every`` positions up to the head; returns how many."""
    from zoneinfo import ZoneInfo

    from projections.wallboard import MemoryWallboardStore, fold
    from queries.audit_trail import chain_source

    tz = ZoneInfo(lianxin.settings.timezone)
    db = _db(lianxin)
    src = chain_source(lianxin)
    made = 0
    try:
        row = db.execute("SELECT position, max_occurred_us, state FROM wallboard_snapshots "
                         "WHERE format = ? ORDER BY position DESC LIMIT 1", (FORMAT,)).fetchone()
        position, latest, store = (row[0], row[1], load(row[2])) if row else (
            0, -(2 ** 63), MemoryWallboardStore())
        ev_max, ch_max = src.bounds()
        head = min(ev_max, ch_max)
        while position + every <= head:
            target = position + every
            for record in src.records(position, target):
                occ = occurred_us(occurred_at_text(record[4]))
                if occ is None:
                    continue  # never "occurred by t": the query skips it too
                latest = max(latest, occ)
                fold(store, _decode(lianxin, record), tz)
            _, chain_hash = src.chain_at_or_before(target)
            db.execute("INSERT OR REPLACE INTO wallboard_snapshots VALUES (?,?,?,?,?)",
                       (target, latest, chain_hash.hex(), FORMAT, dump(store)))
            db.commit()
            position = target
            made += 1
    finally:
        src.close()
        db.close()
    return made


def usable(lianxin: Any, at_us: int, src: Any) -> tuple[int, Any] | None:
    """(position, store) of the best snapshot for an instant, or None."""
    path = _path(lianxin)
    if not path.exists():
        return None
    db = _db(lianxin)
    try:
        rows = db.execute("SELECT position, chain_hash, state FROM wallboard_snapshots "
                          "WHERE format = ? AND max_occurred_us <= ? ORDER BY position DESC",
                          (FORMAT, at_us)).fetchall()
    finally:
        db.close()
    for position, chain_hash, state in rows:
        at, stored = src.chain_at_or_before(position)
        if at == position and stored.hex() == chain_hash:
            return position, load(state)
    return None
