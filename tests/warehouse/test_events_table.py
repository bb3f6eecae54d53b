"""The `events` table keeps every event (known or not), upcast to the
current class version, without the personal data of `pii` fields."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from uuid import uuid4

import duckdb
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from commands import messages as m
from warehouse.service import load


class Gadget(Aggregate):
    class Made(Aggregate.Created):
        class_version = 2
        colour: str

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["colour"] = "unknown"


def _state(**fields) -> bytes:
    base = {"timestamp": {"_type_": "datetime_iso", "_data_": "2026-03-02T01:00:00+00:00"},
            "originator_topic": get_topic(Gadget),
            "occurred_at": {"_type_": "datetime_iso", "_data_": "2026-03-02T01:00:00+00:00"}}
    return json.dumps({**base, **fields}).encode()


def test_every_event_is_kept_upcast_and_without_pii(sqlite_lianxin):
    lx = sqlite_lianxin
    lx.commands.handle(m.OfferCall(external_id="x1", dialed_number="95598",
                                   caller_number="13800138000",
                                   occurred_at=datetime(2026, 3, 2, 1, tzinfo=timezone.utc)))
    old, new, alien = uuid4(), uuid4(), uuid4()
    lx.app.recorder.insert_events([
        StoredEvent(old, 1, get_topic(Gadget.Made), _state()),  # written by version 1
        StoredEvent(new, 1, get_topic(Gadget.Made), _state(colour="red", class_version=2)),
        StoredEvent(alien, 1, "elsewhere.module:Thing.Happened", _state(size=3)),
    ])
    result = load(lx, batch_size=2)
    assert result.events == 4
    con = duckdb.connect(str(lx.settings.warehouse_dir / "catalog.duckdb"), read_only=True)
    rows = con.execute("SELECT aggregate_id, aggregate_type, event_type, payload, class_version "
                       "FROM events "
                       "ORDER BY position").fetchall()
    calls = con.execute("SELECT count(*), any_value(caller_hash) FROM fact_call").fetchall()[0]
    con.close()
    payloads = {str(r[0]): json.loads(r[3]) for r in rows}
    assert payloads[str(old)]["colour"] == "unknown"
    assert payloads[str(new)]["colour"] == "red"
    assert payloads[str(alien)]["size"] == 3
    assert [r[4] for r in rows] == [2, 2, 2, 1]  # Call.Offered is at v2
    assert [(r[1], r[2]) for r in rows] == [("Call", "Offered"), ("Gadget", "Made"),
                                            ("Gadget", "Made"), ("Thing", "Happened")]
    offered = json.loads(rows[0][3])
    assert "pii" not in offered and "13800138000" not in rows[0][3]
    assert offered["caller_hash"] == calls[1] and calls[0] == 1


def _survey_state(score: int, **extra) -> bytes:
    return json.dumps({"timestamp": {"_type_": "datetime_iso", "_data_": "2026-03-02T02:00:00+00:00"},
                       "occurred_at": {"_type_": "datetime_iso", "_data_": "2026-03-02T02:00:00+00:00"},
                       "score": score, "question": "overall", "command_id": None, "actor": None,
                       **extra}).encode()


def test_survey_scores_are_read_on_their_scale(sqlite_lianxin):
    """SurveyAnswered v1 (no scale: the 1-5 keypad) is upcast to scale 5; a
    v2 score of 8 on a 1-10 scale counts as 1 + 7 * 4 / 9 on 1-5."""
    from domain.call import Call

    lx = sqlite_lianxin
    when = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)
    a = lx.commands.handle(m.OfferCall(external_id="s1", dialed_number="1", occurred_at=when))
    b = lx.commands.handle(m.OfferCall(external_id="s2", dialed_number="1", occurred_at=when))
    topic = get_topic(Call.SurveyAnswered)
    lx.app.recorder.insert_events([
        StoredEvent(a.aggregate_id, 2, topic, _survey_state(4)),  # v1
        StoredEvent(b.aggregate_id, 2, topic, _survey_state(8, scale=10, class_version=2)),
    ])
    load(lx)
    from warehouse import kpis

    df = kpis(["surveys", "satisfaction_avg", "satisfaction_top2_share"],
              directory=lx.settings.warehouse_dir)
    assert df["surveys"][0] == 2
    assert abs(df["satisfaction_avg"][0] - (4 + (1 + 7 * 4 / 9)) / 2) < 1e-9
    assert df["satisfaction_top2_share"][0] == 1.0
    con = duckdb.connect(str(lx.settings.warehouse_dir / "catalog.duckdb"), read_only=True)
    scales = con.execute("SELECT survey_scale FROM fact_call ORDER BY external_id").fetchall()
    con.close()
    assert scales == [(5,), (10,)]


def test_only_states_older_than_their_class_are_decoded_in_python(sqlite_lianxin):
    """A state already at its class's version goes to DuckDB untouched (no
    Python decode); an older one is upcast, as the mapper would."""
    from types import SimpleNamespace

    from warehouse.decode import to_arrow

    mapper = sqlite_lianxin.app.mapper
    decoded: list[bytes] = []

    class Counting:
        def decode(self, raw: bytes):  # noqa: ANN201
            decoded.append(raw)
            return mapper.transcoder.decode(raw)

        def encode(self, obj):  # noqa: ANN001, ANN201
            return mapper.transcoder.encode(obj)

    topic = get_topic(Gadget.Made)
    old = _state()
    current = mapper.transcoder.encode({**json.loads(_state(colour="red")), "class_version": 2})
    rows = [SimpleNamespace(id=i + 1, originator_id=uuid4(), originator_version=1, topic=topic,
                            state=s) for i, s in enumerate([old, current])]
    table = to_arrow(rows, SimpleNamespace(transcoder=Counting(), cipher=None, compressor=None))
    states = [json.loads(s) for s in table.column("state").to_pylist()]
    assert decoded == [old]
    assert states[0]["colour"] == "unknown" and states[0]["class_version"] == 2
    assert table.column("state").to_pylist()[1] == current.decode()
