"""Publishing: month partitions as Parquet plus a read-only catalog file.

DuckDB lets one process hold a database file for writing and no other
process may open it meanwhile, not even read-only. So readers (the API,
Superset, notebooks, the CLI) never touch ``loader.duckdb``; they open
``catalog.duckdb``, a small file of views over immutable Parquet files.

* Every Parquet file is written once under a new name and never changed.
* A publish writes the changed month partitions, builds the next catalog in
  a temporary file and renames it over ``catalog.duckdb`` (atomic on POSIX).
  A reader that opened the previous catalog keeps a consistent snapshot.
* Files no catalog references any more are deleted after a grace period, so
  a query started on the previous catalog can still finish.
"""

from __future__ import annotations

import os
import time
import tomllib
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from warehouse.db import run
import pyarrow as pa

FACTS = {
    # fact -> (time column that picks the month partition, ordering key)
    "fact_call": ("offered_at", "first_position"),
    "fact_leg": ("alerted_at", "first_position"),
    "fact_agent_state": ("started_at", "start_position"),
    "fact_work_order": ("opened_at", "first_position"),
}
GRACE_SECONDS = 600
# Snappy rather than zstd: the files are bigger (about 1.5x) but a year-long
# report scans them about twice as fast (bench/warehouse.py).
CATALOG = "catalog.duckdb"

MANIFEST_SQL = """
CREATE TABLE IF NOT EXISTS published_file (fact VARCHAR, month VARCHAR, path VARCHAR);
"""


def _month_expr(column: str) -> str:
    return f"coalesce(strftime({column}, '%Y-%m'), 'none')"


def publish(con: duckdb.DuckDBPyConnection, directory: Path, *, timezone: str,
            calendar: Any | None = None) -> int:
    directory = Path(directory)
    run(con, MANIFEST_SQL)
    state = run(con, 
        "SELECT position, as_of_time, published_position, generation FROM loader_state"
    )[0]
    position, as_of_time, published_position, generation = state
    dirty = run(con, "SELECT DISTINCT fact, month FROM dirty_month ORDER BY ALL")
    if not dirty and position == published_position and (directory / CATALOG).exists():
        return int(generation)
    generation = int(generation) + 1
    tag = f"g{generation:06d}-{uuid.uuid4().hex[:8]}"
    written: list[tuple[str, str, str]] = []
    for fact, month in dirty:
        time_col, order = FACTS[fact]
        count = run(con, 
            f"SELECT count(*) FROM {fact} WHERE {_month_expr(time_col)} = ?", [month]
        )[0][0]
        if count == 0:
            continue
        target = directory / "parquet" / fact / f"month={month}" / f"{tag}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        run(con, 
            f"COPY (SELECT * FROM {fact} WHERE {_month_expr(time_col)} = '{month}' ORDER BY {order}) "
            f"TO '{target}' (FORMAT parquet, COMPRESSION snappy)"
        )
        written.append((fact, month, str(target)))
    # Events are append-only: each publish adds the new ones, month by month.
    new_events = run(con, 
        f"SELECT DISTINCT {_month_expr('occurred_at')} FROM events WHERE position > ?",
        [published_position])
    event_files: list[tuple[str, str, str]] = []
    for (month,) in new_events:
        target = directory / "parquet" / "events" / f"month={month}" / f"{tag}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        run(con, 
            f"COPY (SELECT * FROM events WHERE position > {int(published_position)} "
            f"AND {_month_expr('occurred_at')} = '{month}' ORDER BY position) "
            f"TO '{target}' (FORMAT parquet, COMPRESSION snappy)"
        )
        event_files.append(("events", month, str(target)))

    # The catalog is written first (DuckDB cannot write two files in one
    # transaction); a crash before the commit below only means the same
    # dirty months are published again next time, under new file names.
    dirty_set = set(dirty)
    manifest = [row for row in run(con, "SELECT fact, month, path FROM published_file")
                if (row[0], row[1]) not in dirty_set] + written + event_files
    files: dict[str, list[str]] = {}
    for fact, month, path in sorted(manifest, key=lambda r: (r[0], r[1], r[2])):
        files.setdefault(fact, []).append(path)
    _write_catalog(con, directory, files, generation=generation, position=position,
                   as_of_time=as_of_time, timezone=timezone, calendar=calendar)
    run(con, "BEGIN TRANSACTION")
    try:
        run(con, "DELETE FROM published_file")
        if manifest:
            con.executemany("INSERT INTO published_file VALUES (?, ?, ?)", manifest).fetchall()
        run(con, "DELETE FROM dirty_month")
        run(con, "UPDATE loader_state SET generation = ?, published_position = ?",
            [generation, position])
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise
    _collect_garbage(con, directory)
    return generation


def _write_catalog(con: duckdb.DuckDBPyConnection, directory: Path, files: dict[str, list[str]],
                   *, generation: int, position: int, as_of_time: Any, timezone: str,
                   calendar: Any | None) -> None:
    tmp = directory / f".catalog-{generation:06d}-{uuid.uuid4().hex[:8]}.duckdb"
    run(con, f"ATTACH '{tmp}' AS cat")
    try:
        for fact in list(FACTS) + ["events"]:
            paths = files.get(fact)
            if paths:
                listing = ", ".join(f"'{p}'" for p in paths)
                run(con, f"CREATE VIEW cat.{fact} AS SELECT * FROM read_parquet([{listing}], hive_partitioning = false)")
            else:
                run(con, f"CREATE TABLE cat.{fact} AS SELECT * FROM main.{fact} LIMIT 0")
        run(con, "CREATE TABLE cat.dim_agent AS SELECT * FROM main.dim_agent ORDER BY agent_id")
        run(con, "CREATE VIEW cat.dim_team AS SELECT DISTINCT team FROM dim_agent")
        run(con, "CREATE VIEW cat.dim_queue AS SELECT DISTINCT queue FROM ("
                    "SELECT queue FROM fact_call UNION SELECT last_queue FROM fact_call "
                    "UNION SELECT queue FROM fact_leg) WHERE queue IS NOT NULL")
        run(con, "CREATE VIEW cat.dim_department AS SELECT DISTINCT department "
                    "FROM fact_work_order WHERE department IS NOT NULL")
        bounds = run(con, "SELECT min(occurred_at), max(occurred_at) FROM main.events")[0]
        con.register("calendar_rows", _calendar(bounds, calendar))
        run(con, "CREATE TABLE cat.dim_calendar AS SELECT * FROM calendar_rows")
        con.unregister("calendar_rows")
        run(con, 
            "CREATE TABLE cat.warehouse_meta AS SELECT ?::BIGINT AS generation, "
            "?::BIGINT AS as_of_position, ?::TIMESTAMPTZ AS as_of_time, "
            "now() AS published_at, ?::VARCHAR AS timezone, ?::VARCHAR AS calendar",
            [generation, position, as_of_time, timezone,
             getattr(calendar, "name", None) or "weekdays (Mon-Fri)"])
    finally:
        run(con, "DETACH cat")
    os.replace(tmp, directory / CATALOG)


def _calendar(bounds: tuple[Any, Any], calendar: Any | None) -> pa.Table:
    lo, hi = bounds
    if lo is None:
        days: list[date] = []
    else:
        start = lo.date() - timedelta(days=1)
        end = hi.date() + timedelta(days=1)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]

    def working(d: date) -> bool:
        if calendar is not None:
            return bool(calendar.is_working_day(d))
        return d.weekday() < 5

    return pa.table({
        "date": pa.array(days, pa.date32()),
        "year": [d.year for d in days],
        "month": [d.month for d in days],
        "iso_week": [d.isocalendar()[1] for d in days],
        "weekday": [d.isoweekday() for d in days],
        "is_working_day": [working(d) for d in days],
    })


def _collect_garbage(con: duckdb.DuckDBPyConnection, directory: Path) -> None:
    live = {row[0] for row in run(con, "SELECT path FROM published_file")}
    now = time.time()
    root = directory / "parquet"
    for path in root.rglob("*.parquet") if root.exists() else ():
        if str(path) not in live and now - path.stat().st_mtime > GRACE_SECONDS:
            path.unlink(missing_ok=True)
    for path in directory.glob(".catalog-*.duckdb"):
        if now - path.stat().st_mtime > GRACE_SECONDS:
            path.unlink(missing_ok=True)


def load_calendar(path: Path | None = None, timezone: str = "Asia/Shanghai") -> Any | None:
    """The working-day calendar of the work-orders area, when present."""
    try:
        from domain.calendar import WorkingCalendar
    except ImportError:
        return None
    if path is None:
        path = Path(__file__).resolve().parent.parent / "lianxin" / "config" / "calendar_cn.toml"
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        return WorkingCalendar.from_mapping(tomllib.load(fh), timezone=timezone)
