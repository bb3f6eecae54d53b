"""Full chain on real-format input: Asterisk's queue_log (the telephony
area's hand-checked small day) -> importer -> events -> warehouse -> KPIs
equal the hand computation in tests/fixtures/queue_log/small_day.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Imported, not importorskip'd: if the importer breaks, this chain must fail.
from telephony_adapter.queue_log import importer
from warehouse import kpis
from warehouse.catalog import ReportError
from warehouse.service import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "queue_log"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from lianxin.wiring import build
    from tests.conftest import make_settings

    lx = build(make_settings(tmp_path_factory.mktemp("qlog") / "home"))
    summary = importer.import_queue_log(lx, (FIXTURES / "small_day.log").read_text())
    assert summary.ok, summary.lines_report()
    load(lx, batch_size=13)
    yield lx, json.loads((FIXTURES / "expected.json").read_text())
    lx.close()


def _report(lx, expected, ids, **params):
    df = kpis(ids, by="queue", directory=lx.settings.warehouse_dir, date_from=expected["day"],
              date_to=expected["day"], params=params)
    rows = {r["queue"]: r for r in df.to_dicts()}
    return rows[expected["queue"]]


def test_counts(imported):
    lx, exp = imported
    row = _report(lx, exp, ["offered", "answered", "abandoned", "other_exits", "ring_no_answer"])
    k = exp["kpis"]
    assert row == {"queue": exp["queue"], "offered": k["offered"], "answered": k["answered"],
                   "abandoned": k["abandoned"], "other_exits": k["exited"],
                   "ring_no_answer": k["ring_no_answer"]}


@pytest.mark.parametrize("variant, params", [
    ("service_level_answered_only", {"service_level.denominator": "answered"}),
    ("service_level_answered_plus_abandoned", {"service_level.denominator": "answered_abandoned"}),
    ("service_level_asterisk_sl2", {"service_level.denominator": "answered_abandoned",
                                    "service_level.abandons_within_threshold": "met"}),
])
def test_service_level_variants(imported, variant, params):
    lx, exp = imported
    row = _report(lx, exp, ["service_level"], threshold_s=exp["service_level_threshold_s"], **params)
    assert row["service_level"] == pytest.approx(exp["kpis"][variant]["value"], abs=1e-6)


@pytest.mark.parametrize("denominator", ["answered", "answered_abandoned",
                                         "answered_abandoned_minus_short"])
@pytest.mark.parametrize("abandons", ["missed", "met"])
@pytest.mark.parametrize("threshold", [20, 60])
def test_service_level_never_exceeds_one(imported, denominator, abandons, threshold):
    """Every combination against the fixture's hand-checked call table: at
    60 s with denominator=answered and met abandons, v1 gave 1.5."""
    lx, exp = imported
    params = {"service_level.denominator": denominator,
              "service_level.abandons_within_threshold": abandons}
    if denominator == "answered" and abandons == "met":
        with pytest.raises(ReportError, match="abandons_within_threshold=met"):
            _report(lx, exp, ["service_level"], threshold_s=threshold, **params)
        return
    short_s = 5  # the default short_abandon_s
    calls = exp["calls"]
    answered = [c for c in calls if c["outcome"] == "answered"]
    counted = [c for c in calls if c["outcome"] == "abandoned"
               and (denominator == "answered_abandoned" or
                    (denominator == "answered_abandoned_minus_short" and c["wait_s"] >= short_s))]
    met = sum(c["wait_s"] <= threshold for c in answered)
    if abandons == "met":
        met += sum(c["wait_s"] <= threshold for c in counted)
    row = _report(lx, exp, ["service_level"], threshold_s=threshold, **params)
    assert row["service_level"] == pytest.approx(met / (len(answered) + len(counted)))
    assert 0 <= row["service_level"] <= 1


def test_waits_and_talk(imported):
    lx, exp = imported
    row = _report(lx, exp, ["asa_s", "avg_talk_s", "max_wait_s"])
    assert row["asa_s"] == pytest.approx(exp["kpis"]["asa_s"]["value"], abs=1e-6)
    assert row["avg_talk_s"] == pytest.approx(exp["kpis"]["average_talk_s"]["value"], abs=1e-6)
    assert row["max_wait_s"] == max(c["wait_s"] for c in exp["calls"])
