"""The loader's columnar read (``select_notification_columns`` +
``columns_to_arrow``) gives exactly the batch of the library's read
(``select_notifications`` + ``to_arrow``): same bounds and order, same Arrow
schema and values (upcast states included), so the warehouse is unchanged.
A store whose states are compressed or enciphered keeps the library's read."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID, uuid4

import duckdb
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from commands import messages as m
from domain.call import Call
from lianxin.wiring import build
from tests.conftest import make_settings
from tests.warehouse.helpers import row_counts, table_differences
from tests.warehouse.scenario import build_small_day
from warehouse.decode import BATCH_SCHEMA, columns_to_arrow, reads_columns, to_arrow
from warehouse.loader import READ_ENV, Loader


class Widget(Aggregate):
    class Made(Aggregate.Created):
        class_version = 3
        colour: str
        size: int

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["colour"] = "unknown"

        @staticmethod
        def upcast_v2_v3(state: dict) -> None:
            state["size"] = 0


def _state(**fields) -> bytes:
    when = {"_type_": "datetime_iso", "_data_": "2026-03-02T01:00:00+00:00"}
    base = {"timestamp": when, "originator_topic": get_topic(Widget), "occurred_at": when,
            "note": "报修 ü"}
    return json.dumps({**base, **fields}, ensure_ascii=False).encode()


def _survey(score: int, **extra) -> bytes:
    when = {"_type_": "datetime_iso", "_data_": "2026-03-02T02:00:00+00:00"}
    return json.dumps({"timestamp": when, "occurred_at": when, "score": score,
                       "question": "overall", "command_id": None, "actor": None,
                       **extra}).encode()


def _fill(lx) -> None:
    """Real events of every kind (the small day, through the command path;
    several classes at class_version 2), and stored ones of older, current,
    newer and unknown versions."""
    build_small_day(lx.commands)
    offered = lx.commands.handle(m.OfferCall(external_id="s1", dialed_number="1",
                                             occurred_at=datetime(2026, 3, 2, 1,
                                                                  tzinfo=timezone.utc)))
    topic = get_topic(Widget.Made)
    lx.app.recorder.insert_events([
        StoredEvent(uuid4(), 1, topic, _state()),  # v1: two upcasts
        StoredEvent(uuid4(), 1, topic, _state(colour="red", class_version=2)),  # v2: one
        StoredEvent(uuid4(), 1, topic, _state(colour="red", size=2, class_version=3)),
        # current, but not written by the mapper (class_version not last): re-encoded
        StoredEvent(uuid4(), 1, topic, json.dumps(
            {"class_version": 3, "colour": "blue", "size": 1}).encode()),
        StoredEvent(uuid4(), 1, topic, _state(class_version=4)),  # newer release: verbatim
        StoredEvent(uuid4(), 1, "elsewhere.module:Thing.Happened", _state(size=3)),
        StoredEvent(offered.aggregate_id, 2, get_topic(Call.SurveyAnswered), _survey(4)),  # v1
    ])


@pytest.fixture
def filled(lianxin):
    _fill(lianxin)
    return lianxin


def _library_batch(recorder, mapper, start, limit):
    return to_arrow(recorder.select_notifications(start, limit, inclusive_of_start=False),
                    mapper)


def _columnar_batch(recorder, mapper, start, limit):
    return columns_to_arrow(recorder.select_notification_columns(
        start, limit, inclusive_of_start=False), mapper)


def test_the_recorders_read_columns(filled):
    assert reads_columns(filled.app.recorder, filled.app.mapper)


def test_columnar_batches_equal_the_library_batches(filled):
    rec, mapper = filled.app.recorder, filled.app.mapper
    total = rec.max_notification_id()
    assert total > 100
    for limit in (1, 7, 50, total + 10):
        start = 0
        while True:
            expected = _library_batch(rec, mapper, start, limit)
            got = _columnar_batch(rec, mapper, start, limit)
            assert got.schema == BATCH_SCHEMA
            assert got.to_pylist() == expected.to_pylist()
            assert got.equals(expected)
            if got.num_rows == 0:
                break
            start = got.column("position")[-1].as_py()
    rows = _columnar_batch(rec, mapper, 0, total).to_pylist()
    widgets = [json.loads(r["state"]) for r in rows if r["aggregate_type"] == "Widget"]
    assert [(w.get("colour"), w.get("size"), w.get("class_version")) for w in widgets] == [
        ("unknown", 0, 3), ("red", 0, 3), ("red", 2, 3), ("blue", 1, 3), (None, None, 4)]
    assert widgets[3] == {"colour": "blue", "size": 1, "class_version": 3}  # re-encoded
    assert [r["aggregate_type"] for r in rows[-2:]] == ["Thing", "Call"]
    survey = json.loads(rows[-1]["state"])
    assert survey["scale"] == 5 and survey["class_version"] == 2


def test_without_a_mapper_nothing_is_upcast(filled):
    rec = filled.app.recorder
    expected = to_arrow(rec.select_notifications(None, 1000), None)
    got = columns_to_arrow(rec.select_notification_columns(None, 1000), None)
    assert got.equals(expected)


def test_the_bounds_are_the_librarys(filled):
    rec = filled.app.recorder
    total = rec.max_notification_id()
    topic = get_topic(Widget.Made)
    cases = [dict(start=None, limit=5), dict(start=1, limit=5), dict(start=3, limit=4),
             dict(start=3, limit=4, inclusive_of_start=False), dict(start=0, limit=0),
             dict(start=total, limit=10), dict(start=total, limit=10, inclusive_of_start=False),
             dict(start=2, limit=100, stop=20), dict(start=None, limit=100, stop=9),
             dict(start=None, limit=100, topics=[topic]),
             dict(start=10, limit=3, stop=total, topics=[topic, get_topic(Call.SurveyAnswered)],
                  inclusive_of_start=False)]
    for kwargs in cases:
        ns = rec.select_notifications(**kwargs)
        cols = rec.select_notification_columns(**kwargs)
        assert [tuple(c) for c in cols] == [
            tuple(n.id for n in ns), tuple(n.originator_id.hex for n in ns),
            tuple(n.originator_version for n in ns), tuple(n.topic for n in ns),
            tuple(n.state for n in ns)], kwargs


def test_sqlite_ids_in_another_spelling_read_as_the_library_reads_them(sqlite_lianxin):
    lx = sqlite_lianxin
    _fill(lx)
    oid = UUID("0123456789abcdef0123456789abcdef")
    with sqlite3.connect(lx.settings.event_store_path) as db:
        db.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                   "VALUES (?, 1, 'elsewhere:X.Y', ?)", (str(oid).upper(), _state()))
    rec, mapper = lx.app.recorder, lx.app.mapper
    got = _columnar_batch(rec, mapper, 0, 10_000)
    assert got.equals(_library_batch(rec, mapper, 0, 10_000))
    assert got.column("aggregate_id")[-1].as_py() == oid.hex


def test_the_loaded_warehouse_is_the_same_either_way(filled, tmp_path: Path, monkeypatch):
    rec, mapper = filled.app.recorder, filled.app.mapper
    dbs = []
    for mode in ("notifications", "columns"):
        if mode == "notifications":
            monkeypatch.setenv(READ_ENV, "notifications")
        else:
            monkeypatch.delenv(READ_ENV)
        loader = Loader(rec, tmp_path / mode, mapper=mapper)
        seen = []
        original = loader._fetch

        def fetch(start, size, original=original, seen=seen):
            notes, batch = original(start, size)
            seen.append(type(notes).__name__)
            return notes, batch

        loader._fetch = fetch
        result = loader.load(batch_size=13)
        assert result.position == rec.max_notification_id()
        loader.close()
        assert ("_Positions" in seen) == (mode == "columns"), seen
        dbs.append(tmp_path / mode / "loader.duckdb")
    assert table_differences(*dbs) == {}


def test_compressed_states_keep_the_librarys_read(tmp_path: Path):
    settings = make_settings(tmp_path / "home")
    settings.extra_env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    lx = build(settings)
    try:
        build_small_day(lx.commands)
        assert lx.app.mapper.compressor is not None
        assert not reads_columns(lx.app.recorder, lx.app.mapper)
        assert not reads_columns(lx.app.recorder, SimpleNamespace(cipher=object(),
                                                                   compressor=None))
        loader = Loader(lx.app.recorder, tmp_path / "wh", mapper=lx.app.mapper)
        result = loader.load(batch_size=50)
        assert result.events == lx.app.recorder.max_notification_id()
        loader.close()
    finally:
        lx.close()
    plain = build(make_settings(tmp_path / "plain"))
    try:
        build_small_day(plain.commands)
        loader = Loader(plain.app.recorder, tmp_path / "wh2", mapper=plain.app.mapper)
        loader.load(batch_size=50)
        loader.close()
    finally:
        plain.close()
    # The same day in both: the same rows in every table (payloads carry the
    # time of recording, so rows are compared by count and by the calls).
    a, b = tmp_path / "wh" / "loader.duckdb", tmp_path / "wh2" / "loader.duckdb"
    assert row_counts(a) == row_counts(b)
    calls = []
    for db in (a, b):
        con = duckdb.connect(str(db), read_only=True)
        calls.append(con.execute("SELECT external_id, outcome, wait_s, talk_s FROM fact_call "
                                 "ORDER BY external_id").fetchall())
        con.close()
    assert calls[0] == calls[1] and len(calls[0]) > 3


def test_a_library_recorder_keeps_the_librarys_read(tmp_path: Path):
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    rec = SQLiteApplicationRecorder(SQLiteDatastore(db_name=str(tmp_path / "lib.db")))
    assert not reads_columns(rec, None)
