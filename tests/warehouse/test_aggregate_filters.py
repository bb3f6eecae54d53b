"""The report engine runs ``agg(x) FILTER (WHERE p)`` as ``agg(CASE WHEN p
THEN x END)`` (warehouse/aggregate_filters.py): every KPI of the catalog,
with every choice of its parameters, by every grouping, must give exactly
what the catalog's own FILTER form gives."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

import warehouse.report as report
from warehouse.aggregate_filters import filters_as_case
from warehouse.catalog import catalog
from warehouse.report import ReportRequest, run_report


def test_rewrites_filtered_aggregates_and_leaves_the_rest_as_written() -> None:
    assert filters_as_case("count(*) FILTER (WHERE outcome = 'answered')") == \
        "count(CASE WHEN (outcome = 'answered') THEN 1 END)"
    assert filters_as_case("quantile_cont(wait_s, 0.9) FILTER (WHERE q)") == \
        "quantile_cont(CASE WHEN (q) THEN (wait_s) END, 0.9)"
    assert filters_as_case("count(DISTINCT a) filter (where (b))") == \
        "count(DISTINCT CASE WHEN ((b)) THEN (a) END)"
    # A literal that looks like a FILTER is text, not SQL.
    assert filters_as_case("count(*) FILTER (WHERE x = 'FILTER (WHERE y)')") == \
        "count(CASE WHEN (x = 'FILTER (WHERE y)') THEN 1 END)"
    # Not null-skipping, not an aggregate this module knows, or not followed
    # by the scanner (brackets, comments, an ordered aggregate): as written.
    for sql in ("string_agg(x, ',') FILTER (WHERE y)", "list(x) FILTER (WHERE y)",
                "sum(*) FILTER (WHERE y)", "count(x FILTER (WHERE", "count(*)",
                "sum(x ORDER BY y) FILTER (WHERE p)", "max([x, y][1]) FILTER (WHERE p)",
                "max({'k': x}.k) FILTER (WHERE p)", "avg(x) FILTER (WHERE p -- why\n)"):
        assert filters_as_case(sql) == sql


@pytest.mark.parametrize("expr", [
    "count(DISTINCT(x)) FILTER (WHERE p)", "count(DISTINCT\nx) FILTER (WHERE p)",
    "count(distinct\tx) FILTER (WHERE p)", "count(ALL x) FILTER (WHERE p)",
    "count(*) FILTER (WHERE p)", "avg(x + y) FILTER (WHERE y = 1)",
    "quantile_cont(x, 0.9) FILTER (WHERE p)", "count(DISTINCT s) FILTER (WHERE NOT p)",
    "sum(x ORDER BY y) FILTER (WHERE p)", "max([x, y][1]) FILTER (WHERE p)",
    "avg(x) FILTER (WHERE p -- why\n)", "min(s) FILTER (WHERE p AND y IS NULL)",
])
def test_rewritten_sql_runs_and_gives_the_same_value(expr: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range % 7 AS x, CASE WHEN range % 5 > 0 THEN "
                "range % 3 END AS y, range % 2 = 0 AS p, 'a' || (range % 4) AS s FROM range(100)")
    for where in ("", " WHERE x > 100"):  # some rows, and none
        assert con.execute(f"SELECT {filters_as_case(expr)} FROM t{where}").fetchall() == \
            con.execute(f"SELECT {expr} FROM t{where}").fetchall()


def _choices(kpi) -> list[dict[str, str]]:
    names = [n for n, p in kpi.params.items() if p.type == "choice"]
    combos = itertools.product(*(sorted(kpi.params[n].choices) for n in names))
    return [dict(zip(names, c)) for c in combos] or [{}]


def _report(lx, kpi: str, params: dict[str, str], by: str | None, interval: str | None,
            date_from: str) -> pl.DataFrame:
    req = ReportRequest(kpis=[kpi], by=by, interval=interval, date_from=date_from,
                        date_to=date_from,
                        params={f"{kpi}.{k}": v for k, v in params.items()})
    return run_report(lx.settings.warehouse_dir, req).frame


@pytest.mark.parametrize("by, interval", [(None, None), ("queue", "30m"), ("agent", "day"),
                                          ("team", None)])
def test_every_kpi_gives_what_its_filter_form_gives(small_day_sqlite, monkeypatch, by,
                                                    interval) -> None:
    lx, _ = small_day_sqlite
    compared: set[str] = set()
    for kpi in catalog().values():
        for params in _choices(kpi):
            # The small day, and a day with no calls at all (empty groups).
            for day in ("2026-03-02", "2026-03-09"):
                try:
                    rewritten = _report(lx, kpi.id, params, by, interval, day)
                except report.ReportError:
                    continue  # a combination the catalog refuses, in both forms
                monkeypatch.setattr(report, "filters_as_case", lambda sql: sql)
                as_written = _report(lx, kpi.id, params, by, interval, day)
                monkeypatch.undo()
                assert rewritten.equals(as_written), (kpi.id, params, by, interval, day)
                compared.add(kpi.id)
    # Every KPI ungrouped; a grouping some sources do not have still covers most.
    assert len(compared) == len(catalog()) if by is None else len(compared) > len(catalog()) // 2
