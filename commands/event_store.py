"""Event-store recorders that keep a hash chain over the notification log.

Regulators must be able to prove that the record was not altered, so every
notification gets a chain row, written in the same transaction as the event:

    leaf(p)  = sha256(canonical bytes of the record at position p)
    chain(p) = sha256(chain(previous position) || leaf(p)),  chain(0) = 32 zero bytes

The canonical bytes of a record are ASCII/UTF-8 text fields joined by the
unit separator 0x1F, then the stored payload bytes exactly as recorded:

    position 0x1F aggregate-id (32 lowercase hex) 0x1F version 0x1F topic
    0x1F occurred_at 0x1F payload

``occurred_at`` is the ISO text of the payload's source time, found by the
byte rule in ``occurred_at_text`` (the same rule is written in SQL below so
that verification can build the bytes inside the database).

Why a leaf digest instead of hashing ``chain || record`` directly: a partial
export (one call, one agent) can then prove its records belong to the chain
by carrying only the 32-byte leaf digests of the records it leaves out, never
their content (see queries/audit_bundle.py and docs/audit.md).

The chain table also keeps ``occurred_us`` (source time in microseconds since
the epoch, UTC) so time-range exports and point-in-time reads can find
records by when they happened without decoding payloads.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Sequence
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

GENESIS = bytes(32)
SEP = b"\x1f"
OCCURRED_MARK = b'"occurred_at":{"_type_":"datetime_iso","_data_":"'
# An ISO timestamp with microseconds and offset is 32 characters; the SQL
# form of the rule reads a fixed window and cuts at the closing quote.
OCCURRED_WINDOW = 40
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_sha256 = hashlib.sha256


def occurred_at_text(state: bytes) -> bytes:
    """The source time as stored: the text after the first occurrence of
    ``"occurred_at":{"_type_":"datetime_iso","_data_":"`` up to the next
    quote (at most 40 bytes), or empty when the payload has none. A byte rule,
    not a JSON parse, so that SQL can apply it identically and cheaply; a
    quote cannot occur unescaped inside a JSON string, so the marker can only
    match a real key."""
    i = state.find(OCCURRED_MARK)
    if i < 0:
        return b""
    window = state[i + len(OCCURRED_MARK): i + len(OCCURRED_MARK) + OCCURRED_WINDOW]
    q = window.find(b'"')
    return window if q < 0 else window[:q]


def occurred_us(text: bytes | str) -> int | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.decode() if isinstance(text, bytes) else text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def id_text(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)


def canonical(position: int, originator_id: UUID | str, version: int, topic: str,
              state: bytes, occurred: bytes | None = None) -> bytes:
    """``occurred``: the payload's ``occurred_at_text``, when the caller has it."""
    if occurred is None:
        occurred = occurred_at_text(state)
    return b"%d\x1f%s\x1f%d\x1f%s\x1f%s\x1f" % (
        position, id_text(originator_id).encode(), version, topic.encode(), occurred) + state


def leaf_of(canonical_bytes: bytes) -> bytes:
    return _sha256(canonical_bytes).digest()


def link(previous: bytes, leaf: bytes) -> bytes:
    return _sha256(previous + leaf).digest()


def chain_rows(previous: bytes, records: Sequence[tuple[int, Any, int, str, bytes]]
               ) -> tuple[list[tuple[int, int | None, bytes]], bytes]:
    """Chain rows (position, occurred_us, chain_hash) for records in position
    order, continuing from ``previous``; returns them and the new head."""
    rows = []
    for position, originator_id, version, topic, state in records:
        occ = occurred_at_text(state)
        c = canonical(position, originator_id, version, topic, state, occ)
        previous = _sha256(previous + _sha256(c).digest()).digest()
        rows.append((position, occurred_us(occ), previous))
    return rows, previous


# -- SQL forms of the canonical bytes (kept next to the Python form) --------
def sqlite_header_sql(table: str) -> str:
    """SELECT: rowid, the canonical bytes up to ``occurred_at`` (built by
    SQLite: the fixed fields) and the payload; the caller adds the source time
    with ``occurred_at_text`` (a byte search is cheaper in Python than in SQL)."""
    return (
        "SELECT rowid, rowid || char(31) || originator_id || char(31) || originator_version || "
        f"char(31) || topic || char(31), state FROM {table} "
        "WHERE rowid > ? AND rowid <= ? ORDER BY rowid"
    )


def postgres_leaf_sql(schema: str, table: str) -> Any:
    """SELECT: notification id and the leaf digest, computed by PostgreSQL
    (its sha256 runs in the server process, beside ours). The source time is
    cut out of the payload as bytes, as ``occurred_at_text`` does: the 40-byte
    window may end inside a multibyte character of the text that follows, so
    it is never decoded."""
    mark = OCCURRED_MARK.decode()
    n = len(mark)
    return SQL(
        "SELECT notification_id, sha256(convert_to("
        "notification_id::text || chr(31) || replace(originator_id::text, '-', '') || chr(31) || "
        "originator_version::text || chr(31) || topic || chr(31), 'UTF8') || "
        "CASE WHEN p = 0 THEN ''::bytea WHEN q = 0 THEN w ELSE substring(w from 1 for q - 1) END "
        "|| decode('1f', 'hex') || state) AS leaf "
        "FROM (SELECT *, position(decode('22', 'hex') in w) AS q FROM ("
        "SELECT notification_id, originator_id, originator_version, topic, state, p, "
        "substring(state from p + {n} for {w}) AS w FROM ("
        "SELECT notification_id, originator_id, originator_version, topic, state, "
        "position({mark}::bytea in state) AS p FROM {schema}.{table} "
        "WHERE notification_id > %s AND notification_id <= %s) AS a) AS b) AS e "
        "ORDER BY notification_id"
    ).format(n=n, w=OCCURRED_WINDOW, mark=mark, schema=Identifier(schema),
             table=Identifier(table))


# -- SQLite ------------------------------------------------------------------
class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """Appends chain rows in the transaction that inserts the events. SQLite
    has one writer at a time and the event INSERT takes the write lock before
    the chain head is read, so concurrent processes cannot fork the chain."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        # Set before super().__init__, which builds the CREATE statements.
        self.chain_table_name = f"{events_table_name}_chain"
        super().__init__(datastore, events_table_name)
        self._select_head = (f"SELECT position, chain_hash FROM {self.chain_table_name} "
                             "ORDER BY position DESC LIMIT 1")
        self._insert_chain = f"INSERT INTO {self.chain_table_name} VALUES (?,?,?)"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} ("
            "position INTEGER PRIMARY KEY, occurred_us INTEGER, chain_hash BLOB NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.chain_table_name}_occurred "
            f"ON {self.chain_table_name} (occurred_us)",
        ]

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        self._backfill(c)

    def _backfill(self, c: SQLiteCursor) -> None:
        """Chain the events of a store created before the chain existed. Only
        when the chain is empty: a chain that is merely behind is evidence."""
        c.execute(f"SELECT 1 FROM {self.chain_table_name} LIMIT 1")
        if c.fetchone() is not None:
            return
        head, last = GENESIS, 0
        while True:
            c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                      f"{self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT 5000",
                      (last,))
            page = [tuple(r) for r in c.fetchall()]
            if not page:
                return
            rows, head = chain_rows(head, page)
            c.executemany(self._insert_chain, rows)
            last = page[-1][0]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if not stored_events or not ids:
            return ids
        c.execute(self._select_head)
        row = c.fetchone()
        previous = row[1] if row is not None else GENESIS
        records = sorted(
            (pos, s.originator_id, s.originator_version, s.topic, s.state)
            for pos, s in zip(ids, stored_events)
        )
        rows, _ = chain_rows(previous, records)
        c.executemany(self._insert_chain, rows)
        return ids


# -- PostgreSQL --------------------------------------------------------------
class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The library's insert takes an EXCLUSIVE lock on the events table; the
    chain head is read after that lock in the same transaction, so writers in
    other processes line up behind it and the chain cannot fork. Always takes
    the client-side insert path (the library's optional database function
    commits on its own, and the chain rows must commit with the events)."""

    def __init__(self, datastore: PostgresDatastore, *,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = f"{events_table_name}_chain"
        self.check_identifier_length(self.chain_table_name)
        schema = Identifier(self.datastore.schema)
        chain = Identifier(self.chain_table_name)
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
            "position bigint PRIMARY KEY, occurred_us bigint, chain_hash bytea NOT NULL)"
        ).format(schema=schema, chain=chain))
        self.sql_create_statements.append(SQL(
            "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{chain} (occurred_us)"
        ).format(index=Identifier(f"{self.chain_table_name}_occurred"), schema=schema,
                 chain=chain))
        self._select_head = SQL(
            "SELECT position, chain_hash FROM {schema}.{chain} ORDER BY position DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        self._insert_chain = SQL(
            "INSERT INTO {schema}.{chain} (position, occurred_us, chain_hash) VALUES (%s, %s, %s)"
        ).format(schema=schema, chain=chain)

    def create_table(self) -> None:
        super().create_table()
        self._backfill()

    def _backfill(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("SELECT 1 FROM {schema}.{chain} LIMIT 1").format(
                schema=Identifier(self.datastore.schema),
                chain=Identifier(self.chain_table_name)))
            if curs.fetchone() is not None:
                return
            self._lock_table(curs)
            head, last = GENESIS, 0
            while True:
                curs.execute(SQL(
                    "SELECT notification_id, originator_id, originator_version, topic, state "
                    "FROM {schema}.{table} WHERE notification_id > %s "
                    "ORDER BY notification_id LIMIT 5000").format(
                        schema=Identifier(self.datastore.schema),
                        table=Identifier(self.events_table_name)), (last,))
                page = [(r["notification_id"], r["originator_id"], r["originator_version"],
                         r["topic"], bytes(r["state"])) for r in curs.fetchall()]
                if not page:
                    return
                rows, head = chain_rows(head, page)
                curs.executemany(self._insert_chain, rows)
                last = page[-1][0]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        exc: Exception | None = None
        ids: list[int] = []
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                with conn.cursor() as curs, conn.cursor() as head_curs:
                    try:
                        # Lock, notify, insert; the head query is pipelined
                        # behind them, so it runs after the lock is granted.
                        self._insert_stored_events(curs, stored_events, **kwargs)
                        head_curs.execute(self._select_head, prepare=True)
                        pipeline.sync()
                        ids = list(self._fetch_ids_after_insert_events(curs, stored_events))
                        row = head_curs.fetchone()
                    except Exception as e:  # noqa: BLE001 - re-raised outside the pipeline
                        exc = e
                    if exc is None:
                        # Anything raised from here rolls the events back too.
                        previous = bytes(row["chain_hash"]) if row else GENESIS
                        records = sorted(
                            (pos, s.originator_id, s.originator_version, s.topic, s.state)
                            for pos, s in zip(ids, stored_events)
                        )
                        rows, _ = chain_rows(previous, records)
                        head_curs.executemany(self._insert_chain, rows)
            if exc:
                raise exc
        return ids
