"""Shared driving of a small, realistic center for the audit tests, and raw
access to the event store for tampering with it the way an intruder would."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from uuid import UUID

from commands import messages as m

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def agents(svc: Any, *numbers: str, t: float = 0) -> None:
    for no in numbers:
        svc.handle(m.RegisterAgent(employee_no=no, name=f"Agent {no}", team="A",
                                   skills={"power": 5}, occurred_at=at(t)))
        svc.handle(m.LogIn(employee_no=no, endpoint=f"PJSIP/{no}", occurred_at=at(t)))
        svc.handle(m.MakeReady(employee_no=no, occurred_at=at(t)))


def simple_call(svc: Any, external_id: str, agent: str, t: float) -> UUID:
    cid = svc.handle(m.OfferCall(external_id=external_id, dialed_number="95598",
                                 caller_number="13800000000", occurred_at=at(t))).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(t + 1)))
    svc.handle(m.AlertAgent(call_id=cid, employee_no=agent, occurred_at=at(t + 2)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(t + 4)))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(t + 30)))
    svc.handle(m.CompleteWrapUp(call_id=cid, employee_no=agent, dispositions=["billing"],
                                occurred_at=at(t + 40)))
    return cid


def populate(lx: Any, calls: int = 4) -> list[UUID]:
    svc = lx.commands
    agents(svc, "1001")
    return [simple_call(svc, f"ch-{i}", "1001", 100 + i * 60) for i in range(calls)]


@contextmanager
def raw_store(lx: Any) -> Iterator[tuple[Any, str, str, str]]:
    """(connection, events table, chain table, position column) with autocommit."""
    from queries.audit_trail import source_params

    params = source_params(lx)
    if params["kind"] == "sqlite":
        db = sqlite3.connect(params["path"], isolation_level=None, timeout=30)
        try:
            yield db, params["table"], params["table"] + "_chain", "rowid"
        finally:
            db.close()
    else:
        import psycopg

        conn = psycopg.connect(**params["conninfo"], autocommit=True)
        try:
            yield (conn, f'{params["schema"]}.{params["table"]}',
                   f'{params["schema"]}.{params["table"]}_chain', "notification_id")
        finally:
            conn.close()


def execute(db: Any, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(db, sqlite3.Connection):
        return db.execute(sql.replace("%s", "?"), args).fetchall()
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else []


def edit_payload(db: Any, events: str, pos: str, position: int, old: bytes, new: bytes) -> None:
    [(state,)] = execute(db, f"SELECT state FROM {events} WHERE {pos} = %s", (position,))
    state = bytes(state)
    assert old in state, (old, state)
    execute(db, f"UPDATE {events} SET state = %s WHERE {pos} = %s",
            (state.replace(old, new), position))


def position_of(db: Any, events: str, pos: str, topic_suffix: str) -> int:
    return execute(db, f"SELECT min({pos}) FROM {events} WHERE topic LIKE %s",
                   ("%" + topic_suffix,))[0][0]
