"""Verifying the hash chain of the notification log (``lianxin audit verify``).

The fast path recomputes the chain page by page from the events alone and
compares it with the stored chain only at each page's last position (and the
number of chain rows in the page): reading the chain row by row would double
the work. A page that disagrees is re-read record by record to name the first
position and what happened there:

* ``altered``   the record (or its chain entry) no longer hashes to its chain value;
* ``reordered`` the record hashes correctly at another position of the page;
* ``deleted``   a chain entry has no record, or positions are missing before a break;
* ``inserted``  a record has no chain entry (written outside the application).

Each record is checked against the stored chain value of its predecessor, so
the range can be split between worker processes (``workers``) that verify
their slices independently: if every slice holds, the stored chain is exactly
the chain recomputed from the first record.

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

    def chain_count_and_last(self, lo: int, hi: int) -> tuple[int, int | None, bytes | None]:
        raise NotImplementedError

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

    def chain_count_and_last(self, lo: int, hi: int) -> tuple[int, int | None, bytes | None]:
        n = self.db.execute(f"SELECT count(*) FROM {self.chain} WHERE position > ? AND "
                            "position <= ?", (lo, hi)).fetchone()[0]
        row = self.db.execute(f"SELECT position, chain_hash FROM {self.chain} WHERE position > ? "
                              "AND position <= ? ORDER BY position DESC LIMIT 1",
                              (lo, hi)).fetchone()
        return n, (row[0] if row else None), (bytes(row[1]) if row else None)

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

    def chain_count_and_last(self, lo: int, hi: int) -> tuple[int, int | None, bytes | None]:
        n = self._rows(self._q("SELECT count(*) FROM {schema}.{t} WHERE position > %s AND "
                               "position <= %s", t=self.chain), (lo, hi))[0][0]
        rows = self._rows(self._q("SELECT position, chain_hash FROM {schema}.{t} WHERE position "
                                  "> %s AND position <= %s ORDER BY position DESC LIMIT 1",
                                  t=self.chain), (lo, hi))
        return n, (rows[0][0] if rows else None), (bytes(rows[0][1]) if rows else None)

    def leaves(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        return [(p, bytes(d)) for p, d in self._rows(self._leaf_sql, (lo, hi))]

    def leaf_digests(self, lo: int, hi: int) -> tuple[int, int, list[bytes]]:
        rows = self._rows(self._leaf_sql, (lo, hi))
        if not rows:
            return 0, 0, []
        return rows[0][0], rows[-1][0], list(map(_second, rows))

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
    workers: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["events_per_s"] = round(self.events_per_s)
        return out


@dataclass
class _Slice:
    records: int
    head: bytes
    first: int
    last: int
    finding: Finding | None


def _pinpoint(src: ChainSource, lo: int, hi: int, start: bytes, start_pos: int
              ) -> tuple[Finding | None, int, int, bytes]:
    """Name the first bad position in (lo, hi], reading record by record with
    the reference form of the chain; also returns how many records before it
    held, the last one and its hash. No finding: every record of the page
    holds by the reference form (the fast form disagreed, the reference rules)."""
    finding = _first_bad(src, lo, hi, start, start_pos)
    upto = finding.position - 1 if finding is not None else hi
    records = src.records(lo, upto) if upto > lo else []
    chain = dict(src.chain_between(lo, upto))
    good = [r[0] for r in records if r[0] in chain]
    if not good:
        return finding, 0, lo, start
    return finding, len(good), good[-1], chain[good[-1]]


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


def _page_task(local: threading.local, opened: list[ChainSource], params: dict[str, Any],
               lo: int, hi: int) -> tuple[list[bytes], int, int, int, int | None, bytes | None]:
    """One page as the verifier needs it: the leaf digests in position order,
    the first and last event positions, and the chain rows' count and last
    entry. Runs in a reader thread with its own connection, so that the next
    pages are read (and, on PostgreSQL, hashed by the server) while this
    thread's caller chains the current one."""
    src = getattr(local, "src", None)
    if src is None:
        src = local.src = open_source(params)
        opened.append(src)
    first, last, digests = src.leaf_digests(lo, hi)
    n, last_chain_pos, last_chain = src.chain_count_and_last(lo, hi)
    return digests, first, last, n, last_chain_pos, last_chain


def _readers_for(params: dict[str, Any]) -> int:
    # PostgreSQL computes the leaves in its server processes: two readers keep
    # two backends busy while Python chains. SQLite's reading is mostly Python
    # (the GIL), so one reader ahead is all that overlaps.
    return 2 if params["kind"] == "postgres" else 1


def _verify_slice(params: dict[str, Any], lo: int, hi: int, page: int = PAGE,
                  readers: int | None = None) -> _Slice:
    readers = readers or _readers_for(params)
    src = open_source(params)
    local, opened = threading.local(), []
    pool = ThreadPoolExecutor(readers)
    try:
        # The stored value before the slice; the slice before checks it.
        _, h = src.chain_at_or_before(lo)
        spans = [(a, min(a + page, hi)) for a in range(lo, hi, page)]
        ahead = 2 * readers  # pages in flight: bounded, a log may be huge
        pending = deque(pool.submit(_page_task, local, opened, params, a, b)
                        for a, b in spans[:ahead])
        count, first, last = 0, 0, lo
        sha = _sha256
        for i, (cursor, page_hi) in enumerate(spans):
            digests, first_pos, last_pos, n, last_chain_pos, last_chain = pending.popleft().result()
            if i + ahead < len(spans):
                a, b = spans[i + ahead]
                pending.append(pool.submit(_page_task, local, opened, params, a, b))
            recomputed = h
            for leaf in digests:
                recomputed = sha(recomputed + leaf).digest()
            if n != len(digests) or (digests and (last_chain_pos != last_pos
                                                  or last_chain != recomputed)):
                finding, good, good_last, good_head = _pinpoint(src, cursor, page_hi, h, cursor)
                if finding is None:  # the reference check holds: a false alarm
                    first, last, h, count = first or cursor + 1, good_last, good_head, count + good
                    continue
                if good:
                    first, last, h = first or cursor + 1, good_last, good_head
                return _Slice(count + good, h, first, last, finding)
            if digests:
                first = first or first_pos
                last = last_pos
                count += len(digests)
                h = recomputed
        return _Slice(count, h, first, last, None)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for s in opened:
            s.close()
        src.close()


def verify(app_or_params: Any, start: int | None = None, stop: int | None = None, *,
           workers: int | None = None, page: int = PAGE) -> Verification:
    """Recompute the chain over positions ``start..stop`` (inclusive; default
    the whole log) and compare it with the stored chain."""
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
    n_workers = workers if workers is not None else (
        min(os.cpu_count() or 1, 4) if hi - lo >= PARALLEL_MIN else 1)
    n_workers = max(1, min(n_workers, max(1, (hi - lo) // page)))
    if n_workers == 1:
        slices = [_verify_slice(params, lo, hi, page)]
    else:
        bounds = [lo + (hi - lo) * i // n_workers for i in range(n_workers + 1)]
        with ProcessPoolExecutor(n_workers, mp_context=_spawn()) as pool:
            futures = [pool.submit(_verify_slice, params, a, b, page)
                       for a, b in zip(bounds, bounds[1:])]
            slices = [f.result() for f in futures]
    seconds = time.perf_counter() - t0
    verified = 0
    for s in slices:  # in position order: the first finding is the earliest
        verified += s.records
        if s.finding is not None:
            return Verification(False, lo + 1 if s.last > lo else 0, s.last if s.last > lo else 0,
                                verified, s.head.hex(), s.finding, seconds, n_workers, notes)
    first = min((s.first for s in slices if s.first), default=0)
    last = max((s.last for s in slices), default=0)
    return Verification(True, first, last, verified, slices[-1].head.hex(), None, seconds,
                        n_workers, notes)


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
