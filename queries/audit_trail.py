"""Verifying the hash chain of the notification log (``lianxin audit verify``).

The fast path recomputes the chain page by page from the events alone and
compares every recomputed value with every stored one: the database hands
over a page's stored chain as one value (``group_concat`` on SQLite,
``string_agg`` on PostgreSQL) with its count and first/last position, and the
verifier compares it with the recomputed values in one buffer comparison, so
checking every row costs little more than checking the page's last one
(reading the chain row by row through the driver would cost a third more). A
page that disagrees is re-read record by record to name the first position
and what happened there:

* ``altered``   the record (or its chain entry) no longer hashes to its chain value;
* ``reordered`` the record hashes correctly at another position of the page;
* ``deleted``   a chain entry has no record, or positions are missing before a break;
* ``inserted``  a record has no chain entry (written outside the application).

Each record is checked against the stored chain value of its predecessor, so
the range can be split between worker processes (``workers``) that verify
their slices independently: if every slice holds, the stored chain is exactly
the chain recomputed from the first record. Splits fall on page boundaries
(lo + k * page) and the parts are combined by ``_join``, so the verdict never
depends on how the work was split.

The C fast path (queries/_fastchain.c, built by setup.py where a compiler and
the sqlite3 and OpenSSL headers exist): on SQLite the whole loop (read, leaf,
link, compare with every stored value) runs in C with the GIL released, the
range split between threads; where its form disagrees it stops, and the
Python verifier decides that page exactly as it would have on its own, so the
verdicts are the Python verifier's (tested against every kind of tampering).
On PostgreSQL the same loop runs in a separate module (queries/_fastchain_pg.c,
linked to libpq, so a machine without libpq still gets the SQLite one): each
thread reads its span's events and chain rows with its own connection
(binary COPY, page by page), builds the canonical bytes and hashes leaf and
link client-side, under the same contract. Without that module PostgreSQL
is verified by the Python verifier, with the server hashing the leaves and
C (queries._fastchain) doing the link step. Without the modules, or with
``LIANXIN_AUDIT_VERIFIER=python``, everything is Python.

Within a slice, reader threads (each with its own connection) fetch the next
pages' leaf digests while the caller chains the current page: on PostgreSQL
the leaves are hashed by the server, so two readers keep two server processes
busy beside the Python one; on SQLite the reading is Python under the GIL and
one reader ahead is all that overlaps. The per-record floor in Python is two
sha256 calls (leaf, then link), which with hashlib's per-call cost is already
about 0.6x of one call per record: see bench/audit.py and docs/performance.md.

The fast forms (SQL header on SQLite, the server's canonical bytes on
PostgreSQL) only decide which pages need a closer look; the record-by-record
check with ``commands.event_store.canonical`` names the finding, and a page
where the fast form disagreed but the reference form holds is verified.

A chain recomputed by someone who also rewrote the chain table passes this
check; an anchor published earlier (queries/audit_anchors.py) does not.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import chain as _then
from operator import itemgetter
from typing import Any, Iterable, Sequence
from uuid import UUID

from commands.event_store import (
    GENESIS,
    ChainedPostgresApplicationRecorder,
    ChainedSQLiteApplicationRecorder,
    canonical,
    leaf_of,
    link,
    postgres_leaf_sql,
    OCCURRED_MARK,
    OCCURRED_WINDOW,
    sqlite_header_sql,
)
from domain.errors import InvalidValue

PAGE = 20_000
# Below this many records starting worker processes (spawned: a second or
# more on a busy machine) costs more than splitting the range saves.
PARALLEL_MIN = 1_000_000

_sha256 = hashlib.sha256
_second = itemgetter(1)


# -- reading the store ---------------------------------------------------------
class ChainSource:
    """Read access to the events and chain tables (no library objects, so a
    worker process can open its own from ``params``)."""

    params: dict[str, Any]

    def bounds(self) -> tuple[int, int]:
        """(highest event position, highest chain position)."""
        raise NotImplementedError

    def chain_at_or_before(self, position: int) -> tuple[int, bytes]:
        raise NotImplementedError

    def chain_between(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        raise NotImplementedError

    def chain_summary(self, lo: int, hi: int) -> tuple[int, int | None, int | None, bytes]:
        """(count, first and last position, the chain values concatenated in
        position order) of the chain rows with lo < position <= hi. One row
        from the database instead of one per record: the verifier compares
        every stored value of a page at once."""
        raise NotImplementedError

    def event_positions(self, lo: int, hi: int) -> list[int]:
        raise NotImplementedError

    def chain_positions(self, lo: int, hi: int) -> list[int]:
        return [p for p, _ in self.chain_between(lo, hi)]

    def leaves(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """(position, leaf digest) of events with lo < position <= hi, in order.
        Callers page by position span, not by row count: a LIMIT under
        ORDER BY lets PostgreSQL hash (or sort) the whole rest of the range."""
        raise NotImplementedError

    def leaf_digests(self, lo: int, hi: int) -> tuple[int, int, list[bytes]]:
        """The verifier's form of ``leaves``: (first position, last position,
        digests in order); positions are 0 when the span holds no event."""
        rows = self.leaves(lo, hi)
        if not rows:
            return 0, 0, []
        return rows[0][0], rows[-1][0], [d for _, d in rows]

    def leaf_blob(self, lo: int, hi: int) -> tuple[int, int, int, bytes]:
        """(count, first position, last position, digests concatenated): the
        form the C link step takes."""
        first, last, digests = self.leaf_digests(lo, hi)
        return len(digests), first, last, b"".join(digests)

    def records(self, lo: int, hi: int) -> list[tuple[int, Any, int, str, bytes]]:
        """(position, aggregate id, version, topic, payload) with lo < position <= hi."""
        raise NotImplementedError

    def records_at(self, positions: Sequence[int]) -> list[tuple[int, Any, int, str, bytes]]:
        raise NotImplementedError

    def positions_of(self, originator_ids: Iterable[UUID]) -> list[int]:
        raise NotImplementedError

    def positions_between_times(self, lo_us: int | None, hi_us: int | None,
                                after: int = 0) -> list[int]:
        """Positions (> ``after``) of records whose source time is in [lo_us, hi_us)."""
        raise NotImplementedError

    def occurred_us_at(self, positions: Sequence[int]) -> dict[int, int | None]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SQLiteChainSource(ChainSource):
    def __init__(self, path: str, table: str = "stored_events") -> None:
        self.params = {"kind": "sqlite", "path": path, "table": table}
        self.table = table
        self.chain = f"{table}_chain"
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30,
                                  check_same_thread=False)
        # Verification reads the whole file once: map it instead of copying
        # every page through the small default cache.
        self.db.execute("PRAGMA mmap_size=1073741824")
        # commands.event_store.sqlite_header_sql, as bytes: no decode and
        # re-encode of every record's header in the hot loop.
        self._header_sql = sqlite_header_sql(table).replace(
            "SELECT rowid, rowid || char(31)", "SELECT rowid, CAST(rowid || char(31)", 1).replace(
            "topic || char(31), state", "topic || char(31) AS BLOB), state", 1)
        if "AS BLOB" not in self._header_sql:
            raise RuntimeError("commands.event_store.sqlite_header_sql changed its form")

    def bounds(self) -> tuple[int, int]:
        ev = self.db.execute(f"SELECT max(rowid) FROM {self.table}").fetchone()[0] or 0
        ch = self.db.execute(f"SELECT max(position) FROM {self.chain}").fetchone()[0] or 0
        return ev, ch

    def chain_at_or_before(self, position: int) -> tuple[int, bytes]:
        row = self.db.execute(f"SELECT position, chain_hash FROM {self.chain} WHERE position <= ? "
                              "ORDER BY position DESC LIMIT 1", (position,)).fetchone()
        return (0, GENESIS) if row is None else (row[0], bytes(row[1]))

    def chain_between(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        return [(r[0], bytes(r[1])) for r in self.db.execute(
            f"SELECT position, chain_hash FROM {self.chain} WHERE position > ? AND position <= ? "
            "ORDER BY position", (lo, hi))]

    def chain_summary(self, lo: int, hi: int) -> tuple[int, int | None, int | None, bytes]:
        # A range scan of the INTEGER PRIMARY KEY visits rows in position
        # order, so group_concat meets them in that order (SQLite before 3.44
        # has no ORDER BY inside an aggregate). Were it ever otherwise, pages
        # would only be re-read record by record: the fast form decides nothing.
        n, first, last, blob = self.db.execute(
            f"SELECT count(*), min(position), max(position), "
            f"CAST(group_concat(chain_hash, x'') AS BLOB) FROM {self.chain} "
            "WHERE position > ? AND position <= ?", (lo, hi)).fetchone()
        return n, first, last, blob or b""

    def event_positions(self, lo: int, hi: int) -> list[int]:
        return [r[0] for r in self.db.execute(
            f"SELECT rowid FROM {self.table} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
            (lo, hi))]

    def leaves(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        first, _, digests = self.leaf_digests(lo, hi)
        positions = [r[0] for r in self.db.execute(
            f"SELECT rowid FROM {self.table} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
            (lo, hi))]
        return list(zip(positions, digests))

    def leaf_digests(self, lo: int, hi: int) -> tuple[int, int, list[bytes]]:
        # The hot loop of verification: commands.event_store.canonical, inlined.
        # Per record: one row, a byte search, one sha256; nothing kept but the digest.
        sha, mark, n, w = _sha256, OCCURRED_MARK, len(OCCURRED_MARK), OCCURRED_WINDOW
        out: list[bytes] = []
        append = out.append
        cursor = self.db.execute(self._header_sql, (lo, hi))
        head = cursor.fetchmany(1)
        if not head:
            return 0, 0, []
        first = pos = head[0][0]
        for pos, header, state in _then(head, cursor):
            if state.__class__ is not bytes:  # a row edited by hand may hold TEXT
                state = state.encode() if state.__class__ is str else bytes(state)
            i = state.find(mark)
            if i < 0:
                append(sha(header + b"\x1f" + state).digest())
                continue
            window = state[i + n:i + n + w]
            q = window.find(b'"')
            append(sha(header + (window[:q] if q >= 0 else window) + b"\x1f"
                       + state).digest())
        return first, pos, out

    def _record(self, r: Any) -> tuple[int, Any, int, str, bytes]:
        # A row edited by hand may hold TEXT where the library wrote a BLOB.
        state = r[4].encode() if isinstance(r[4], str) else bytes(r[4])
        return (r[0], r[1], r[2], r[3], state)

    def records(self, lo: int, hi: int) -> list[tuple[int, Any, int, str, bytes]]:
        sql = (f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.table} "
               "WHERE rowid > ? AND rowid <= ? ORDER BY rowid")
        return [self._record(r) for r in self.db.execute(sql, (lo, hi))]

    def records_at(self, positions: Sequence[int]) -> list[tuple[int, Any, int, str, bytes]]:
        out = []
        for i in range(0, len(positions), 500):
            chunk = list(positions[i:i + 500])
            marks = ",".join("?" * len(chunk))
            out += [self._record(r) for r in self.db.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.table} "
                f"WHERE rowid IN ({marks})", chunk)]
        return sorted(out)

    def positions_of(self, originator_ids: Iterable[UUID]) -> list[int]:
        out: list[int] = []
        for oid in originator_ids:
            out += [r[0] for r in self.db.execute(
                f"SELECT rowid FROM {self.table} WHERE originator_id = ?", (oid.hex,))]
        return sorted(out)

    def positions_between_times(self, lo_us: int | None, hi_us: int | None,
                                after: int = 0) -> list[int]:
        sql = f"SELECT position FROM {self.chain} WHERE occurred_us IS NOT NULL AND position > ?"
        args: list[int] = [after]
        if lo_us is not None:
            sql += " AND occurred_us >= ?"
            args.append(lo_us)
        if hi_us is not None:
            sql += " AND occurred_us < ?"
            args.append(hi_us)
        return sorted(r[0] for r in self.db.execute(sql, args))

    def occurred_us_at(self, positions: Sequence[int]) -> dict[int, int | None]:
        out: dict[int, int | None] = {}
        for i in range(0, len(positions), 500):
            chunk = list(positions[i:i + 500])
            marks = ",".join("?" * len(chunk))
            out.update((r[0], r[1]) for r in self.db.execute(
                f"SELECT position, occurred_us FROM {self.chain} WHERE position IN ({marks})",
                chunk))
        return out

    def close(self) -> None:
        self.db.close()


class PostgresChainSource(ChainSource):
    def __init__(self, conninfo: dict[str, Any], schema: str, table: str) -> None:
        import psycopg

        self.params = {"kind": "postgres", "conninfo": conninfo, "schema": schema,
                       "table": table}
        self.schema, self.table, self.chain = schema, table, f"{table}_chain"
        self.conn = psycopg.connect(**conninfo, autocommit=True)
        from psycopg.sql import SQL, Identifier

        self._sql, self._id = SQL, Identifier
        self._leaf_sql = postgres_leaf_sql(schema, table)

    def _q(self, text: str, **names: str) -> Any:
        return self._sql(text).format(**{k: self._id(v) for k, v in names.items()},
                                      schema=self._id(self.schema))

    def _rows(self, query: Any, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # Binary results: bytea in text form is hex, twice the bytes to move and parse.
        with self.conn.cursor(binary=True) as cur:
            cur.execute(query, args)
            return cur.fetchall()

    def bounds(self) -> tuple[int, int]:
        ev = self._rows(self._q("SELECT max(notification_id) FROM {schema}.{t}", t=self.table))
        ch = self._rows(self._q("SELECT max(position) FROM {schema}.{t}", t=self.chain))
        return ev[0][0] or 0, ch[0][0] or 0

    def chain_at_or_before(self, position: int) -> tuple[int, bytes]:
        rows = self._rows(self._q("SELECT position, chain_hash FROM {schema}.{t} WHERE position "
                                  "<= %s ORDER BY position DESC LIMIT 1", t=self.chain),
                          (position,))
        return (0, GENESIS) if not rows else (rows[0][0], bytes(rows[0][1]))

    def chain_between(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        return [(r[0], bytes(r[1])) for r in self._rows(self._q(
            "SELECT position, chain_hash FROM {schema}.{t} WHERE position > %s AND position <= %s "
            "ORDER BY position", t=self.chain), (lo, hi))]

    def chain_summary(self, lo: int, hi: int) -> tuple[int, int | None, int | None, bytes]:
        # Aggregated by the server (in a reader thread's backend): one bytea
        # per page instead of one row per record through psycopg. Ordered by
        # the subquery: PostgreSQL 15 sorts again for an ORDER BY inside the
        # aggregate (twice the cost); were the order ever lost, pages would
        # only be re-read record by record (the fast form decides nothing).
        [(n, first, last, blob)] = self._rows(self._q(
            "SELECT count(*), min(position), max(position), string_agg(chain_hash, ''::bytea) "
            "FROM (SELECT position, chain_hash FROM {schema}.{t} WHERE position > %s AND "
            "position <= %s ORDER BY position) AS c", t=self.chain), (lo, hi))
        return n, first, last, bytes(blob) if blob is not None else b""

    def event_positions(self, lo: int, hi: int) -> list[int]:
        return sorted(r[0] for r in self._rows(self._q(
            "SELECT notification_id FROM {schema}.{t} WHERE notification_id > %s AND "
            "notification_id <= %s", t=self.table), (lo, hi)))

    def leaves(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        return [(p, bytes(d)) for p, d in self._rows(self._leaf_sql, (lo, hi))]

    def leaf_digests(self, lo: int, hi: int) -> tuple[int, int, list[bytes]]:
        rows = self._rows(self._leaf_sql, (lo, hi))
        if not rows:
            return 0, 0, []
        return rows[0][0], rows[-1][0], list(map(_second, rows))

    def leaf_blob(self, lo: int, hi: int) -> tuple[int, int, int, bytes]:
        # Hashed and aggregated by the server: one bytea per page, no
        # per-record work in Python at all (the link is C's).
        # In the leaf query's order (see chain_summary on why not ORDER BY here).
        [(n, first, last, blob)] = self._rows(
            self._sql("SELECT count(*), min(notification_id), max(notification_id), "
                      "string_agg(leaf, ''::bytea) FROM ({leaves}) AS l"
                      ).format(leaves=self._leaf_sql), (lo, hi))
        return n, first or 0, last or 0, bytes(blob) if blob is not None else b""

    def _select_records(self) -> str:
        return ("SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {schema}.{t} ")

    def records(self, lo: int, hi: int) -> list[tuple[int, Any, int, str, bytes]]:
        # Sorted here: a server-side sort of wide rows spills to disk.
        sql = self._select_records() + "WHERE notification_id > %s AND notification_id <= %s"
        return sorted((r[0], r[1], r[2], r[3], bytes(r[4]))
                      for r in self._rows(self._q(sql, t=self.table), (lo, hi)))

    def records_at(self, positions: Sequence[int]) -> list[tuple[int, Any, int, str, bytes]]:
        sql = self._select_records() + "WHERE notification_id = ANY(%s) ORDER BY notification_id"
        return [(r[0], r[1], r[2], r[3], bytes(r[4]))
                for r in self._rows(self._q(sql, t=self.table), (list(positions),))]

    def positions_of(self, originator_ids: Iterable[UUID]) -> list[int]:
        rows = self._rows(self._q("SELECT notification_id FROM {schema}.{t} WHERE originator_id "
                                  "= ANY(%s)", t=self.table), (list(originator_ids),))
        return sorted(r[0] for r in rows)

    def positions_between_times(self, lo_us: int | None, hi_us: int | None,
                                after: int = 0) -> list[int]:
        rows = self._rows(self._q(
            "SELECT position FROM {schema}.{t} WHERE occurred_us IS NOT NULL AND position > %s "
            "AND (%s::bigint IS NULL OR occurred_us >= %s) AND (%s::bigint IS NULL OR "
            "occurred_us < %s)", t=self.chain), (after, lo_us, lo_us, hi_us, hi_us))
        return sorted(r[0] for r in rows)

    def occurred_us_at(self, positions: Sequence[int]) -> dict[int, int | None]:
        rows = self._rows(self._q("SELECT position, occurred_us FROM {schema}.{t} WHERE position "
                                  "= ANY(%s)", t=self.chain), (list(positions),))
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        self.conn.close()


def open_source(params: dict[str, Any]) -> ChainSource:
    if params["kind"] == "sqlite":
        return SQLiteChainSource(params["path"], params["table"])
    return PostgresChainSource(params["conninfo"], params["schema"], params["table"])


def source_params(app: Any) -> dict[str, Any]:
    """How to open the chain of ``app`` (a CallCenter or a Lianxin container)."""
    app = getattr(app, "app", app)
    recorder = app.recorder
    if isinstance(recorder, ChainedSQLiteApplicationRecorder):
        return {"kind": "sqlite", "path": recorder.datastore.pool.db_name,
                "table": recorder.events_table_name}
    if isinstance(recorder, ChainedPostgresApplicationRecorder):
        kwargs = dict(recorder.datastore.pool.kwargs)
        kwargs.pop("row_factory", None)
        return {"kind": "postgres", "conninfo": kwargs, "schema": recorder.datastore.schema,
                "table": recorder.events_table_name}
    raise InvalidValue("this event store keeps no hash chain (see commands/event_store.py)",
                       field="store")


def chain_source(app: Any) -> ChainSource:
    return open_source(source_params(app))


# -- verification --------------------------------------------------------------
@dataclass
class Finding:
    position: int
    kind: str  # altered | reordered | deleted | inserted
    detail: str


@dataclass
class Verification:
    ok: bool
    first: int  # verified range (first..last position), 0/0 when empty
    last: int
    records: int
    head: str  # hex chain hash at ``last`` (recomputed; equals the stored one when ok)
    finding: Finding | None = None
    seconds: float = 0.0
    workers: int = 1  # worker processes (Python verifier) or threads (C verifier)
    notes: list[str] = field(default_factory=list)
    verifier: str = "python"  # "c" (queries/_fastchain.c, _fastchain_pg.c), "python, C links", "python"

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["events_per_s"] = round(self.events_per_s)
        return out


@dataclass
class _Slice:
    """The outcome over a span: how many records held, the chain value after
    the last of them (the span's start value when none), the first and last
    verified position (0 and the span's start when none), the finding."""

    records: int
    head: bytes
    first: int
    last: int
    finding: Finding | None


def _join(a: _Slice, b: _Slice) -> _Slice:
    """Two consecutive spans as one (``b`` starts where ``a`` ends). Every
    way of splitting the work (pages, reader threads, worker processes, C
    threads) combines its parts with this, so the outcome does not depend
    on the split."""
    if a.finding is not None:
        return a
    if not b.records:
        return _Slice(a.records, a.head, a.first, a.last, b.finding)
    return _Slice(a.records + b.records, b.head, a.first or b.first, b.last, b.finding)


def _pinpoint(src: ChainSource, lo: int, hi: int, start: bytes, start_pos: int) -> _Slice:
    """Name the first bad position in (lo, hi], reading record by record with
    the reference form of the chain, with the records before it that held.
    No finding: every record of the page holds by the reference form (the
    fast form disagreed, the reference rules)."""
    finding = _first_bad(src, lo, hi, start, start_pos)
    upto = finding.position - 1 if finding is not None else hi
    records = src.records(lo, upto) if upto > lo else []
    chain = dict(src.chain_between(lo, upto))
    good = [r[0] for r in records if r[0] in chain]
    if not good:
        return _Slice(0, start, 0, lo, finding)
    return _Slice(len(good), chain[good[-1]], good[0], good[-1], finding)


def _first_bad(src: ChainSource, lo: int, hi: int, start: bytes, start_pos: int
               ) -> Finding | None:
    records = {r[0]: r for r in src.records(lo, hi)}
    chain = dict(src.chain_between(lo, hi))
    h, previous_pos = start, start_pos
    for pos in sorted(set(records) | set(chain)):
        if pos not in chain:
            return Finding(pos, "inserted",
                           f"the record at position {pos} has no chain entry: it was written "
                           "outside the application")
        if pos not in records:
            return Finding(pos, "deleted", f"the record at position {pos} was removed "
                                           "(its chain entry remains)")
        expected = link(h, leaf_of(canonical(*records[pos])))
        if expected != chain[pos]:
            gap = pos - previous_pos - 1
            if gap > 0:
                return Finding(previous_pos + 1, "deleted",
                               f"positions {previous_pos + 1}..{pos - 1} are missing and the chain "
                               f"breaks at {pos}: records were removed with their chain entries")
            moved = _moved_to(records[pos], chain, pos)
            if moved is not None:
                return Finding(pos, "reordered",
                               f"the record now at position {pos} was recorded at position "
                               f"{moved}: records were swapped or moved")
            return Finding(pos, "altered", f"the record at position {pos} does not match its "
                                           "chain hash: its content or chain entry was changed")
        h, previous_pos = chain[pos], pos
    return None


def _predecessor_at_fault(src: ChainSource, lo: int) -> Finding | None:
    """The first record of a range does not chain from the stored value
    before the range: that value may be the one that was changed. Check it
    against its own record, one position back, so that ``--from N`` names the
    changed position rather than the intact record after it."""
    pos, stored = src.chain_at_or_before(lo)
    if pos == 0:
        return None  # the range starts at the genesis value: nothing before it
    records = src.records_at([pos])
    if not records:
        return Finding(pos, "deleted", f"the record at position {pos}, just before the range, "
                                       "was removed (its chain entry remains)")
    _, before = src.chain_at_or_before(pos - 1)
    if link(before, leaf_of(canonical(*records[0]))) == stored:
        return None
    return Finding(pos, "altered", f"the chain entry at position {pos}, just before the range, "
                                   "does not match its record: the entry (or the record) was "
                                   "changed")


def _moved_to(record: tuple[int, Any, int, str, bytes], chain: dict[int, bytes],
              here: int) -> int | None:
    positions = sorted(chain)
    for i, q in enumerate(positions):
        if q == here or i == 0:
            continue
        candidate = link(chain[positions[i - 1]], leaf_of(canonical(q, *record[1:])))
        if candidate == chain[q]:
            return q
    return None


@dataclass
class _Page:
    """What the verifier needs of one page, read by a reader thread."""

    digests: list[bytes] | bytes  # leaf digests in position order (a list, or concatenated)
    n: int  # how many events
    first: int  # first and last event position; 0 when the span holds no event
    last: int
    chain: bytes  # the stored chain values of the span, concatenated in position order
    same_positions: bool  # the events and the chain rows are at the same positions


def _page_task(local: threading.local, opened: list[ChainSource], params: dict[str, Any],
               lo: int, hi: int, joined: bool) -> _Page:
    """One page as the verifier needs it. Runs in a reader thread with its
    own connection, so that the next pages are read (and, on PostgreSQL,
    hashed and aggregated by the server) while this thread's caller chains
    the current one. ``joined``: the leaves as one value, for the C link."""
    src = getattr(local, "src", None)
    if src is None:
        src = local.src = open_source(params)
        opened.append(src)
    if joined:
        n, first, last, digests = src.leaf_blob(lo, hi)
    else:
        first, last, digests = src.leaf_digests(lo, hi)
        n = len(digests)
    chain_n, chain_first, chain_last, chain = src.chain_summary(lo, hi)
    return _Page(digests, n, first, last, chain,
                 _same_positions(src, lo, hi, (n, first, last),
                                 (chain_n, chain_first, chain_last)))


def _same_positions(src: ChainSource, lo: int, hi: int, events: tuple[int, int, int],
                    chain: tuple[int, int | None, int | None]) -> bool:
    """Whether the span's events and chain rows sit at exactly the same
    positions. Positions are unique on both sides, so equal counts and ends
    over a span without gaps settle it; only a span with gaps (rolled-back
    PostgreSQL sequence numbers, removed rows) compares the two lists."""
    n, first, last = events
    if chain[0] != n:
        return False
    if n == 0:
        return True
    if chain[1:] != (first, last):
        return False
    return last - first + 1 == n or src.event_positions(lo, hi) == src.chain_positions(lo, hi)


def _link_page(h: bytes, digests: list[bytes] | bytes, fast: Any) -> tuple[bytes, Any]:
    """(the chain value after the page, every recomputed value concatenated).
    Every value is kept so that every stored one can be compared (one buffer
    comparison): a chain row changed mid-page is caught, not only the last."""
    if fast is not None:
        values = fast.link_all(h, digests if isinstance(digests, bytes) else b"".join(digests))
        return (values[-32:] if values else h), values
    sha, recomputed, values = _sha256, h, bytearray()
    for leaf in digests:
        recomputed = sha(recomputed + leaf).digest()
        values += recomputed
    return recomputed, values


def _readers_for(params: dict[str, Any]) -> int:
    # PostgreSQL computes the leaves in its server processes: two readers keep
    # two backends busy while Python chains. SQLite's reading is mostly Python
    # (the GIL), so one reader ahead is all that overlaps.
    return 2 if params["kind"] == "postgres" else 1


def _verify_slice(params: dict[str, Any], lo: int, hi: int, page: int = PAGE,
                  readers: int | None = None) -> _Slice:
    """The Python verifier over (lo, hi], page by page (pages start at lo,
    lo + page, ...); with the C module built, its link step is C's."""
    readers = readers or _readers_for(params)
    fast = _fast()
    src = open_source(params)
    local, opened = threading.local(), []
    pool = ThreadPoolExecutor(readers)
    joined = fast is not None
    try:
        # The stored value before the slice; the slice before checks it.
        _, h = src.chain_at_or_before(lo)
        done = _Slice(0, h, 0, lo, None)
        spans = [(a, min(a + page, hi)) for a in range(lo, hi, page)]
        ahead = 2 * readers  # pages in flight: bounded, a log may be huge
        pending = deque(pool.submit(_page_task, local, opened, params, a, b, joined)
                        for a, b in spans[:ahead])
        for i, (cursor, page_hi) in enumerate(spans):
            got: _Page = pending.popleft().result()
            if i + ahead < len(spans):
                a, b = spans[i + ahead]
                pending.append(pool.submit(_page_task, local, opened, params, a, b, joined))
            recomputed, values = _link_page(done.head, got.digests, fast)
            if got.same_positions and values == got.chain:
                if got.n:
                    done = _join(done, _Slice(got.n, recomputed, got.first, got.last, None))
                continue
            decided = _pinpoint(src, cursor, page_hi, done.head, cursor)
            if decided.finding is not None and cursor == lo and not decided.records \
                    and decided.finding.kind in ("altered", "reordered"):
                decided.finding = _predecessor_at_fault(src, lo) or decided.finding
            # No finding: the reference check holds, the fast form raised a false alarm.
            done = _join(done, decided)
            if done.finding is not None:
                return done
        return done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for s in opened:
            s.close()
        src.close()


# -- the C fast path (queries/_fastchain.c, built by setup.py when it can be) --
def _fast(name: str = "queries._fastchain") -> Any:
    """The C module, or None: not built on this machine (no compiler or
    headers at install time), or LIANXIN_AUDIT_VERIFIER=python."""
    if os.environ.get("LIANXIN_AUDIT_VERIFIER", "").lower() == "python":
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _fast_pg() -> Any:
    """The PostgreSQL C verifier (queries/_fastchain_pg.c, linked to libpq),
    or None: a separate module, so a machine without libpq still has the
    SQLite one."""
    return _fast("queries._fastchain_pg")


# psycopg's own connect() arguments, not libpq connection keywords.
_NOT_LIBPQ = {"autocommit", "prepare_threshold", "row_factory", "cursor_factory", "context",
              "client_encoding"}


def _libpq_conninfo(conninfo: dict[str, Any]) -> list[tuple[str, str]]:
    """The connection settings the Python side uses (host, port, user,
    password, dbname, ...) as libpq keyword/value pairs for the C verifier;
    UTF-8, the encoding ``canonical`` hashes topics in."""
    pairs = [(k, str(v)) for k, v in conninfo.items() if v is not None and k not in _NOT_LIBPQ]
    return pairs + [("client_encoding", "UTF8"), ("application_name", "lianxin audit verify")]


def _verify_c(fast: Any, params: dict[str, Any], lo: int, hi: int, page: int,
              threads: int) -> _Slice:
    """The C verifier (SQLite: queries._fastchain; PostgreSQL:
    queries._fastchain_pg, each thread its own connection): (lo, hi] split at page boundaries between
    ``threads`` threads (the C loop releases the GIL), each from the stored
    chain value at its start, like worker processes but without spawning
    any. Where the C form stops, the Python verifier decides that page (the
    same page it would have read itself), so the verdict is its verdict."""
    bounds = _split(lo, hi, threads, page)
    src = open_source(params)
    try:
        starts = [src.chain_at_or_before(a)[1] for a in bounds[:-1]]
    finally:
        src.close()
    spans = list(zip(bounds, bounds[1:]))
    with ThreadPoolExecutor(len(spans)) as pool:
        runs = [pool.submit(_c_run, fast, params, a, b, h, page)
                for (a, b), h in zip(spans, starts)]
        done = _Slice(0, starts[0], 0, lo, None)
        for (a, b), h, run in zip(spans, starts, runs):
            done = _join(done, _settle(fast, params, a, b, h, page, run.result()))
            if done.finding is not None:
                for r in runs:
                    r.cancel()
                break
    return done


def _c_run(fast: Any, params: dict[str, Any], lo: int, hi: int, start: bytes,
           page: int) -> tuple[Any, ...] | None:
    try:
        if params["kind"] == "postgres":
            return fast.verify_postgres(_libpq_conninfo(params["conninfo"]), params["schema"],
                                        params["table"], lo, hi, start, page)
        return fast.verify_sqlite(params["path"], params["table"], lo, hi, start, page)
    except (OSError, ValueError):
        # not readable from C (no connection, a name or path its fixed buffers
        # refuse): the Python verifier reads the span
        return None


def _settle(fast: Any, params: dict[str, Any], lo: int, hi: int, start: bytes, page: int,
            result: tuple[Any, ...] | None) -> _Slice:
    """A C run over (lo, hi], with every page it stopped at decided by the
    Python verifier, and the C verifier going on after a false alarm."""
    done, cursor = _Slice(0, start, 0, lo, None), lo
    while True:
        if result is None:  # pages from cursor on: still lo + k * page
            return _join(done, _verify_slice(params, cursor, hi, page))
        records, first, last, head, stopped, page_start = result
        done = _join(done, _Slice(records, head, first, last, None))
        if not stopped:
            return done
        cursor = min(page_start + page, hi)
        done = _join(done, _verify_slice(params, page_start, cursor, page))
        if done.finding is not None or cursor >= hi:
            return done
        result = _c_run(fast, params, cursor, hi, done.head, page)


def _split(lo: int, hi: int, parts: int, page: int) -> list[int]:
    """Bounds of ``parts`` spans of (lo, hi] that start on page boundaries
    (lo + k * page): pages are then the same however the work is split, and
    so is the verdict."""
    pages = -(-(hi - lo) // page)
    parts = max(1, min(parts, pages))
    return [lo] + [lo + (pages * i // parts) * page for i in range(1, parts)] + [hi]


def _threads_for(lo: int, hi: int, page: int) -> int:
    # Threads cost nothing to start: one per core (at most 4) once there are
    # two pages to share.
    return min(os.cpu_count() or 1, 4) if hi - lo > page else 1


def verify(app_or_params: Any, start: int | None = None, stop: int | None = None, *,
           workers: int | None = None, page: int = PAGE) -> Verification:
    """Recompute the chain over positions ``start..stop`` (inclusive; default
    the whole log) and compare it with the stored chain. ``workers``: worker
    processes for the Python verifier, threads for the C one."""
    params = app_or_params if isinstance(app_or_params, dict) else source_params(app_or_params)
    t0 = time.perf_counter()
    src = open_source(params)
    try:
        ev_max, ch_max = src.bounds()
    finally:
        src.close()
    lo = max(0, (start or 1) - 1)
    hi = stop if stop is not None else max(ev_max, ch_max)
    if start is not None and start < 1:
        raise InvalidValue("--from must be a position of at least 1", field="from")
    if stop is not None and stop < (start or 1):
        raise InvalidValue("--to must not be before --from", field="to")
    notes = []
    if stop is not None and stop > max(ev_max, ch_max):
        notes.append(f"the log ends at position {max(ev_max, ch_max)}")
        hi = max(ev_max, ch_max)
    fast = _fast()
    whole = fast if params["kind"] == "sqlite" else _fast_pg()
    if whole is not None:
        n = workers if workers is not None else _threads_for(lo, hi, page)
        n = len(_split(lo, hi, n, page)) - 1
        total, verifier = _verify_c(whole, params, lo, hi, page, n), "c"
    else:
        n, total = _verify_python(params, lo, hi, page, workers)
        verifier = "python" if fast is None else "python, C links"
    seconds = time.perf_counter() - t0
    first, last = (total.first, total.last) if total.records else (0, 0)
    return Verification(total.finding is None, first, last, total.records, total.head.hex(),
                        total.finding, seconds, n, notes, verifier)


def _verify_python(params: dict[str, Any], lo: int, hi: int, page: int,
                   workers: int | None) -> tuple[int, _Slice]:
    """(worker processes used, outcome) of the Python verifier."""
    n = workers if workers is not None else (
        min(os.cpu_count() or 1, 4) if hi - lo >= PARALLEL_MIN else 1)
    bounds = _split(lo, hi, n, page)
    if len(bounds) == 2:
        return 1, _verify_slice(params, lo, hi, page)
    with ProcessPoolExecutor(len(bounds) - 1, mp_context=_spawn()) as pool:
        futures = [pool.submit(_verify_slice, params, a, b, page)
                   for a, b in zip(bounds, bounds[1:])]
        parts = [f.result() for f in futures]
    total = _Slice(0, parts[0].head, 0, lo, None)
    for part in parts:  # in position order: the first finding is the earliest
        total = _join(total, part)
    return len(parts), total


def _spawn() -> Any:
    import multiprocessing

    # Not fork: the parent may hold database pools and threads.
    return multiprocessing.get_context("spawn")


def head(app: Any) -> tuple[int, str]:
    """The stored chain head: (position, hex hash)."""
    src = chain_source(app)
    try:
        _, ch_max = src.bounds()
        pos, h = src.chain_at_or_before(ch_max)
        return pos, h.hex()
    finally:
        src.close()
