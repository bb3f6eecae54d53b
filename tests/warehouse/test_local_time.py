"""Local time in reports: fixed-offset zones use arithmetic, DST zones ICU;
both give the same wall-clock time."""

from __future__ import annotations

import duckdb
import pytest

from warehouse.report import LocalTime


@pytest.mark.parametrize("tz, instant, wall", [
    ("Asia/Shanghai", "2026-03-02 01:30:00+00", "2026-03-02 09:30:00"),
    ("Europe/Berlin", "2026-01-15 12:00:00+00", "2026-01-15 13:00:00"),
    ("Europe/Berlin", "2026-07-15 12:00:00+00", "2026-07-15 14:00:00"),
])
def test_local_wall_time(tz, instant, wall):
    clock = LocalTime(tz, "2026-01-01", "2027-01-01")
    assert (clock.offset_s is None) == (tz == "Europe/Berlin")
    con = duckdb.connect()
    got = con.execute(f"SELECT {clock.local(f'TIMESTAMPTZ {instant!r}')}::VARCHAR").fetchall()[0][0]
    assert got == wall


def test_fixed_offset_period_bounds_are_utc_instants():
    clock = LocalTime("Asia/Shanghai", "2026-03-02", "2026-03-03")
    assert clock.utc("2026-03-02") == "2026-03-01 16:00:00+00"


@pytest.mark.parametrize("interval", ["15m", "30m", "60m", "day", "week", "month", "year"])
@pytest.mark.parametrize("instant", ["2026-03-01 16:00:00+00", "2026-03-04 23:59:59+00",
                                     "2026-12-31 15:59:59.999+00", "2026-06-07 10:14:00+00"])
def test_arithmetic_buckets_equal_calendar_buckets(interval, instant):
    from warehouse.report import INTERVALS

    fast = LocalTime("Asia/Shanghai", None, None)
    ts = f"TIMESTAMPTZ '{instant}'"
    local = f"(({ts}) AT TIME ZONE 'Asia/Shanghai')"
    con = duckdb.connect()
    got, want = con.execute(f"SELECT {fast.bucket(interval, ts, fast.local(ts))}, "
                            f"{INTERVALS[interval][0].format(ts=local)}").fetchall()[0]
    assert got == want
