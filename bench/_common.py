"""Shared by the benchmarks: a throw-away data directory (and PostgreSQL
database), the realistic call workload, and the raw-insert ceilings that
every figure is compared with.

Ceilings are measured on the same database as the command path (a side
table in the same SQLite file / PostgreSQL database), with the same payload
bytes the command path stored, so that the ratio says how much of the
storage engine's capacity the Python above it leaves on the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Sequence

from commands import messages as m
from domain.call import call_id_for
from lianxin.settings import Settings

PG_HOST = os.environ.get("LIANXIN_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LIANXIN_PG_PORT", "5432"))
PG_USER = os.environ.get("LIANXIN_PG_USER", "postgres")


# -- where the benchmark writes ------------------------------------------------
@contextlib.contextmanager
def bench_settings(store: str, *, plain_recorder: bool = False) -> Iterator[Settings]:
    """Fresh LIANXIN_HOME (and a fresh PostgreSQL database), removed after.
    ``plain_recorder`` swaps the configured recorder (the audit hash chain)
    for the library's own, to show what the chain costs."""
    home = Path(tempfile.mkdtemp(prefix="lianxin-bench-"))
    dbname = f"lianxin_bench_{uuid.uuid4().hex[:10]}"
    env = {"LIANXIN_HOME": str(home), "LIANXIN_STORE": store,
           "LIANXIN_PG_HOST": PG_HOST, "LIANXIN_PG_PORT": str(PG_PORT),
           "LIANXIN_PG_USER": PG_USER, "LIANXIN_PG_DBNAME": dbname,
           "LIANXIN_PSEUDONYM_KEY": "bench-key"}
    if store == "postgres":
        _pg_admin(f'CREATE DATABASE "{dbname}"')
    try:
        settings = Settings.from_env(env=env)
        if plain_recorder:
            module = "sqlite" if store == "sqlite" else "postgres"
            cls = "SQLiteApplicationRecorder" if store == "sqlite" else "PostgresApplicationRecorder"
            settings = dataclasses.replace(settings, extra_env={
                **settings.extra_env,
                "APPLICATION_RECORDER_TOPIC": f"eventsourcing.{module}:{cls}"})
        yield settings
    finally:
        if store == "postgres":
            _pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(home, ignore_errors=True)


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


# -- the workload --------------------------------------------------------------
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def agent_setup(employee_nos: Sequence[str]) -> list[m.Command]:
    cmds: list[m.Command] = []
    for no in employee_nos:
        cmds += [
            m.RegisterAgent(employee_no=no, name=f"Agent {no}", team="power",
                            skills={"power": 5, "billing": 3}, command_id=f"reg-{no}",
                            occurred_at=T0),
            m.LogIn(employee_no=no, endpoint=f"PJSIP/{no}", command_id=f"login-{no}",
                    occurred_at=T0),
            m.MakeReady(employee_no=no, command_id=f"ready-{no}", occurred_at=T0),
        ]
    return cmds


def call_lifecycle(tag: str, n: int, employee_no: str) -> list[m.Command]:
    """One inbound call from offer to survey: 13 commands, 17 events (the
    agent's ringing/connected/released/ready ride along with the call's)."""
    ext = f"{tag}-{n}"
    cid = call_id_for(ext)
    t = T0 + timedelta(seconds=n)

    def at(s: float) -> datetime:
        return t + timedelta(seconds=s)

    def key(step: str) -> str:
        return f"{ext}:{step}"

    return [
        m.OfferCall(external_id=ext, dialed_number="95598", caller_number=f"138{n % 10**8:08d}",
                    trunk="trunk-gz-1", command_id=key("offer"), occurred_at=at(0),
                    actor="telephony"),
        m.EnterIvr(call_id=cid, menu="main", command_id=key("ivr"), occurred_at=at(1),
                   actor="telephony"),
        m.ChooseMenuOption(call_id=cid, menu="main", digits="2", target="power",
                           command_id=key("dtmf"), occurred_at=at(6), actor="telephony"),
        m.QueueCall(call_id=cid, queue="power", priority=0, required_skills={"power": 3},
                    command_id=key("queue"), occurred_at=at(7), actor="acd"),
        m.AlertAgent(call_id=cid, employee_no=employee_no, leg_id=f"{ext}-leg1",
                     command_id=key("alert"), occurred_at=at(20), actor="acd"),
        m.AnswerCall(call_id=cid, command_id=key("answer"), occurred_at=at(24),
                     actor="telephony"),
        m.HoldCall(call_id=cid, command_id=key("hold"), occurred_at=at(60), actor=employee_no),
        m.ResumeCall(call_id=cid, command_id=key("resume"), occurred_at=at(75),
                     actor=employee_no),
        m.StartRecording(call_id=cid, recording=f"rec-{ext}", target=f"channel:{ext}",
                         command_id=key("rec-start"), occurred_at=at(76), actor="telephony"),
        m.StopRecording(call_id=cid, recording=f"rec-{ext}", duration_s=120.0,
                        command_id=key("rec-stop"), occurred_at=at(196), actor="telephony"),
        m.EndCall(call_id=cid, hung_up_by="caller", cause="normal", cause_code=16,
                  command_id=key("end"), occurred_at=at(200), actor="telephony"),
        m.CompleteWrapUp(call_id=cid, employee_no=employee_no, dispositions=["power-outage"],
                         command_id=key("wrap"), occurred_at=at(230), actor=employee_no),
        m.AnswerSurvey(call_id=cid, score=5, command_id=key("survey"), occurred_at=at(240),
                       actor="ivr"),
    ]


EVENTS_PER_CALL = 17
COMMANDS_PER_CALL = 13


# -- raw ceilings --------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    originator_id: uuid.UUID
    version: int
    topic: str
    state: bytes


def stored_rows(app: object, limit: int = 1_000_000) -> list[Row]:
    """The payloads the command path actually stored (same sizes, same topics)."""
    notes = app.recorder.select_notifications(start=1, limit=limit)  # type: ignore[attr-defined]
    return [Row(n.originator_id if isinstance(n.originator_id, uuid.UUID)
                else uuid.UUID(str(n.originator_id)), n.originator_version, n.topic,
                bytes(n.state)) for n in notes]


def _timed_rows(rows: Sequence[Row], seconds: float, max_rows: int) -> Iterator[tuple[int, Row]]:
    """Cycle through the rows until the time is up (fresh keys on each lap)."""
    deadline = time.perf_counter() + seconds
    i = 0
    while i < max_rows and (i % 64 or time.perf_counter() < deadline):
        yield i, rows[i % len(rows)]
        i += 1


class RawSQLite:
    """Raw inserts on the event store's own file, with the library's
    connection settings (WAL, default synchronous=FULL: every commit is
    fsynced, as every command's commit is)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        assert self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        for table in ("bench_raw_single", "bench_raw_batch", "bench_raw_chained"):
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (originator_id TEXT, "
                            "originator_version INTEGER, topic TEXT, state BLOB, "
                            "PRIMARY KEY (originator_id, originator_version))")
        # The audit chain's table, as commands/event_store.py lays it out.
        self.db.execute("CREATE TABLE IF NOT EXISTS bench_raw_chain (position INTEGER PRIMARY KEY, "
                        "occurred_us INTEGER, chain_hash BLOB NOT NULL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS bench_raw_chain_occurred "
                        "ON bench_raw_chain (occurred_us)")
        self.lap = 0

    def single(self, rows: Sequence[Row], seconds: float) -> float:
        """Durable single-row commits per second."""
        return self._singles(rows, seconds, chained=False)

    def single_chained(self, rows: Sequence[Row], seconds: float) -> float:
        """Durable single-row commits per second in the store's layout: the
        event row and its audit-chain row (four B-trees instead of two).
        Python does nothing else, so no command path can beat it."""
        return self._singles(rows, seconds, chained=True)

    def _singles(self, rows: Sequence[Row], seconds: float, *, chained: bool) -> float:
        db, self.lap = self.db, self.lap + 1
        sql = f"INSERT INTO {'bench_raw_chained' if chained else 'bench_raw_single'} VALUES (?,?,?,?)"
        chain = "INSERT INTO bench_raw_chain VALUES (last_insert_rowid(), ?, ?)"
        n = 0
        start = time.perf_counter()
        for i, r in _timed_rows(rows, seconds, 10**9):
            db.execute("BEGIN")
            db.execute(sql, (f"{r.originator_id.hex}-{self.lap}-{i}", r.version, r.topic,
                             r.state))
            if chained:
                db.execute(chain, (time.time_ns() // 1000, _hash32(r.state, i)))
            db.execute("COMMIT")
            n += 1
        return n / (time.perf_counter() - start)

    def batched(self, rows: Sequence[Row], batch: int) -> float:
        """Rows per second inserted ``batch`` rows per commit."""
        db, self.lap = self.db, self.lap + 1
        sql = "INSERT INTO bench_raw_batch VALUES (?,?,?,?)"
        params = [(f"{r.originator_id.hex}-{self.lap}", r.version, r.topic, r.state)
                  for r in rows]
        start = time.perf_counter()
        for k in range(0, len(params), batch):
            db.execute("BEGIN")
            db.executemany(sql, params[k:k + batch])
            db.execute("COMMIT")
        return len(params) / (time.perf_counter() - start)

    def close(self) -> None:
        for table in ("bench_raw_single", "bench_raw_batch", "bench_raw_chained", "bench_raw_chain"):
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.close()


class RawPostgres:
    """Raw inserts in the event store's database, same column types as the
    library's table, synchronous_commit as the server is configured (on:
    every commit is flushed)."""

    def __init__(self, settings: Settings) -> None:
        import psycopg

        self.conn = psycopg.connect(host=settings.pg_host, port=settings.pg_port,
                                    user=settings.pg_user, dbname=settings.pg_dbname,
                                    autocommit=True)
        for table in ("bench_raw_single", "bench_raw_batch", "bench_raw_chained"):
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ("  # type: ignore[arg-type]
                              "originator_id uuid NOT NULL, originator_version integer NOT NULL, "
                              "topic text, state bytea, notification_id bigserial, "
                              "PRIMARY KEY (originator_id, originator_version))")
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_raw_chain (position bigint PRIMARY KEY, "
                          "occurred_us bigint, chain_hash bytea NOT NULL)")
        self.conn.execute("CREATE INDEX IF NOT EXISTS bench_raw_chain_occurred "
                          "ON bench_raw_chain (occurred_us)")
        self.lap = 0

    def single(self, rows: Sequence[Row], seconds: float) -> float:
        self.lap += 1
        sql = ("INSERT INTO bench_raw_single (originator_id, originator_version, topic, state) "
               "VALUES (%s,%s,%s,%s)")
        n = 0
        with self.conn.cursor() as cur:
            start = time.perf_counter()
            for i, r in _timed_rows(rows, seconds, 10**9):
                # autocommit: one INSERT, one durable COMMIT
                cur.execute(sql, (uuid.uuid5(r.originator_id, f"{self.lap}-{i}"), r.version,
                                  r.topic, r.state), prepare=True)
                n += 1
            return n / (time.perf_counter() - start)

    def single_chained(self, rows: Sequence[Row], seconds: float) -> float:
        """As ``RawSQLite.single_chained``: the event row and its chain row in
        one durable commit, sent as one statement (one round trip)."""
        self.lap += 1
        sql = ("WITH e AS (INSERT INTO bench_raw_chained (originator_id, originator_version, "
               "topic, state) VALUES (%s,%s,%s,%s) RETURNING notification_id) "
               "INSERT INTO bench_raw_chain SELECT notification_id, %s, %s FROM e")
        n = 0
        with self.conn.cursor() as cur:
            start = time.perf_counter()
            for i, r in _timed_rows(rows, seconds, 10**9):
                cur.execute(sql, (uuid.uuid5(r.originator_id, f"{self.lap}-{i}"), r.version,
                                  r.topic, r.state, time.time_ns() // 1000,
                                  _hash32(r.state, i)), prepare=True)
                n += 1
            return n / (time.perf_counter() - start)

    def batched(self, rows: Sequence[Row], batch: int) -> float:
        self.lap += 1
        sql = ("INSERT INTO bench_raw_batch (originator_id, originator_version, topic, state) "
               "VALUES (%s,%s,%s,%s)")
        params = [(uuid.uuid5(r.originator_id, str(self.lap)), r.version, r.topic, r.state)
                  for r in rows]
        start = time.perf_counter()
        for k in range(0, len(params), batch):
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(sql, params[k:k + batch])
        return len(params) / (time.perf_counter() - start)

    def close(self) -> None:
        for table in ("bench_raw_single", "bench_raw_batch", "bench_raw_chained", "bench_raw_chain"):
            self.conn.execute(f"DROP TABLE IF EXISTS {table}")  # type: ignore[arg-type]
        self.conn.close()


def _hash32(state: bytes, i: int) -> bytes:
    return hashlib.sha256(state + i.to_bytes(8, "little")).digest()


def raw_inserter(settings: Settings) -> RawSQLite | RawPostgres:
    if settings.store == "sqlite":
        return RawSQLite(settings.event_store_path)
    return RawPostgres(settings)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]
