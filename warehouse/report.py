"""The report engine: KPI definitions -> one SQL query per fact -> a table.

A report groups rows by interval and one dimension, and computes every
requested KPI of a fact in the same query (so a report over ten KPIs scans
each fact once). The result carries what it means: definition versions,
parameter values, the attribution policy and the position it is complete up to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable

import polars as pl

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
            [pl.col(c).cast(pl.Utf8) for c, t in self.frame.schema.items()
             if t in (pl.Datetime, pl.Date) or isinstance(t, pl.Datetime)]
        ).to_dicts()
        return {"meta": self.meta, "columns": self.frame.columns, "rows": rows}


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


def _relation(source: str, req: ReportRequest, tz: str, needs: set[str]) -> tuple[str, str]:
    """(FROM clause yielding ts_local plus the dimension columns, extra WHERE)."""
    if source == "call":
        base = "fact_call"
        if "next_call_gap_s" in needs:
            base = ("(SELECT *, epoch(lead(offered_at) OVER (PARTITION BY caller_hash "
                    "ORDER BY offered_at, call_id) - offered_at) AS next_call_gap_s FROM fact_call)")
        skill = (", unnest(CASE WHEN len(coalesce(c.skills, [])) = 0 THEN ['(none)'] ELSE c.skills END) AS skill"
                 if req.by == "skill" else "")
        ts = ATTRIBUTION_COLUMN["call"][req.attribution]
        return (f"(SELECT c.*, a.employee_no AS agent, a.team AS team{skill}, "
                f"(({ts}) AT TIME ZONE '{tz}') AS ts_local, meta.as_of_time "
                f"FROM {base} c LEFT JOIN dim_agent a ON a.agent_id = c.answer_agent_id, "
                f"warehouse_meta meta)", "")
    if source == "leg":
        ts = ATTRIBUTION_COLUMN["leg"][req.attribution]
        return (f"(SELECT l.*, a.employee_no AS agent, a.team AS team, "
                f"(({ts}) AT TIME ZONE '{tz}') AS ts_local "
                f"FROM fact_leg l LEFT JOIN dim_agent a ON a.agent_id = l.agent_id)", "")
    if source == "work_order":
        return (f"(SELECT w.*, (opened_at AT TIME ZONE '{tz}') AS ts_local, meta.as_of_time "
                f"FROM fact_work_order w, warehouse_meta meta)", "")
    raise AssertionError(source)


def _agent_relation(req: ReportRequest, tz: str, lo: str | None, hi: str | None) -> str:
    """Agent state intervals cut at interval boundaries (and at from/to), so
    a long shift contributes to every interval it spans."""
    skill = (", unnest(CASE WHEN len(coalesce(a.skills, [])) = 0 THEN ['(none)'] "
             "ELSE a.skills END) AS skill" if req.by == "skill" else "")
    spans = (f"SELECT s.*, a.employee_no AS agent, a.team AS team{skill}, "
             f"(s.started_at AT TIME ZONE '{tz}') AS ls, "
             f"(coalesce(s.ended_at, greatest(meta.as_of_time, s.started_at)) AT TIME ZONE '{tz}') AS le "
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
                  req: ReportRequest, tz: str, lo: str | None, hi: str | None) -> str:
    exprs = ", ".join(f"({k.render(values[k.id])}) AS {k.id}" for k in kpis)
    dim = f"{DIMENSION_COLUMN[source][req.by]} AS {req.by}, " if req.by else ""
    group = "GROUP BY ALL" if (req.by or req.interval) else ""
    if source == "agent":
        rel = _agent_relation(req, tz, lo, hi)
        bucket = "bucket AS interval_start, " if req.interval else ""
        return f"SELECT {bucket}{dim}{exprs} FROM {rel} WHERE dur_s > 0 {group}"
    needs = {n for k in kpis for n in k.needs}
    rel, _ = _relation(source, req, tz, needs)
    where = ["ts_local IS NOT NULL"]
    if lo:
        where.append(f"ts_local >= TIMESTAMP '{lo}'")
    if hi:
        where.append(f"ts_local < TIMESTAMP '{hi}'")
    bucket = (INTERVALS[req.interval][0].format(ts="ts_local") + " AS interval_start, "
              if req.interval else "")
    return f"SELECT {bucket}{dim}{exprs} FROM {rel} WHERE {' AND '.join(where)} {group}"


def _run(con: Any, kpis: list[Kpi], values: dict[str, dict[str, Any]], req: ReportRequest,
         tz: str, lo: str | None, hi: str | None) -> pl.DataFrame:
    keys = (["interval_start"] if req.interval else []) + ([req.by] if req.by else [])
    frames = []
    for source in ("call", "leg", "agent", "work_order"):
        group = [k for k in kpis if k.source == source]
        if not group:
            continue
        sql = _source_query(source, group, values, req, tz, lo, hi)
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


def _compare(con: Any, frame: pl.DataFrame, kpis: list[Kpi], values: dict[str, dict[str, Any]],
             req: ReportRequest, tz: str, lo: str | None, hi: str | None) -> pl.DataFrame:
    sql_shift, pl_shift = COMPARES[req.compare]
    shifted = [con.execute(f"SELECT (TIMESTAMP '{x}' - INTERVAL {sql_shift})::VARCHAR").fetchall()[0][0]
               if x else None for x in (lo, hi)]
    prev = _run(con, kpis, values, req, tz, shifted[0], shifted[1])
    keys = (["interval_start"] if req.interval else []) + ([req.by] if req.by else [])
    if req.interval:
        prev = prev.with_columns(pl.col("interval_start").dt.offset_by(pl_shift))
    prev = prev.rename({k.id: f"{k.id}_prev" for k in kpis})
    if keys:
        out = frame.join(prev, on=keys, how="left", nulls_equal=True)
    else:
        out = pl.concat([frame, prev], how="horizontal")
    return out.with_columns([(pl.col(k.id) - pl.col(f"{k.id}_prev")).alias(f"{k.id}_change")
                             for k in kpis])


def kpi_ids() -> Iterable[str]:
    return catalog().keys()
