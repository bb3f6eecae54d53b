"""Faster insert paths for the application recorders, as bases that the
hash-chained recorders (commands/event_store.py) can inherit from.

They change how rows reach the database, never what is stored: the same
columns, the same payload bytes, the same positions, so the audit chain and
the warehouse (which read payloads byte-wise) see no difference.

* ``FastSQLiteApplicationRecorder``: one ``executemany`` for a batch of
  events instead of one ``execute`` per event, and a connection pool whose
  connections keep a real statement cache.
* ``FastPostgresApplicationRecorder``: the events go to the server as four
  parallel arrays in binary instead of an array of a composite type, which
  psycopg adapts row by row in Python; and a plain transaction instead of
  pipeline mode (see the class).
* Both also read the notification log column by column
  (``select_notification_columns``, from ``SQLiteNotificationColumns`` /
  ``PostgresNotificationColumns``): the library's query, bounds and order,
  as five lists, without a ``Notification`` or ``UUID`` per row. The
  warehouse loader reads through it (warehouse/decode.py).

How the chained recorders take them up:

* SQLite, one line in event_store.py:
  ``class ChainedSQLiteApplicationRecorder(FastSQLiteApplicationRecorder)``
  (its ``super()._insert_events`` then lands here).
* PostgreSQL: ``class ChainedPostgresApplicationRecorder(ChainInOnePlainTransaction,
  FastPostgresApplicationRecorder)`` with its own ``insert_events`` deleted
  (the mixin's replaces it and reuses ``chain_rows`` and the head query).
  Taking only ``FastPostgresApplicationRecorder`` as the base gives the
  binary arrays (the pipelined ``insert_events`` calls
  ``_insert_stored_events``) but not the cheaper transaction.

This module does not import event_store.py at import time, so those imports
make no cycle. Until then the ``FastChained*`` classes (built on first use,
see ``__getattr__`` at the bottom) compose the two, and they are what
lianxin/settings.py names; they stay right after the base change too.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from typing import Any, NamedTuple, Sequence
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.errors import UndefinedFunction
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier, Literal

log = logging.getLogger(__name__)


# The library passes cached_statements=True, which sqlite3 reads as a cache
# of ONE statement: BEGIN, the inserts, the chain head query and COMMIT then
# evict each other and are compiled again on every commit. A command path
# uses a few dozen distinct statements; 128 holds them all.
STATEMENT_CACHE = 128

# Past this rowid SQLite stops using max(rowid)+1 and picks free rowids at
# random, so positions can no longer be derived from the last one.
MAX_ROWID = 2**63 - 1


# -- SQLite ------------------------------------------------------------------
class CachingSQLiteConnectionPool(SQLiteConnectionPool):
    """The library's pool, with a statement cache and the durability settings
    stated rather than inherited from however SQLite was compiled."""

    def _create_connection(self) -> SQLiteConnection:
        try:
            c = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # The library issues BEGIN itself.
                cached_statements=STATEMENT_CACHE,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode:
            if not self.is_journal_mode_wal:
                mode = c.execute("PRAGMA journal_mode;").fetchone()[0]
                if mode.lower() != "wal":
                    c.execute("PRAGMA journal_mode=WAL;")
                    self.journal_mode_was_changed_to_wal = True
                self.is_journal_mode_wal = True
            # An acknowledged command must survive a power cut: in WAL mode
            # only FULL syncs the log at every commit (NORMAL would only at
            # checkpoints). It is SQLite's default, but distributions may
            # compile another one in.
            c.execute("PRAGMA synchronous=FULL;")
        c.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=c, max_age=self.max_age)


def use_statement_cache(datastore: SQLiteDatastore) -> None:
    """Make the datastore's pool open cached connections from now on, and
    drop the idle ones it already opened without a cache. Connections in use
    keep working and are replaced as the pool recycles them."""
    pool = datastore.pool
    if isinstance(pool, CachingSQLiteConnectionPool):
        return
    if type(pool) is not SQLiteConnectionPool:
        return  # someone else's pool: leave it alone
    pool.__class__ = CachingSQLiteConnectionPool
    idle = getattr(pool, "_pool", None)
    if idle is not None and not pool.is_sqlite_memory_mode:
        # An in-memory database lives only as long as a connection to it.
        while idle:
            idle.popleft().close()


# -- the notification log, column by column ------------------------------------
class NotificationColumns(NamedTuple):
    """A page of the notification log as five parallel columns: what
    ``select_notifications`` returns, without a ``Notification`` and a
    ``UUID`` per row. ``originator_ids`` is text: for stores with
    UUID ids the 32 lowercase hex digits (``UUID.hex``), otherwise the stored
    text; ``states`` are the stored bytes (still enciphered / compressed if
    the application does that)."""

    positions: Sequence[int]
    originator_ids: Sequence[str]
    versions: Sequence[int]
    topics: Sequence[str]
    states: Sequence[bytes]


NO_COLUMNS = NotificationColumns((), (), (), (), ())

_LOWER_HEX = re.compile(r"[0-9a-f]*")


def hex_ids(ids: Sequence[str]) -> Sequence[str]:
    """``UUID(i).hex`` for each stored id, as the library's select gives (it
    builds a UUID per row, and the warehouse takes its ``hex``). Every
    recorder here and the library's own store ``UUID.hex``, so that is
    checked for all ids at once in C; any other spelling is converted (and an
    id that is no UUID raises, as in the library)."""
    try:
        if set(map(len, ids)) <= {32} and _LOWER_HEX.fullmatch("".join(ids)):
            return ids
    except TypeError:  # not text: let UUID() say what is wrong with it
        pass
    return [UUID(i).hex for i in ids]


# Rows are taken from the cursor in chunks smaller than the garbage
# collector's first threshold (700 allocations) and moved into the columns
# at once, so each row tuple is freed young. Fetched all at once, 100k
# tracked tuples live into the older generations and set off collections
# of the whole heap: on 509k events (both stores) the read took 1.6-1.8x
# as long as in chunks of 500.
FETCH_CHUNK = 500


def fetch_columns(cursor: Any) -> NotificationColumns:
    """The rest of a cursor over (position, id, version, topic, state) rows."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    while rows := cursor.fetchmany(FETCH_CHUNK):
        for column, part in zip(columns, zip(*rows)):
            column.extend(part)
    return NotificationColumns(*columns) if columns[0] else NO_COLUMNS


class SQLiteNotificationColumns(SQLiteApplicationRecorder):
    """``select_notification_columns`` for SQLite: the library's query (same
    bounds, same order, same limit, through a reader connection of the
    datastore's pool with its reader/writer interlocking, in a transaction
    rolled back afterwards), fetched as plain tuples (not ``sqlite3.Row``)
    and transposed."""

    def select_notification_columns(self, start: int | None, limit: int,
                                    stop: int | None = None, topics: Sequence[str] = (), *,
                                    inclusive_of_start: bool = True) -> NotificationColumns:
        params: list[int | str] = []
        where = []
        if start is not None:
            where.append("rowid>=?" if inclusive_of_start else "rowid>?")
            params.append(start)
        if stop is not None:
            where.append("rowid<=?")
            params.append(stop)
        if topics:
            where.append(f"topic IN ({','.join('?' * len(topics))})")
            params += list(topics)
        params.append(limit)
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY rowid LIMIT ?")
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # tuples, not sqlite3.Row
            cursor.execute(statement, params)
            columns = fetch_columns(cursor)
        if columns.positions and self.datastore.originator_id_type == "uuid":
            columns = columns._replace(originator_ids=hex_ids(columns.originator_ids))
        return columns


class FastSQLiteApplicationRecorder(SQLiteNotificationColumns):
    """Inserts a batch with one ``executemany`` and derives the positions.

    Why the derived positions are the real ones: the events table has an
    implicit rowid (no AUTOINCREMENT), and for a row inserted without a rowid
    SQLite uses max(rowid)+1 as long as that is below 2**63-1. The first
    INSERT takes the database's write lock and the transaction keeps it until
    COMMIT, so no other connection or process can insert in between: our N
    rows get max+1 .. max+N, the last of which is ``last_insert_rowid()``.
    Checked, not assumed: if the last rowid is not the table's maximum, or is
    at the random-rowid limit, the positions are read back by primary key.
    """

    def __init__(self, datastore: SQLiteDatastore,
                 events_table_name: str = "stored_events") -> None:
        use_statement_cache(datastore)
        super().__init__(datastore, events_table_name)
        self._select_last_rowid = (
            f"SELECT last_insert_rowid(), (SELECT MAX(rowid) FROM {self.events_table_name})"
        )
        self._select_rowid_by_key = (
            f"SELECT rowid FROM {self.events_table_name} "
            "WHERE originator_id=? AND originator_version=?"
        )

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **_: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        params = [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state)
            for s in stored_events
        ]
        c.executemany(self.insert_events_statement, params)
        c.execute(self._select_last_rowid)
        last, top = c.fetchone()
        n = len(params)
        if last == top and last < MAX_ROWID and last >= n:
            return list(range(last - n + 1, last + 1))
        return self._rowids_by_key(c, params)

    def _rowids_by_key(self, c: SQLiteCursor, params: Sequence[tuple[Any, ...]]) -> list[int]:
        ids = []
        for originator_id, version, _topic, _state in params:
            c.execute(self._select_rowid_by_key, (originator_id, version))
            ids.append(c.fetchone()[0])
        return ids


# -- PostgreSQL --------------------------------------------------------------
class PostgresNotificationColumns(PostgresApplicationRecorder):
    """``select_notification_columns`` for PostgreSQL: the library's query
    (same bounds, order and limit, on a pooled connection in autocommit, as
    its select), with the UUID turned into 32 hex digits by the server and
    the rows fetched as tuples in binary (no dict, no UUID per row)."""

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notification_columns(self, start: int | None, limit: int,
                                    stop: int | None = None, topics: Sequence[str] = (), *,
                                    inclusive_of_start: bool = True) -> NotificationColumns:
        params: list[Any] = []
        where = []
        if start is not None:
            where.append(SQL("notification_id>=%s" if inclusive_of_start
                             else "notification_id>%s"))
            params.append(start)
        if stop is not None:
            where.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            where.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        params.append(limit)
        uuid_ids = self.datastore.originator_id_type == "uuid"
        statement = SQL(
            "SELECT notification_id, {oid}, originator_version, topic, state "
            "FROM {schema}.{table}{where} ORDER BY notification_id LIMIT %s").format(
                oid=SQL("replace(originator_id::text, '-', '')" if uuid_ids
                        else "originator_id"),
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name),
                where=SQL(" WHERE ") + SQL(" AND ").join(where) if where else SQL(""))
        with self.datastore.get_connection() as conn, \
                conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params, prepare=True, binary=True)
            return fetch_columns(curs)


class FastPostgresApplicationRecorder(PostgresNotificationColumns):
    """Sends a batch as four parallel arrays in binary, outside pipeline mode.

    psycopg adapts an array of the library's composite type field by field in
    Python (~27 µs of client CPU per event); four typed arrays in binary cost
    ~6.5 µs. The rows come out of ``unnest`` in array order, so notification
    ids (and RETURNING rows) follow ``stored_events`` exactly as with the
    library's statement.

    Pipeline mode is avoided on purpose: while psycopg waits for a pipeline's
    results it polls a socket that is always writable, so a single-event
    commit burnt ~0.6 ms of client CPU (on a 2-core machine, CPU the server's
    own work needs). A plain transaction with the lock, the NOTIFY (and for
    the chain, the head query) sent as one simple-protocol string has as few
    round trips and costs less.
    """

    def __init__(self, datastore: PostgresDatastore, *,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        id_type = "uuid" if self.datastore.originator_id_type == "uuid" else "text"
        self._insert_arrays = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=schema, table=Identifier(self.events_table_name), id_type=SQL(id_type))
        self._ids_are_uuids = id_type == "uuid"
        # The same statements as the library's _lock_table and _notify_channel.
        self._lock_and_notify = SQL("; ").join(
            [*self.lock_table_statements,
             SQL("NOTIFY {0}").format(Identifier(self.channel_name))])

    def _originator_ids(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        """The events' ids as the table's column type takes them."""
        if self._ids_are_uuids:
            return [s.originator_id if isinstance(s.originator_id, UUID)
                    else UUID(s.originator_id) for s in stored_events]
        return [str(s.originator_id) for s in stored_events]

    def _insert_rows(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        curs.execute(
            self._insert_arrays,
            (self._originator_ids(stored_events),
             [s.originator_version for s in stored_events],
             [s.topic for s in stored_events],
             [s.state for s in stored_events]),
            prepare=True,
        )

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                              **_: Any) -> None:
        # Kept pipeline-safe (one statement per execute) for subclasses that
        # still call it from the library's pipelined insert_events.
        self._lock_table(curs)
        self._notify_channel(curs)
        self._insert_rows(curs, stored_events)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        # Never the library's database function (POSTGRES_ENABLE_DB_FUNCTIONS):
        # it takes the composite array.
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            curs.execute(self._lock_and_notify)
            self._insert_rows(curs, stored_events)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)


# -- the chained recorders on the fast paths ---------------------------------
class ChainInOnePlainTransaction:
    """For a PostgreSQL chained recorder (it needs ``_select_head``,
    ``chain_table_name`` and the binary-array insert of
    ``FastPostgresApplicationRecorder``): BEGIN; lock + NOTIFY + chain head
    (one string); the events; the chain rows (one array INSERT); COMMIT.
    Five round trips, no pipeline. The chain itself (rows, hashes, head query,
    table) stays the chained recorder's: ``chain_rows`` and ``GENESIS`` come
    from commands/event_store.py, only the choreography is here. The head is
    read after the EXCLUSIVE lock is granted, in the same transaction, so
    writers in other processes cannot fork the chain."""

    _one_transaction: tuple[Any, Any, bytes, Any] | None = None

    def _statements(self) -> tuple[Any, Any, bytes, Any]:
        """Built on first use, not in ``__init__``: as a base of the chained
        recorder this class initialises before the chain's attributes exist."""
        if self._one_transaction is None:
            # Imported here so that event_store.py can import this module
            # for the Fast* bases without an import cycle.
            from commands.event_store import GENESIS, chain_rows

            me: Any = self
            self._one_transaction = (
                SQL("; ").join([me._lock_and_notify, me._select_head]),
                SQL("INSERT INTO {schema}.{chain} (position, occurred_us, chain_hash) "
                    "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bytea[])").format(
                        schema=Identifier(me.datastore.schema),
                        chain=Identifier(me.chain_table_name)),
                GENESIS, chain_rows)
        return self._one_transaction

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        me: Any = self
        lock_notify_head, insert_chain, genesis, chain_rows = self._statements()
        with me.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            curs.execute(lock_notify_head)
            while curs.description is None and curs.nextset():
                pass  # the SET, LOCK and NOTIFY results come first
            row = curs.fetchone()
            previous = bytes(row["chain_hash"]) if row else genesis
            me._insert_rows(curs, stored_events)
            ids = me._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            records = sorted(
                (pos, s.originator_id, s.originator_version, s.topic, s.state)
                for pos, s in zip(ids, stored_events)
            )
            rows, _ = chain_rows(previous, records)
            curs.execute(insert_chain,
                         ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
                         prepare=True)
        return ids


class ChainInOneCall(ChainInOnePlainTransaction):
    """For a PostgreSQL chained recorder: a small batch (a command arriving
    alone) is appended by one call of a database function, in autocommit:
    one round trip instead of the plain transaction's five. On this
    machine's loopback a round trip with its server work costs about as much
    as the durable commit itself, so a lone command paid for six commits.

    The function does what ``ChainInOnePlainTransaction`` does, in the same
    order and under the same EXCLUSIVE lock: lock, NOTIFY, read the chain
    head, insert the events, chain them in position order, insert the chain
    rows. The leaf's canonical bytes are built by the server with the same
    rule as ``commands.event_store.canonical`` (and as ``postgres_leaf_sql``,
    which verification uses); the source time's text and microseconds come
    from the client, which has already found them in the payload, so the
    byte rule and the ISO parse are written once, in Python.

    Large batches keep the plain transaction: the client hashes on one core
    while the server inserts on the other, where a plpgsql loop would put
    both on the server's core."""

    ONE_CALL_MAX_EVENTS = 16

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Imported here, not at the top: event_store.py imports this module.
        from commands.event_store import occurred_at_text, occurred_us

        self._source_time = (occurred_at_text, occurred_us)
        me: Any = self
        schema = Identifier(me.datastore.schema)
        self._fn = Identifier(f"{me.events_table_name}_append_chained")
        me.check_identifier_length(f"{me.events_table_name}_append_chained")
        uuid_ids = me.datastore.originator_id_type == "uuid"
        id_text = SQL("replace(p_ids[i]::text, '-', '')") if uuid_ids else SQL("p_ids[i]")
        # Two processes starting at once would race on CREATE OR REPLACE
        # ("tuple concurrently updated"), the library's own function included:
        # the create-table transaction takes an advisory lock before any of its
        # statements, released at its commit.
        me.sql_create_statements.insert(0, SQL(
            "SELECT pg_advisory_xact_lock(hashtext({name}))").format(
                name=Literal(f"{me.datastore.schema}.{me.events_table_name}_append_chained")))
        me.sql_create_statements.append(SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{fn}(p_lock_timeout text, "
            "p_ids {id_type}[], p_versions bigint[], p_topics text[], p_states bytea[], "
            "p_occurred bytea[], p_occurred_us bigint[]) "
            "RETURNS bigint[] LANGUAGE plpgsql AS $BODY$ "
            "DECLARE prev bytea; pos bigint; positions bigint[] := '{{}}'; i int; "
            "BEGIN "
            # The caller's lock timeout (as SET LOCAL in the plain path), so
            # that each process keeps its own setting.
            "  PERFORM set_config('lock_timeout', p_lock_timeout, true); "
            "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "  NOTIFY {channel}; "
            "  SELECT c.chain_hash INTO prev FROM {schema}.{chain} AS c "
            "    ORDER BY c.position DESC LIMIT 1; "
            "  IF prev IS NULL THEN prev := {genesis}; END IF; "
            # Row by row under the lock: positions ascend in array order, so
            # the chain follows the array (what chain_rows' sort gives).
            "  FOR i IN 1 .. array_length(p_ids, 1) LOOP "
            "    INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "      VALUES (p_ids[i], p_versions[i], p_topics[i], p_states[i]) "
            "      RETURNING notification_id INTO pos; "
            "    positions := positions || pos; "
            "  END LOOP; "
            "  FOR i IN 1 .. array_length(p_ids, 1) LOOP "
            "    prev := sha256(prev || sha256(convert_to(positions[i]::text || chr(31) || "
            "      {id_text} || chr(31) || p_versions[i]::text || chr(31) || "
            "      p_topics[i] || chr(31), 'UTF8') || p_occurred[i] || decode('1f', 'hex') || "
            "      p_states[i])); "
            "    INSERT INTO {schema}.{chain} (position, occurred_us, chain_hash) "
            "      VALUES (positions[i], p_occurred_us[i], prev); "
            "  END LOOP; "
            "  RETURN positions; "
            "END $BODY$").format(
                schema=schema, fn=self._fn, id_type=SQL("uuid" if uuid_ids else "text"),
                table=Identifier(me.events_table_name), channel=Identifier(me.channel_name),
                chain=Identifier(me.chain_table_name), genesis=SQL("decode(repeat('00', 32), 'hex')"),
                id_text=id_text))
        self._lock_timeout = f"{int(me.datastore.lock_timeout)}s"
        self._call = SQL("SELECT {schema}.{fn}(%b::text, %b::{id_type}[], %b::bigint[], %b::text[], "
                         "%b::bytea[], %b::bytea[], %b::bigint[]) AS ids").format(
            schema=schema, fn=self._fn, id_type=SQL("uuid" if uuid_ids else "text"))
        # psycopg finds an array's element type by looking at its items, six
        # arrays per call (~35 µs of client CPU here, against ~7 for the same
        # values as scalars). Most commands write one or two events: for
        # those, SQL wrappers take scalars and build the arrays in the server.
        self._call_scalars: dict[int, Any] = {}
        for k in range(1, self.SCALAR_CALL_MAX_EVENTS + 1):
            me.check_identifier_length(f"{me.events_table_name}_append_chained_{k}")
            wrapper = Identifier(f"{me.events_table_name}_append_chained_{k}")
            params = SQL(", ").join([SQL("p_lock_timeout text"), *(
                SQL("p{i}_{name} {typ}").format(i=SQL(str(i)), name=SQL(name), typ=SQL(typ))
                for i in range(k) for name, typ in self._SCALAR_PARAMS(uuid_ids))])
            arrays = SQL(", ").join(
                SQL("ARRAY[{items}]").format(items=SQL(", ").join(
                    SQL("p{i}_{name}").format(i=SQL(str(i)), name=SQL(name)) for i in range(k)))
                for name, _ in self._SCALAR_PARAMS(uuid_ids))
            me.sql_create_statements.append(SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{wrapper}({params}) RETURNS bigint[] "
                "LANGUAGE sql AS $BODY$ SELECT {schema}.{fn}(p_lock_timeout, {arrays}) "
                "$BODY$").format(
                    schema=schema, wrapper=wrapper, params=params, fn=self._fn, arrays=arrays))
            self._call_scalars[k] = SQL("SELECT {schema}.{wrapper}({args}) AS ids").format(
                schema=schema, wrapper=wrapper, args=SQL(", ").join([SQL("%b::text"), *(
                    SQL("%b::{typ}").format(typ=SQL(typ))
                    for _ in range(k) for _, typ in self._SCALAR_PARAMS(uuid_ids))]))

    SCALAR_CALL_MAX_EVENTS = 2

    @staticmethod
    def _SCALAR_PARAMS(uuid_ids: bool) -> tuple[tuple[str, str], ...]:
        return (("id", "uuid" if uuid_ids else "text"), ("version", "bigint"),
                ("topic", "text"), ("state", "bytea"), ("occurred", "bytea"),
                ("occurred_us", "bigint"))

    # False once the functions turned out to be missing (a database whose
    # tables are created by someone else, CREATE_TABLE=false, from before them).
    _functions_present = True

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        # Not itself retried: each path retries on its own (retrying here too
        # would run the inner retries ten times over).
        if (not stored_events or len(stored_events) > self.ONE_CALL_MAX_EVENTS
                or not self._functions_present):
            return super().insert_events(stored_events, **kwargs)
        try:
            return self._insert_in_one_call(stored_events)
        except ProgrammingError as exc:
            if not isinstance(exc.__cause__, UndefinedFunction):
                raise
            log.warning("%s: the append functions are missing from the database (tables "
                        "not created by this release?); lone commands take the plain "
                        "transaction, five round trips", exc)
            self._functions_present = False
            return super().insert_events(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_call(self, stored_events: Sequence[StoredEvent]) -> Sequence[int]:
        me: Any = self
        occurred_at_text, occurred_us = self._source_time
        ids = me._originator_ids(stored_events)
        occurred = [occurred_at_text(s.state) for s in stored_events]
        scalars = self._call_scalars.get(len(stored_events))
        if scalars is not None:
            query, params = scalars, [self._lock_timeout, *(
                v for s, oid, occ in zip(stored_events, ids, occurred)
                for v in (oid, s.originator_version, s.topic, s.state, occ, occurred_us(occ)))]
        else:
            query, params = self._call, [
                self._lock_timeout, ids, [s.originator_version for s in stored_events],
                [s.topic for s in stored_events], [s.state for s in stored_events],
                occurred, [occurred_us(o) for o in occurred]]
        with me.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params, prepare=True)
            row = curs.fetchone()
        positions = row["ids"] if row else None
        if not positions or len(positions) != len(stored_events):
            raise ProgrammingError("the append function did not return every position")
        return positions


_composing = threading.Lock()
_COMPOSED = {
    # name: (bases from commands.event_store, bases from here)
    "FastChainedSQLiteApplicationRecorder": (
        ("ChainedSQLiteApplicationRecorder",), (FastSQLiteApplicationRecorder,), ()),
    "FastChainedPostgresApplicationRecorder": (
        ("ChainedPostgresApplicationRecorder",), (FastPostgresApplicationRecorder,),
        (ChainInOneCall,)),
}


def __getattr__(name: str) -> type:
    """``FastChainedSQLiteApplicationRecorder`` and
    ``FastChainedPostgresApplicationRecorder``: the audit chain of
    commands/event_store.py over the fast paths (MRO: [choreography,] chain,
    fast, library), built on first use so that importing this module never
    imports event_store.py. They are what lianxin/settings.py names, and stay
    right after event_store.py takes the Fast* classes as bases."""
    if name not in _COMPOSED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from commands import event_store

    with _composing:  # one class per name, even when two threads ask at once
        if name not in globals():
            chained, fast, first = _COMPOSED[name]
            bases = (*first, *(getattr(event_store, c) for c in chained), *fast)
            globals()[name] = type(name, bases, {"__module__": __name__, "__qualname__": name})
    return globals()[name]
