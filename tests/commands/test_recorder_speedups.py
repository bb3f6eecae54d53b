"""The fast insert paths store exactly what the library's recorders store (same
rows, same payload bytes, same positions, same audit chain), report the real
positions even with writers racing, and keep SQLite durable."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from commands import recorder_speedups as rs
from commands.event_store import (
    GENESIS,
    ChainedPostgresApplicationRecorder,
    ChainedSQLiteApplicationRecorder,
    chain_rows,
)
from tests.conftest import PG_HOST, PG_PORT, make_settings


def batch(tag: str, n: int, first_version: int = 1) -> list[StoredEvent]:
    """n events over a few aggregates, with payloads that carry a source time
    and non-ASCII text, so the chain's byte rule and the bytes both matter."""
    out = []
    for i in range(n):
        oid = uuid5(NAMESPACE_URL, f"{tag}/{i % 3}")
        state = (b'{"occurred_at":{"_type_":"datetime_iso","_data_":"2026-11-23T08:%02d:00+08:00"}'
                 b',"summary":"\xe6\x8a\xa5\xe4\xbf\xae %d"}' % (i % 60, i))
        if i % 5 == 4:  # some events carry no source time: empty text, no micros
            state = b'{"summary":"\xe6\x8a\xa5 %d"}' % i
        out.append(StoredEvent(originator_id=oid, originator_version=first_version + i // 3,
                               topic="domain.call:Call.Offered", state=state))
    return out


def sqlite_recorder(path: Path, cls: type) -> Any:
    recorder = cls(SQLiteDatastore(db_name=str(path), lock_timeout=30))
    recorder.create_table()
    return recorder


def sqlite_rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    with sqlite3.connect(path) as db:
        events = db.execute("SELECT rowid, originator_id, originator_version, topic, state "
                            "FROM stored_events ORDER BY rowid").fetchall()
        chain = db.execute("SELECT * FROM stored_events_chain ORDER BY position").fetchall()
    return events, chain


def assert_chain_recomputes(events: list[tuple], chain: list[tuple]) -> None:
    """The stored chain is the one the audit rule gives for the stored rows."""
    records = [(pos, UUID(str(oid)) if not isinstance(oid, UUID) else oid, v, t, bytes(s))
               for pos, oid, v, t, s in events]
    expected, _ = chain_rows(GENESIS, records)
    assert [tuple(r) for r in chain] == [tuple(r) for r in expected]


def race(recorders: list[Any], batches: int = 25, size: int = 6) -> dict[tuple[str, int], int]:
    """Each recorder inserts batches from its own thread; returns the
    positions each insert reported, by (aggregate id hex, version)."""
    reported: dict[tuple[str, int], int] = {}
    lock = threading.Lock()

    def writer(w: int) -> None:
        for k in range(batches):
            events = batch(f"w{w}-{k}", size)
            ids = recorders[w].insert_events(events)
            with lock:
                for e, i in zip(events, ids):
                    reported[(e.originator_id.hex, e.originator_version)] = i

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(len(recorders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reported


# -- SQLite ------------------------------------------------------------------
def test_sqlite_fast_path_stores_the_same_rows_positions_and_chain(tmp_path: Path) -> None:
    plain = sqlite_recorder(tmp_path / "plain.sqlite", ChainedSQLiteApplicationRecorder)
    fast = sqlite_recorder(tmp_path / "fast.sqlite", rs.FastChainedSQLiteApplicationRecorder)
    for k, n in enumerate([1, 7, 30, 2]):
        events = batch(f"b{k}", n)
        assert fast.insert_events(events) == plain.insert_events(events)
    plain_rows, fast_rows = sqlite_rows(tmp_path / "plain.sqlite"), sqlite_rows(tmp_path / "fast.sqlite")
    assert fast_rows == plain_rows
    assert len(fast_rows[0]) == 40 and len(fast_rows[1]) == 40


def test_sqlite_duplicate_version_rolls_the_whole_batch_back(tmp_path: Path) -> None:
    fast = sqlite_recorder(tmp_path / "e.sqlite", rs.FastChainedSQLiteApplicationRecorder)
    fast.insert_events(batch("x", 3))
    clash = batch("y", 4) + batch("x", 1)  # the last one repeats a stored version
    with pytest.raises(IntegrityError):
        fast.insert_events(clash)
    events, chain = sqlite_rows(tmp_path / "e.sqlite")
    assert [r[0] for r in events] == [1, 2, 3] and [r[0] for r in chain] == [1, 2, 3]
    assert fast.insert_events(batch("z", 2)) == [4, 5]


def test_sqlite_positions_are_right_with_writers_racing(tmp_path: Path) -> None:
    """Two datastores (as two processes would have) insert batches at once;
    every reported position is the rowid the row really got."""
    path = tmp_path / "race.sqlite"
    recorders = [sqlite_recorder(path, rs.FastChainedSQLiteApplicationRecorder)
                 for _ in range(2)]
    reported = race(recorders)
    events, chain = sqlite_rows(path)
    assert len(events) == 300
    assert {(oid, v): rowid for rowid, oid, v, _t, _s in events} == reported
    assert [r[0] for r in chain] == list(range(1, 301))
    assert_chain_recomputes(events, chain)


def test_sqlite_positions_read_back_when_rowids_are_not_sequential(tmp_path: Path) -> None:
    """Once some row holds the largest rowid, SQLite picks free rowids at
    random; the recorder must notice and read the real ones back."""
    path = tmp_path / "random.sqlite"
    fast = sqlite_recorder(path, rs.FastSQLiteApplicationRecorder)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO stored_events (rowid, originator_id, originator_version, topic, "
                   "state) VALUES (?, 'ffff', 1, 't', x'00')", (rs.MAX_ROWID,))
    events = batch("r", 5)
    ids = fast.insert_events(events)
    with sqlite3.connect(path) as db:
        real = [db.execute("SELECT rowid FROM stored_events WHERE originator_id=? AND "
                           "originator_version=?", (e.originator_id.hex, e.originator_version)
                           ).fetchone()[0] for e in events]
    assert ids == real and rs.MAX_ROWID not in ids


def test_sqlite_connections_cache_statements_and_sync_every_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    connect = sqlite3.connect

    def spy(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        seen.append(kwargs)
        return connect(*args, **kwargs)

    monkeypatch.setattr(rs.sqlite3, "connect", spy)
    fast = sqlite_recorder(tmp_path / "c.sqlite", rs.FastChainedSQLiteApplicationRecorder)
    fast.insert_events(batch("c", 2))
    assert seen and all(k["cached_statements"] == rs.STATEMENT_CACHE for k in seen)
    with fast.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA synchronous")
        assert c.fetchone()[0] == 2  # FULL
        c.execute("PRAGMA journal_mode")
        assert c.fetchone()[0] == "wal"


def test_the_settings_wire_the_fast_chained_recorder(tmp_path: Path) -> None:
    from lianxin.wiring import build

    lx = build(make_settings(tmp_path / "home"))
    try:
        assert type(lx.app.recorder) is rs.FastChainedSQLiteApplicationRecorder
        assert isinstance(lx.app.recorder.datastore.pool, rs.CachingSQLiteConnectionPool)
    finally:
        lx.close()


# -- PostgreSQL --------------------------------------------------------------
@pytest.fixture
def pg_recorders(pg_database: str) -> Iterator[Any]:
    made: list[PostgresDatastore] = []

    def make(cls: type, schema: str) -> Any:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=pg_database,
                             user=os.environ.get("LIANXIN_PG_USER", "postgres"),
                             autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        ds = PostgresDatastore(pg_database, PG_HOST, PG_PORT,
                               os.environ.get("LIANXIN_PG_USER", "postgres"), "",
                               schema=schema, pool_size=2, lock_timeout=30,
                               enable_db_functions=True)
        made.append(ds)
        recorder = cls(ds)
        recorder.create_table()
        return recorder

    yield make
    for ds in made:
        ds.close()


def pg_rows(recorder: Any) -> tuple[list[tuple], list[tuple]]:
    schema = recorder.datastore.schema
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(f'SELECT notification_id, originator_id, originator_version, topic, state '
                     f'FROM "{schema}".stored_events ORDER BY notification_id')
        events = [(r["notification_id"], r["originator_id"], r["originator_version"],
                   r["topic"], bytes(r["state"])) for r in curs.fetchall()]
        curs.execute(f'SELECT * FROM "{schema}".stored_events_chain ORDER BY position')
        chain = [(r["position"], r["occurred_us"], bytes(r["chain_hash"]))
                 for r in curs.fetchall()]
    return events, chain


def test_postgres_fast_path_stores_the_same_rows_positions_and_chain(pg_recorders: Any) -> None:
    plain = pg_recorders(ChainedPostgresApplicationRecorder, "plain")
    fast = pg_recorders(rs.FastChainedPostgresApplicationRecorder, "fast")
    # Every batch through the database function (a lone command's path),
    # and none through it (the batched path), as well as the default mix.
    one_call = pg_recorders(rs.FastChainedPostgresApplicationRecorder, "one_call")
    one_call.ONE_CALL_MAX_EVENTS = 10**6
    no_call = pg_recorders(rs.FastChainedPostgresApplicationRecorder, "no_call")
    no_call.ONE_CALL_MAX_EVENTS = 0
    batches = [batch(f"b{k}", n) for k, n in enumerate([1, 7, 30, 2])]
    # one and two events go through the scalar wrappers: one of them
    # without a source time (a NULL occurred_us).
    batches += [batch("t1", 5)[4:], batch("t2", 5)[3:]]
    for events in batches:
        expected = plain.insert_events(events)
        for r in (fast, one_call, no_call):
            assert r.insert_events(events) == expected
    for r in (fast, one_call, no_call):
        assert pg_rows(r) == pg_rows(plain)
    events, chain = pg_rows(fast)
    assert len(events) == 43 and [c[1] for c in chain].count(None) == 9


def test_postgres_fast_path_without_chain_matches_the_library(pg_recorders: Any) -> None:
    from eventsourcing.postgres import PostgresApplicationRecorder

    plain = pg_recorders(PostgresApplicationRecorder, "lib")
    fast = pg_recorders(rs.FastPostgresApplicationRecorder, "lib_fast")
    for k, n in enumerate([3, 50]):
        events = batch(f"l{k}", n)
        assert fast.insert_events(events) == plain.insert_events(events)
    def rows(recorder: Any) -> list[tuple]:
        return [(n.id, n.originator_id, n.originator_version, n.topic, n.state)
                for n in recorder.select_notifications(1, 100)]

    assert rows(fast) == rows(plain) and len(rows(fast)) == 53
    with pytest.raises(IntegrityError):
        fast.insert_events(batch("l9", 2) + batch("l0", 1))
    assert fast.max_notification_id() == 53


def test_postgres_racing_writers_get_their_real_ids_and_one_unforked_chain(
        pg_recorders: Any) -> None:
    recorders = [pg_recorders(rs.FastChainedPostgresApplicationRecorder, "race")
                 for _ in range(3)]
    reported = race(recorders, batches=15, size=5)
    events, chain = pg_rows(recorders[0])
    assert len(events) == 225
    assert {(oid.hex, v): n for n, oid, v, _t, _s in events} == reported
    assert [r[0] for r in chain] == [r[0] for r in events]
    assert_chain_recomputes(events, chain)


def test_postgres_duplicate_version_leaves_events_and_chain_untouched(pg_recorders: Any) -> None:
    fast = pg_recorders(rs.FastChainedPostgresApplicationRecorder, "dup")
    fast.insert_events(batch("x", 3))
    with pytest.raises(IntegrityError):
        fast.insert_events(batch("y", 4) + batch("x", 1))
    events, chain = pg_rows(fast)
    assert len(events) == 3 and len(chain) == 3
    later = fast.insert_events(batch("z", 2))
    events, chain = pg_rows(fast)
    assert [r[0] for r in events[-2:]] == list(later)
    assert_chain_recomputes(events, chain)


def test_event_store_can_import_the_fast_bases_without_a_cycle() -> None:
    """event_store.py is meant to take the Fast* classes as bases, so this
    module must not import it at import time."""
    import subprocess
    import sys

    code = ("import sys, commands.recorder_speedups as r; "
            "assert 'commands.event_store' not in sys.modules; "
            "assert r.FastChainedPostgresApplicationRecorder.__mro__[1] is "
            "r.ChainInOneCall; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "ok", out.stderr


def test_batch_prefetch_guesses_the_domains_own_agent_ids_with_the_memo() -> None:
    """The bus memoises agent ids for its prefetch; a memo keyed wrongly would
    load the wrong agent (or none) for a batch."""
    from types import SimpleNamespace

    from commands.bus import _named_ids
    from domain.agent import agent_id_for

    for _ in range(2):  # the second pass is served from the memo
        for no in ("1001", "1002", "王芳-07"):
            assert _named_ids(SimpleNamespace(employee_no=no)) == [agent_id_for(no)]
    assert _named_ids(SimpleNamespace(employee_no="")) == []


def _create_tables_at_once(database: str, schema: str, barrier: Any, out: Any) -> None:
    ds = PostgresDatastore(database, PG_HOST, PG_PORT,
                           os.environ.get("LIANXIN_PG_USER", "postgres"), "", schema=schema,
                           pool_size=1, lock_timeout=30, enable_db_functions=True)
    recorder = rs.FastChainedPostgresApplicationRecorder(ds)
    barrier.wait()
    try:
        recorder.create_table()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"{type(exc).__name__}: {exc}")
    finally:
        ds.close()


def test_postgres_processes_starting_together_all_create_their_tables(pg_recorders: Any,
                                                                      pg_database: str) -> None:
    """An API, a projection runner and a loader started by one script: each
    runs CREATE OR REPLACE FUNCTION (ours and the library's); without the
    advisory lock first, all but one failed with 'tuple concurrently updated'."""
    import multiprocessing

    pg_recorders(rs.FastChainedPostgresApplicationRecorder, "together")  # the schema exists
    ctx = multiprocessing.get_context("spawn")
    results = []
    for _ in range(3):
        barrier, out = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_create_tables_at_once,
                             args=(pg_database, "together", barrier, out)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        results += [out.get(timeout=5) for _ in procs]
    assert results == ["ok"] * 9


def test_postgres_without_the_append_functions_a_lone_command_takes_the_plain_path(
        pg_recorders: Any, pg_database: str) -> None:
    """A database whose tables someone else created (CREATE_TABLE=false) from
    before the functions: commands still commit, on the five-round-trip path."""
    import psycopg

    fast = pg_recorders(rs.FastChainedPostgresApplicationRecorder, "nofn")
    plain = pg_recorders(ChainedPostgresApplicationRecorder, "nofn_plain")
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=pg_database,
                         user=os.environ.get("LIANXIN_PG_USER", "postgres"),
                         autocommit=True) as conn:
        for name in ("stored_events_append_chained_1", "stored_events_append_chained_2"):
            conn.execute(f'DROP FUNCTION "nofn"."{name}"')  # type: ignore[arg-type]
    for events in (batch("n1", 1), batch("n2", 2), batch("n3", 1)):
        assert fast.insert_events(events) == plain.insert_events(events)
    assert fast._functions_present is False
    assert pg_rows(fast) == pg_rows(plain)


def test_postgres_a_failing_store_is_retried_ten_times_not_a_hundred(pg_recorders: Any) -> None:
    from eventsourcing.persistence import OperationalError

    fast = pg_recorders(rs.FastChainedPostgresApplicationRecorder, "retries")
    attempts = []

    def down(*_: Any) -> Any:
        attempts.append(1)
        raise OperationalError("server closed the connection")

    fast._statements = down  # the plain path (a big batch) fails at its first step
    with pytest.raises(OperationalError):
        fast.insert_events(batch("r", 20))
    assert len(attempts) == 10
