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
    assert [r[4] for r in rows] == [1, 2, 2, 1]
    assert [(r[1], r[2]) for r in rows] == [("Call", "Offered"), ("Gadget", "Made"),
                                            ("Gadget", "Made"), ("Thing", "Happened")]
    offered = json.loads(rows[0][3])
    assert "pii" not in offered and "13800138000" not in rows[0][3]
    assert offered["caller_hash"] == calls[1] and calls[0] == 1
