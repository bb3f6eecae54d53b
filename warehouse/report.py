"""The report engine: KPI definitions -> one SQL query per fact -> a table.

A report groups rows by interval and one dimension, and computes every
requested KPI of a fact in the same query (so a report over ten KPIs scans
each fact once). The result carries what it means: definition versions,
parameter values, the attribution policy and the position it is complete up to.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable

import polars as pl

from warehouse.aggregate_filters import filters_as_case
from warehouse.catalog import Kpi, ReportError, catalog, resolve_params
from warehouse.reader import open_catalog, read_meta

INTERVALS = {
    "15m": ("time_bucket(INTERVAL 15 MINUTE, {ts})", "INTERVAL 15 MINUTE"),
    "30m": ("time_bucket(INTERVAL 30 MINUTE, {ts})", "INTERVAL 30 MINUTE"),
    "60m": ("time_bucket(INTERVAL 60 MINUTE, {ts})", "INTERVAL 60 MINUTE"),
    "day": ("date_trunc('day', {ts})", "INTERVAL 1 DAY"),
    "week": ("date_trunc('week', {ts})", "INTERVAL 7 DAY"),
    "month": ("date_trunc('month', {ts})", "INTERVAL 1 MONTH"),
    "year": ("date_trunc('year', {ts})", "INTERVAL 1 YEAR"),
}
ATTRIBUTIONS = ("offered", "answered", "ended")
FIXED_WIDTH_US = {"15m": 900_000_000, "30m": 1_800_000_000, "60m": 3_600_000_000,
                  "day": 86_400_000_000, "week": 7 * 86_400_000_000}
# 1970-01-01 was a Thursday: shift by three days so weeks start on Monday.
WEEK_SHIFT_US = 3 * 86_400_000_000
DIMENSIONS = ("queue", "agent", "team", "skill", "ivr_path", "work_order_type", "department")
COMPARES = {"mom": ("1 MONTH", "1mo"), "yoy": ("1 YEAR", "1y")}

# Which time column each attribution policy picks, per fact. Work orders are
# always counted when opened and agent time is split across intervals.
ATTRIBUTION_COLUMN = {
    "call": {"offered": "offered_at",
             "answered": "CASE WHEN answered_at IS NOT NULL THEN answered_at ELSE ended_at END",
             "ended": "ended_at"},
    "leg": {"offered": "alerted_at",
            "answered": "coalesce(answered_at, ended_at)",
            "ended": "ended_at"},
    "work_order": {a: "opened_at" for a in ATTRIBUTIONS},
}
# Dimension -> expression, per fact; a fact without the dimension cannot be
# reported by it.
DIMENSION_COLUMN = {
    "call": {"queue": "coalesce(queue, '(none)')", "agent": "coalesce(agent, '(none)')",
             "team": "coalesce(team, '(none)')", "skill": "skill",
             "ivr_path": "coalesce(ivr_path, '(none)')"},
    "leg": {"queue": "coalesce(queue, '(none)')", "agent": "coalesce(agent, '(none)')",
            "team": "coalesce(team, '(none)')"},
    "agent": {"agent": "coalesce(agent, '(none)')", "team": "coalesce(team, '(none)')",
              "skill": "skill"},
    "work_order": {"work_order_type": "coalesce(type, '(none)')",
                   "department": "coalesce(department, '(none)')"},
}


@dataclass
class ReportRequest:
    kpis: list[str] | None = None
    by: str | None = None
    interval: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    params: dict[str, Any] = field(default_factory=dict)
    attribution: str = "offered"
    compare: str | None = None


@dataclass
class Report:
    frame: pl.DataFrame
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        rows = self.frame.with_columns(
            [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S") for c, t in self.frame.schema.items()
             if isinstance(t, pl.Datetime)]
        ).to_dicts()
        return {"meta": self.meta, "columns": self.frame.columns, "rows": rows}

    def meta_json(self) -> str:
        """The meta as compact ASCII JSON (fits an HTTP header)."""
        return json.dumps(self.meta, default=str, separators=(",", ":"))

    def to_csv(self) -> str:
        # CSV has no place for the meta: callers put it next to the rows
        # (a FILE.meta.json, an HTTP header).
        return self.frame.write_csv()

    def to_parquet(self) -> bytes:
        """Parquet with the meta in the file's key-value metadata, so the
        numbers never travel without their definitions."""
        import pyarrow.parquet as pq

        table = self.frame.to_arrow().replace_schema_metadata(
            {b"lianxin.report": self.meta_json().encode()})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()


def _parse_date(value: Any, name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ReportError(f"{name} must be a date YYYY-MM-DD, not {value!r}", field=name) from None


def validate(req: ReportRequest) -> tuple[list[Kpi], dict[str, dict[str, Any]]]:
    cat = catalog()
    ids = req.kpis or [k for k, v in cat.items()
                       if req.by is None or req.by in DIMENSION_COLUMN[v.source]]
    unknown = [k for k in ids if k not in cat]
    if unknown:
        raise ReportError(f"unknown KPI {', '.join(unknown)}; see `lianxin kpi list`", field="kpi")
    if req.by is not None and req.by not in DIMENSIONS:
        raise ReportError(f"by must be one of {list(DIMENSIONS)}, not {req.by!r}", field="by")
    if req.interval is not None and req.interval not in INTERVALS:
        raise ReportError(f"interval must be one of {list(INTERVALS)}, not {req.interval!r}",
                          field="interval")
    if req.attribution not in ATTRIBUTIONS:
        raise ReportError(f"attribution must be one of {list(ATTRIBUTIONS)}", field="attribution")
    if req.compare is not None and req.compare not in COMPARES:
        raise ReportError(f"compare must be one of {list(COMPARES)}", field="compare")
    req.date_from = _parse_date(req.date_from, "from")
    req.date_to = _parse_date(req.date_to, "to")
    if req.date_from and req.date_to and req.date_to < req.date_from:
        raise ReportError("to is before from", field="to")
    if req.compare and req.interval is None and not (req.date_from and req.date_to):
        raise ReportError("a comparison needs an interval or both from and to", field="compare")
    kpis = [cat[k] for k in ids]
    if req.by is not None:
        misfits = [k.id for k in kpis if req.by not in DIMENSION_COLUMN[k.source]]
        if misfits:
            raise ReportError(f"{', '.join(misfits)} cannot be reported by {req.by}", field="by")
    return kpis, resolve_params(kpis, req.params)


class LocalTime:
    """Local (center) time in SQL. Most centers' zones have had one UTC
    offset for decades (Asia/Shanghai since 1991): then local time is plain
    arithmetic on the epoch, which is an order of magnitude faster in DuckDB
    than a per-row ICU zone conversion, and the period filter can be a
    constant UTC range that Parquet row groups can be skipped on. Zones with
    DST in the reported period use ``AT TIME ZONE``."""

    def __init__(self, tz: str, lo: str | None, hi: str | None) -> None:
        self.tz = tz
        self.offset_s = _fixed_offset(tz, lo, hi)

    def local(self, expr: str) -> str:
        if self.offset_s is None:
            return f"(({expr}) AT TIME ZONE '{self.tz}')"
        return f"make_timestamp(epoch_us({expr}) + {self.offset_s * 1_000_000})"

    def bucket(self, interval: str, utc_expr: str, local_expr: str) -> str:
        """Start of the local interval holding the instant; integer
        arithmetic on epoch microseconds when the offset is fixed."""
        width = FIXED_WIDTH_US.get(interval)
        if self.offset_s is None or width is None:
            return INTERVALS[interval][0].format(ts=local_expr)
        shift = WEEK_SHIFT_US if interval == "week" else 0
        local_us = f"(epoch_us({utc_expr}) + {self.offset_s * 1_000_000 + shift})"
        return f"make_timestamp(({local_us} // {width}) * {width} - {shift})"

    def utc(self, local_iso: str) -> str | None:
        """The UTC instant of a local wall time, when the offset is fixed."""
        if self.offset_s is None:
            return None
        when = datetime.fromisoformat(local_iso) - timedelta(seconds=self.offset_s)
        return when.isoformat(sep=" ") + "+00"


def _fixed_offset(tz: str, lo: str | None, hi: str | None) -> int | None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    start = datetime.fromisoformat(lo) if lo else datetime(1995, 1, 1)
    end = datetime.fromisoformat(hi) if hi else datetime(2100, 1, 1)
    start, end = max(start, datetime(1995, 1, 1)), min(end, datetime(2100, 1, 1))
    offsets = set()
    probe = start
    while probe <= end + timedelta(days=16):
        offsets.add(probe.replace(tzinfo=zone).utcoffset())
        probe += timedelta(days=14)
    if len(offsets) != 1:
        return None
    return int(offsets.pop().total_seconds())


def _relation(source: str, req: ReportRequest, clock: LocalTime, needs: set[str]) -> str:
    """A FROM item: the fact's rows with ts_utc / ts_local (the attributed
    time) and the dimension columns the report needs."""
    if source == "call":
        base = "fact_call"
        if "next_call_gap_s" in needs:
            base = ("(SELECT *, epoch(lead(offered_at) OVER (PARTITION BY caller_hash "
                    "ORDER BY offered_at, call_id) - offered_at) AS next_call_gap_s FROM fact_call)")
        skill = (", unnest(CASE WHEN len(coalesce(c.skills, [])) = 0 THEN ['(none)'] ELSE c.skills END) AS skill"
                 if req.by == "skill" else "")
        ts = ATTRIBUTION_COLUMN["call"][req.attribution]
        # Joins only when the report needs them: the year-long 30-minute
        # report should cost what a hand-written scan of fact_call costs.
        agent = (", a.employee_no AS agent, a.team AS team" if req.by in ("agent", "team") else "")
        join = (" LEFT JOIN dim_agent a ON a.agent_id = c.answer_agent_id" if agent else "")
        meta = (", meta.as_of_time" if "as_of_time" in needs else "")
        return (f"(SELECT c.*{agent}{skill}{meta}, "
                f"{clock.local(ts)} AS ts_local, ({ts}) AS ts_utc "
                f"FROM {base} c{join}{', warehouse_meta meta' if meta else ''})")
    if source == "leg":
        ts = ATTRIBUTION_COLUMN["leg"][req.attribution]
        return (f"(SELECT l.*, a.employee_no AS agent, a.team AS team, "
                f"{clock.local(ts)} AS ts_local, ({ts}) AS ts_utc "
                f"FROM fact_leg l LEFT JOIN dim_agent a ON a.agent_id = l.agent_id)")
    if source == "work_order":
        return (f"(SELECT w.*, {clock.local('opened_at')} AS ts_local, opened_at AS ts_utc, "
                f"meta.as_of_time "
                f"FROM fact_work_order w, warehouse_meta meta)")
    raise AssertionError(source)


def _agent_relation(req: ReportRequest, clock: LocalTime, lo: str | None, hi: str | None) -> str:
    """Agent state intervals cut at interval boundaries (and at from/to), so
    a long shift contributes to every interval it spans."""
    skill = (", unnest(CASE WHEN len(coalesce(a.skills, [])) = 0 THEN ['(none)'] "
             "ELSE a.skills END) AS skill" if req.by == "skill" else "")
    spans = (f"SELECT s.*, a.employee_no AS agent, a.team AS team{skill}, "
             f"{clock.local('s.started_at')} AS ls, "
             f"{clock.local('coalesce(s.ended_at, greatest(meta.as_of_time, s.started_at))')} AS le "
             f"FROM fact_agent_state s LEFT JOIN dim_agent a ON a.agent_id = s.agent_id, "
             f"warehouse_meta meta WHERE s.state <> 'logged_out'")
    clip_lo = f"TIMESTAMP '{lo}'" if lo else None
    clip_hi = f"TIMESTAMP '{hi}'" if hi else None
    where = []
    if clip_lo:
        where.append(f"le > {clip_lo}")
    if clip_hi:
        where.append(f"ls < {clip_hi}")
    spans = f"SELECT * FROM ({spans}) {'WHERE ' + ' AND '.join(where) if where else ''}"
    if req.interval is None:
        start = f"greatest(ls, {clip_lo})" if clip_lo else "ls"
        end = f"least(le, {clip_hi})" if clip_hi else "le"
        return (f"(SELECT *, NULL::TIMESTAMP AS bucket, epoch({end} - {start}) AS dur_s "
                f"FROM ({spans}))")
    trunc, step = INTERVALS[req.interval]
    start = f"greatest(ls, bucket{', ' + clip_lo if clip_lo else ''})"
    end = f"least(le, bucket + {step}{', ' + clip_hi if clip_hi else ''})"
    return (f"(SELECT *, epoch({end} - {start}) AS dur_s FROM ("
            f"SELECT *, unnest(generate_series({trunc.format(ts='ls')}, le, {step})) AS bucket "
            f"FROM ({spans})))")


def _source_query(source: str, kpis: list[Kpi], values: dict[str, dict[str, Any]],
                  req: ReportRequest, clock: LocalTime, lo: str | None, hi: str | None) -> str:
    exprs = ", ".join(f"({filters_as_case(k.render(values[k.id]))}) AS {k.id}" for k in kpis)
    dim = f"{DIMENSION_COLUMN[source][req.by]} AS {req.by}, " if req.by else ""
    group = "GROUP BY ALL" if (req.by or req.interval) else ""
    if source == "agent":
        rel = _agent_relation(req, clock, lo, hi)
        bucket = "bucket AS interval_start, " if req.interval else ""
        return f"SELECT {bucket}{dim}{exprs} FROM {rel} WHERE dur_s > 0 {group}"
    needs = {n for k in kpis for n in k.needs}
    if any("as_of_time" in k.sql for k in kpis):
        needs.add("as_of_time")
    rel = _relation(source, req, clock, needs)
    where = ["ts_utc IS NOT NULL"]
    for bound, op in ((lo, ">="), (hi, "<")):
        if bound is None:
            continue
        utc = clock.utc(bound)
        where.append(f"ts_utc {op} TIMESTAMPTZ '{utc}'" if utc
                     else f"ts_local {op} TIMESTAMP '{bound}'")
    bucket = (clock.bucket(req.interval, "ts_utc", "ts_local") + " AS interval_start, "
              if req.interval else "")
    return f"SELECT {bucket}{dim}{exprs} FROM {rel} WHERE {' AND '.join(where)} {group}"


def _run(con: Any, kpis: list[Kpi], values: dict[str, dict[str, Any]], req: ReportRequest,
         tz: str, lo: str | None, hi: str | None) -> pl.DataFrame:
    clock = LocalTime(tz, lo, hi)
    keys = (["interval_start"] if req.interval else []) + ([req.by] if req.by else [])
    frames = []
    for source in ("call", "leg", "agent", "work_order"):
        group = [k for k in kpis if k.source == source]
        if not group:
            continue
        sql = _source_query(source, group, values, req, clock, lo, hi)
        frames.append(con.sql(sql).pl())
    out = frames[0]
    for other in frames[1:]:
        if keys:
            out = out.join(other, on=keys, how="full", coalesce=True, nulls_equal=True)
        else:
            out = pl.concat([out, other], how="horizontal")
    if keys:
        out = out.sort(keys, nulls_last=True)
    return out.select(keys + [k.id for k in kpis])


def run_report(directory: Any, req: ReportRequest) -> Report:
    kpis, values = validate(req)
    with open_catalog(directory) as con:
        meta_row = read_meta(con)
        tz = meta_row["timezone"]
        lo = req.date_from.isoformat() if req.date_from else None
        hi = (req.date_to + timedelta(days=1)).isoformat() if req.date_to else None
        frame = _run(con, kpis, values, req, tz, lo, hi)
        if req.compare:
            frame = _compare(con, frame, kpis, values, req, tz, lo, hi)
    meta = {
        "kpis": {k.id: {"version": k.version, "source": k.source, "params": values[k.id]}
                 for k in kpis},
        "attribution": req.attribution,
        "attribution_note": "work orders count when opened; agent time is split across intervals",
        "by": req.by, "interval": req.interval,
        "from": req.date_from.isoformat() if req.date_from else None,
        "to": req.date_to.isoformat() if req.date_to else None,
        "compare": req.compare,
        "timezone": tz,
        "as_of": {"position": meta_row["as_of_position"],
                  "time": meta_row["as_of_time"], "generation": meta_row["generation"]},
    }
    return Report(frame, meta)


def _previous_key(interval: str | None, compare: str) -> pl.Expr:
    """The interval_start of the row a current row is compared with: the
    same local time one month / one year earlier. A day that does not exist
    then (March 31 -> February 31, February 29 -> a common year) has no
    previous row rather than borrowing a neighbour's (offset_by would clamp
    Jan 28-31 all onto Feb 28 and repeat them). Weeks compare with the week
    4 / 52 weeks earlier, so a Monday lines up with a Monday."""
    start = pl.col("interval_start")
    if interval == "week":
        return start.dt.offset_by("-4w" if compare == "mom" else "-52w")
    back = start.dt.offset_by("-" + COMPARES[compare][1])
    return pl.when(back.dt.day() == start.dt.day()).then(back).otherwise(None)


def _shift_bounds(con: Any, interval: str | None, compare: str,
                  bounds: tuple[str | None, str | None]) -> list[str | None]:
    """The period the previous rows come from (same shift as _previous_key;
    a whole-period comparison shifts its from/to by a calendar month/year)."""
    shift = ("28 DAY" if compare == "mom" else "364 DAY") if interval == "week" \
        else COMPARES[compare][0]
    return [con.execute(f"SELECT (TIMESTAMP '{x}' - INTERVAL {shift})::VARCHAR").fetchall()[0][0]
            if x else None for x in bounds]


def _compare(con: Any, frame: pl.DataFrame, kpis: list[Kpi], values: dict[str, dict[str, Any]],
             req: ReportRequest, tz: str, lo: str | None, hi: str | None) -> pl.DataFrame:
    assert req.compare is not None
    shifted = _shift_bounds(con, req.interval, req.compare, (lo, hi))
    prev = _run(con, kpis, values, req, tz, shifted[0], shifted[1])
    prev = prev.rename({k.id: f"{k.id}_prev" for k in kpis})
    dims = [req.by] if req.by else []
    if req.interval:
        # Join each current row on its own previous key: a left join from
        # the current rows, so no row is repeated and none is invented.
        frame = frame.with_columns(_previous_key(req.interval, req.compare).alias("_prev_start"))
        prev = prev.rename({"interval_start": "_prev_start"}).filter(
            pl.col("_prev_start").is_not_null())
        out = frame.join(prev, on=["_prev_start", *dims], how="left", nulls_equal=True)
        out = out.drop("_prev_start")
    elif dims:
        out = frame.join(prev, on=dims, how="left", nulls_equal=True)
    else:
        out = pl.concat([frame, prev], how="horizontal")
    return out.with_columns([(pl.col(k.id) - pl.col(f"{k.id}_prev")).alias(f"{k.id}_change")
                             for k in kpis])


def kpi_ids() -> Iterable[str]:
    return catalog().keys()
