"""The hand-computed KPIs of small_day.log hold for the calls the importer creates.

expected.json is the reference the warehouse checks its KPI
catalogue against (the "full chain"); this test makes sure the importer's
side of that chain carries the log's times faithfully."""

from __future__ import annotations

import json
from pathlib import Path

from domain.agent import agent_id_for
from domain.call import CallState, call_id_for
from telephony_adapter.queue_log import ImportOptions, import_queue_log

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue_log"


def test_the_small_day_yields_the_hand_computed_kpis(sqlite_lianxin):
    expected = json.loads((FIXTURES / "expected.json").read_text())
    summary = import_queue_log(sqlite_lianxin, (FIXTURES / "small_day.log").read_text(),
                               ImportOptions(timezone=expected["timezone"]))
    assert summary.ok
    threshold = expected["service_level_threshold_s"]
    calls = {c["callid"]: sqlite_lianxin.app.repository.get(call_id_for(f"queue_log:{c['callid']}"))
             for c in expected["calls"]}

    for row in expected["calls"]:
        c = calls[row["callid"]]
        assert c.queue == expected["queue"]
        if row["outcome"] == "answered":
            assert (c.answered_at - c.queued_at).total_seconds() == row["wait_s"]
            assert (c.ended_at - c.answered_at).total_seconds() == row["talk_s"]
            assert c.hung_up_by == row["hung_up_by"]
            answered_by = [l["agent_id"] for l in c.legs.values() if l["answered_at"]]
            assert answered_by == [agent_id_for(row["agent"])]
        elif row["outcome"] == "abandoned":
            assert c.state == CallState.ABANDONED and c.answered_at is None
            assert (c.ended_at - c.queued_at).total_seconds() == row["wait_s"]
        else:
            assert (c.state, c.hung_up_by, c.answered_at) == (CallState.ENDED, "system", None)
            assert (c.ended_at - c.queued_at).total_seconds() == row["wait_s"]

    answered = [c for c in calls.values() if c.answered_at is not None]
    abandoned = [c for c in calls.values() if c.state == CallState.ABANDONED]
    waits = [(c.answered_at - c.queued_at).total_seconds() for c in answered]
    talks = [(c.ended_at - c.answered_at).total_seconds() for c in answered]
    within = sum(w <= threshold for w in waits)
    short_abandons = sum((c.ended_at - c.queued_at).total_seconds() <= threshold for c in abandoned)
    k = expected["kpis"]
    assert (len(calls), len(answered), len(abandoned)) == (k["offered"], k["answered"], k["abandoned"])
    assert (within, short_abandons) == (k["answered_within_20s"], k["abandoned_within_20s"])
    assert round(within / len(answered), 6) == k["service_level_answered_only"]["value"]
    assert round(within / (len(answered) + len(abandoned)), 6) == \
        k["service_level_answered_plus_abandoned"]["value"]
    assert round((within + short_abandons) / (len(answered) + len(abandoned)), 6) == \
        k["service_level_asterisk_sl2"]["value"]
    assert round(sum(waits) / len(waits), 6) == k["asa_s"]["value"]
    assert round(sum(talks) / len(talks), 6) == k["average_talk_s"]["value"]
