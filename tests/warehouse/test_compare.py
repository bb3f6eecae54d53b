"""Month-over-month and year-over-year comparisons: every current row is
compared with the row of the same local time one month / year earlier, or
with nothing when that day does not exist; rows are never repeated."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from commands import messages as m
from lianxin.wiring import build
from tests.conftest import make_settings
from warehouse import kpis
from warehouse.service import load

CST = timezone(timedelta(hours=8))
# local day -> calls offered at 10:00 that day; distinct counts show which
# previous day a row was joined with.
CALLS = {
    (2026, 1, 28): 1, (2026, 1, 29): 2, (2026, 1, 30): 3, (2026, 1, 31): 4,
    (2026, 2, 2): 2,                      # a Monday, 4 weeks before March 2
    (2026, 2, 28): 5, (2026, 3, 2): 1, (2026, 3, 28): 6, (2026, 3, 31): 7,
    (2028, 2, 28): 1, (2028, 2, 29): 2, (2029, 2, 28): 3,
}


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    lx = build(make_settings(tmp_path_factory.mktemp("compare") / "home"))
    n = 0
    for (y, mo, d), count in CALLS.items():
        for _ in range(count):
            n += 1
            lx.commands.handle(m.OfferCall(external_id=f"c{n}", dialed_number="95598",
                                           occurred_at=datetime(y, mo, d, 10, tzinfo=CST)))
    load(lx)
    yield lx.settings.warehouse_dir
    lx.close()


def _rows(df):
    return {(r["interval_start"].year, r["interval_start"].month, r["interval_start"].day):
            (r["offered"], r["offered_prev"], r["offered_change"]) for r in df.to_dicts()}


def test_day_mom_joins_each_day_with_the_same_day_a_month_earlier(days):
    df = kpis(["offered"], interval="day", compare="mom", directory=days,
              date_from="2026-02-01", date_to="2026-03-31")
    assert df["interval_start"].n_unique() == df.height == 5  # no row repeated
    assert _rows(df) == {
        (2026, 2, 2): (2, None, None),    # January 2 had no calls
        (2026, 2, 28): (5, 1, 4),         # January 28 only, not Jan 28-31 four times
        (2026, 3, 2): (1, 2, -1),
        (2026, 3, 28): (6, 5, 1),
        (2026, 3, 31): (7, None, None),   # there is no February 31
    }


def test_day_mom_without_a_period(days):
    df = kpis(["offered"], interval="day", compare="mom", directory=days)
    assert df.height == len(CALLS)
    assert _rows(df)[(2026, 2, 28)] == (5, 1, 4)


def test_day_yoy_leaves_a_leap_day_without_a_previous_row(days):
    df = kpis(["offered"], interval="day", compare="yoy", directory=days,
              date_from="2029-02-01", date_to="2029-03-31")
    assert _rows(df) == {(2029, 2, 28): (3, 1, 2)}  # Feb 28 2028, not + Feb 29
    df = kpis(["offered"], interval="day", compare="yoy", directory=days,
              date_from="2028-02-01", date_to="2028-03-31")
    assert _rows(df) == {(2028, 2, 28): (1, None, None), (2028, 2, 29): (2, None, None)}


def test_quarter_hours_compare_like_their_day(days):
    df = kpis(["offered"], interval="15m", compare="mom", directory=days,
              date_from="2026-03-28", date_to="2026-03-31")
    rows = {(r["interval_start"].day, r["interval_start"].hour): r["offered_prev"]
            for r in df.to_dicts()}
    assert rows == {(28, 10): 5, (31, 10): None}


def test_weeks_compare_with_the_week_four_or_fifty_two_weeks_earlier(days):
    df = kpis(["offered"], interval="week", compare="mom", directory=days,
              date_from="2026-03-02", date_to="2026-03-08")
    assert _rows(df) == {(2026, 3, 2): (1, 2, -1)}  # the week of Monday Feb 2
    df = kpis(["offered"], interval="week", compare="yoy", directory=days,
              date_from="2029-02-26", date_to="2029-03-04")
    # 52 weeks before Monday 2029-02-26 is Monday 2028-02-28: that week holds
    # the calls of Feb 28 and Feb 29.
    assert _rows(df) == {(2029, 2, 26): (3, 3, 0)}


def test_months_and_years(days):
    df = kpis(["offered"], interval="month", compare="mom", directory=days,
              date_from="2026-02-01", date_to="2026-03-31")
    assert _rows(df) == {(2026, 2, 1): (7, 10, -3), (2026, 3, 1): (14, 7, 7)}
    df = kpis(["offered"], interval="year", compare="yoy", directory=days,
              date_from="2029-01-01", date_to="2029-12-31")
    assert _rows(df) == {(2029, 1, 1): (3, 3, 0)}
