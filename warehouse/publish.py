"""Publishing: month partitions as Parquet plus a read-only catalog file.

DuckDB lets one process hold a database file for writing and no other
process may open it meanwhile, not even read-only. So readers (the API,
Superset, notebooks, the CLI) never touch ``loader.duckdb``; they open
``catalog.duckdb``: the facts as native tables, one per month, and views
over the immutable event Parquet files.

* Every Parquet file is written once under a new name in ``files/`` and
  never changed; catalogs reference the event files by those paths.
* A publish writes the changed month partitions, builds the next catalog in
  a temporary file (a copy of the current one, with the changed months
  written again) and renames it over ``catalog.duckdb`` (atomic on POSIX).
  A reader that opened the previous catalog keeps a consistent snapshot.
* ``parquet/`` is the interchange tree for engines that glob a directory
  (Trino, Spark, DuckDB elsewhere): hard links of exactly the current files,
  one ``data.parquet`` per fact month (replaced atomically) and the event
  files. Files a catalog may still read but that are no longer current are
  never in it, so a glob sees every row once.
* A file leaves the manifest ("retires") when a publish replaces its month;
  the retirement time is recorded in the loader's file, and the file is
  deleted once it has been retired for the grace period, so a query started
  on an older catalog can still finish. Counting from the file's creation
  instead would delete a long-lived month file the moment it is replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import tomllib
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa

from warehouse.db import run

log = logging.getLogger(__name__)

FACTS = {
    # fact -> (time column that picks the month partition, ordering key)
    "fact_call": ("offered_at", "first_position"),
    "fact_leg": ("alerted_at", "first_position"),
    "fact_agent_state": ("started_at", "start_position"),
    "fact_work_order": ("opened_at", "first_position"),
}
# A file no catalog references any more is deleted this long after it was
# retired (not after it was written): a reader holding an older catalog has
# at least this long to finish with it.
GRACE_SECONDS = 600
# Facts: Snappy rather than zstd: the files are bigger (about 1.5x) but a
# year-long report scans them about twice as fast (bench/warehouse.py); and
# Parquet's version 2 encodings (delta for times and integers, byte stream
# split for durations): a quarter smaller and a tenth faster to scan than
# version 1 on fractional durations (docs/performance.md). pyarrow, polars,
# Spark 3.3+ and Trino read them.
# Events (mostly JSON payloads, rarely scanned): zstd at level 1 wrote a
# million of them faster than Snappy (0.57 s against 0.70 s) into half the
# bytes (25 MB against 56 MB).
CODEC = {False: "COMPRESSION snappy, PARQUET_VERSION V2",
         True: "COMPRESSION zstd, COMPRESSION_LEVEL 1"}
CATALOG = "catalog.duckdb"
FILES = "files"      # every file a catalog may reference: immutable, new name per write
TREE = "parquet"     # the interchange tree: hard links of the current files only
FACT_FILE = "data.parquet"  # a fact month's one file in the tree
# The partition column of a publish's one-pass write (only in directory names).
MONTH_KEY = "lianxin_month"

# Facts in the catalog: native DuckDB tables, one per month, in this schema,
# each fact a view over its months. Reports read them about 1.4x faster than
# the same rows in Parquet (docs/performance.md), and a publish rewrites only
# the months that changed in a copy of the previous catalog.
MONTH_SCHEMA = "facts_by_month"
CATALOG_LAYOUT = 2  # 1 (no column): views over Parquet files

MANIFEST_SQL = """
CREATE TABLE IF NOT EXISTS published_file (fact VARCHAR, month VARCHAR, path VARCHAR);
CREATE TABLE IF NOT EXISTS retired_file (path VARCHAR, retired_at TIMESTAMPTZ);
"""


def _month_expr(column: str) -> str:
    return f"coalesce(strftime({column}, '%Y-%m'), 'none')"


def publish(con: duckdb.DuckDBPyConnection, directory: Path, *, timezone: str,
            calendar: Any | None = None) -> int:
    directory = Path(directory)
    run(con, "SET TimeZone = 'UTC'")  # month partitions are UTC months
    run(con, MANIFEST_SQL)
    state = run(con, 
        "SELECT position, as_of_time, published_position, generation FROM loader_state"
    )[0]
    position, as_of_time, published_position, generation = state
    dirty = run(con, "SELECT DISTINCT fact, month FROM dirty_month ORDER BY ALL")
    if not dirty and position == published_position and (directory / CATALOG).exists():
        # Nothing new, but a crash may have cut the last publish short after
        # its commit: bring the tree and the garbage up to date anyway.
        manifest = run(con, "SELECT fact, month, path FROM published_file")
        _collect_garbage(con, directory, _sync_tree(directory, manifest))
        return int(generation)
    committed = int(generation)
    generation = committed + 1
    tag = f"g{generation:06d}-{uuid.uuid4().hex[:8]}"
    months: dict[str, list[str]] = {}
    for fact, month in dirty:
        months.setdefault(fact, []).append(month)
    written: list[tuple[str, str, str]] = []
    for fact, fact_months in months.items():
        time_col, order = FACTS[fact]
        listing = ", ".join(f"'{m}'" for m in fact_months)
        written += _write_months(
            con, directory, fact, tag,
            f"SELECT * FROM {fact} WHERE {_month_expr(time_col)} IN ({listing}) ORDER BY {order}",
            _month_expr(time_col), one_per_month=True)
    # Events are append-only: each publish adds the new ones, month by month.
    # Not sorted: the loader appends them in position order, which DuckDB's
    # write keeps within each thread's run, and sorting a million payloads
    # cost more than the rest of a publish; readers order by position.
    event_files = _write_months(
        con, directory, "events", tag,
        f"SELECT * FROM events WHERE position > {int(published_position)}",
        _month_expr("occurred_at"), one_per_month=False)

    # The catalog is written first (DuckDB cannot write two files in one
    # transaction); a crash before the commit below only means the same
    # dirty months are published again next time, under new file names.
    dirty_set = set(dirty)
    previous = run(con, "SELECT fact, month, path FROM published_file")
    manifest = [row for row in previous if (row[0], row[1]) not in dirty_set] + written + event_files
    retired = sorted({row[2] for row in previous} - {row[2] for row in manifest})
    files: dict[str, list[str]] = {}
    for fact, month, path in sorted(manifest, key=lambda r: (r[0], r[1], r[2])):
        files.setdefault(fact, []).append(path)
    _write_catalog(con, directory, files, dirty=dirty_set, generation=generation,
                   committed=committed, position=position, as_of_time=as_of_time,
                   timezone=timezone, calendar=calendar)
    run(con, "BEGIN TRANSACTION")
    try:
        run(con, "DELETE FROM published_file")
        if manifest:
            con.executemany("INSERT INTO published_file VALUES (?, ?, ?)", manifest).fetchall()
        _retire(con, retired)
        run(con, "DELETE FROM dirty_month")
        run(con, "UPDATE loader_state SET generation = ?, published_position = ?",
            [generation, position])
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise
    _collect_garbage(con, directory, _sync_tree(directory, manifest))
    return generation


def _write_months(con: duckdb.DuckDBPyConnection, directory: Path, fact: str, tag: str,
                  query: str, month_expr: str, *, one_per_month: bool) -> list[tuple[str, str, str]]:
    """Write the query's rows as Parquet, one file per month (or several for
    events), in one pass: a COPY per month scanned the whole table once per
    month, most of a publish's time. DuckDB writes into a staging directory
    of this publish; the files are then moved to their names in ``files/``.
    A fact month is one file (the tree links it as ``data.parquet``): should
    DuckDB split one, that month is written again on its own."""
    staging = directory / FILES / f".staging-{tag}" / fact
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    rows = run(con,
        f"COPY (SELECT *, {month_expr} AS {MONTH_KEY} FROM ({query})) TO '{staging}' "
        f"(FORMAT parquet, {CODEC[fact == 'events']}, PARTITION_BY ({MONTH_KEY}), "
        f"FILENAME_PATTERN '{tag}_{{i}}', RETURN_FILES true)")
    by_month: dict[str, list[Path]] = {}
    for name in (rows[0][1] if rows and rows[0][0] else []):
        path = Path(name)
        by_month.setdefault(path.parent.name.split("=", 1)[1], []).append(path)
    out: list[tuple[str, str, str]] = []
    for month, paths in sorted(by_month.items()):
        folder = directory / FILES / fact / f"month={month}"
        folder.mkdir(parents=True, exist_ok=True)
        if one_per_month and len(paths) > 1:
            target = folder / f"{tag}.parquet"
            run(con, f"COPY (SELECT * FROM ({query}) WHERE {month_expr} = '{month}') "
                     f"TO '{target}' (FORMAT parquet, {CODEC[False]})")
            out.append((fact, month, str(target)))
            continue
        for k, path in enumerate(sorted(paths)):
            target = folder / (f"{tag}.parquet" if len(paths) == 1 else f"{tag}_{k}.parquet")
            os.replace(path, target)
            out.append((fact, month, str(target)))
    shutil.rmtree(staging.parent, ignore_errors=True)
    return out


def _write_catalog(con: duckdb.DuckDBPyConnection, directory: Path, files: dict[str, list[str]],
                   *, dirty: set[tuple[str, str]], generation: int, committed: int,
                   position: int, as_of_time: Any, timezone: str, calendar: Any | None) -> None:
    tmp = directory / f".catalog-{generation:06d}-{uuid.uuid4().hex[:8]}.duckdb"
    try:
        built = _start_catalog(con, directory / CATALOG, tmp, committed)
        for fact, (time_col, order) in FACTS.items():
            _write_fact_months(con, fact, time_col, order, built, dirty)
        paths = files.get("events")
        if paths:
            listing = ", ".join(f"'{p}'" for p in paths)
            run(con, f"CREATE VIEW cat.events AS SELECT * FROM read_parquet([{listing}], hive_partitioning = false)")
        else:
            run(con, "CREATE TABLE cat.events AS SELECT * FROM main.events LIMIT 0")
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
            "now() AS published_at, ?::VARCHAR AS timezone, ?::VARCHAR AS calendar, "
            "?::INTEGER AS catalog_layout",
            [generation, position, as_of_time, timezone,
             getattr(calendar, "name", None) or "weekdays (Mon-Fri)", CATALOG_LAYOUT])
        # Everything on disk before the rename: a reader may open the file
        # the moment it has its name, and DETACH alone may leave the final
        # checkpoint to when DuckDB lets go of the database.
        run(con, "CHECKPOINT cat")
        run(con, "DETACH cat")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        # A failed publish (a full disk, say) must not leave a catalog-sized
        # copy behind each time it is retried, nor ``cat`` attached.
        try:
            run(con, "DETACH DATABASE IF EXISTS cat")
        except duckdb.Error:
            pass
        _discard(tmp)
        raise
    os.replace(tmp, directory / CATALOG)
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform without directory fsync
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _start_catalog(con: duckdb.DuckDBPyConnection, current: Path, tmp: Path,
                   committed: int) -> dict[tuple[str, str], int]:
    """Attach the next catalog as ``cat``, begun as a copy of the current one
    when that holds this loader's last publish (or the one after it, swapped
    in by a publish that crashed before its commit: that one's dirty months
    are still dirty). Returns the fact months it already holds, with their
    row counts; everything but those month tables is dropped, to be written
    again. A catalog that cannot be read, or is not this loader's, is not
    built upon: the next one is written whole."""
    if current.exists():
        shutil.copyfile(current, tmp)
        try:
            run(con, f"ATTACH '{tmp}' AS cat")
            meta = run(con, "SELECT generation, catalog_layout FROM cat.warehouse_meta")
            reusable = bool(meta) and meta[0][1] == CATALOG_LAYOUT and meta[0][0] in (
                committed, committed + 1)
        except duckdb.Error as exc:  # an older layout, a damaged file, a newer DuckDB's
            log.warning("publishing a whole new catalog: the current one is not reusable (%s)",
                        str(exc).splitlines()[0])
            reusable = False
        if reusable:
            for name, kind in run(con,
                    "SELECT table_name, table_type FROM information_schema.tables "
                    "WHERE table_catalog = 'cat' AND table_schema = 'main'"):
                run(con, f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} cat.main.{name}")
            return {_month_of_table(name): run(con,
                        f"SELECT count(*) FROM cat.{MONTH_SCHEMA}.{name}")[0][0]
                    for (name,) in run(con,
                        "SELECT table_name FROM information_schema.tables "
                        f"WHERE table_catalog = 'cat' AND table_schema = '{MONTH_SCHEMA}'")}
        run(con, "DETACH DATABASE IF EXISTS cat")
        _discard(tmp)
    run(con, f"ATTACH '{tmp}' AS cat")
    run(con, f"CREATE SCHEMA cat.{MONTH_SCHEMA}")
    return {}


def _discard(catalog: Path) -> None:
    for path in (catalog, Path(f"{catalog}.wal")):
        path.unlink(missing_ok=True)


def _write_fact_months(con: duckdb.DuckDBPyConnection, fact: str, time_col: str, order: str,
                       built: dict[tuple[str, str], int], dirty: set[tuple[str, str]]) -> None:
    """One native table per month of the fact, and the fact as a view over
    them all. A month is written when it is dirty, new, or its table differs
    from the loader's month in columns or in row count (someone edited the
    published file); the others are kept from the previous catalog."""
    counts = dict(run(con, f"SELECT {_month_expr(time_col)}, count(*) FROM main.{fact} GROUP BY 1"))
    months = sorted(counts)
    columns = _columns(con, run(con, "SELECT current_database()")[0][0], "main", fact)
    kept = {m: n for (f, m), n in built.items() if f == fact}
    rewrite = [m for m in months
               if m not in kept or (fact, m) in dirty or kept[m] != counts[m]
               or _columns(con, "cat", MONTH_SCHEMA, _month_table(fact, m)) != columns]
    gone = [m for m in kept if m not in counts or m in rewrite]
    for month in gone:
        run(con, f"DROP TABLE cat.{MONTH_SCHEMA}.{_month_table(fact, month)}")
    if gone:
        run(con, "CHECKPOINT cat")  # so the months written next reuse the dropped blocks
    for month in rewrite:
        run(con, f"CREATE TABLE cat.{MONTH_SCHEMA}.{_month_table(fact, month)} AS "
                 f"SELECT * FROM main.{fact} WHERE {_month_filter(time_col, month)} ORDER BY {order}")
    if months:
        union = " UNION ALL ".join(
            f"SELECT * FROM {MONTH_SCHEMA}.{_month_table(fact, m)}" for m in months)
        run(con, f"CREATE VIEW cat.{fact} AS {union}")
    else:
        run(con, f"CREATE TABLE cat.{fact} AS SELECT * FROM main.{fact} LIMIT 0")


def _columns(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> Any:
    return run(con, "SELECT list(column_name || ' ' || data_type ORDER BY column_index) "
                    "FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
                    "AND table_name = ?", [database, schema, table])[0][0]


def _month_table(fact: str, month: str) -> str:
    return f"{fact}__{month.replace('-', '_')}"


def _month_of_table(name: str) -> tuple[str, str]:
    fact, _, month = name.rpartition("__")
    return fact, month.replace("_", "-")


def _month_filter(column: str, month: str) -> str:
    """The rows whose ``_month_expr`` is ``month``, as a range the loader's
    zone maps can skip on (the expression itself would be computed per row)."""
    if month == "none":
        return f"{column} IS NULL"
    year, mon = (int(x) for x in month.split("-"))
    nxt = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"
    return (f"{column} >= TIMESTAMPTZ '{month}-01 00:00:00+00' "
            f"AND {column} < TIMESTAMPTZ '{nxt}-01 00:00:00+00'")


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


def _retire(con: duckdb.DuckDBPyConnection, paths: Iterable[str]) -> None:
    """Record when files stopped being current (once: the first time counts)."""
    rows = [(p, datetime.now(timezone.utc)) for p in paths]
    if not rows:
        return
    run(con, "CREATE OR REPLACE TEMP TABLE t_retire (path VARCHAR, retired_at TIMESTAMPTZ)")
    con.executemany("INSERT INTO t_retire VALUES (?, ?)", rows).fetchall()
    run(con, "INSERT INTO retired_file SELECT DISTINCT ON (path) * FROM t_retire "
             "WHERE path NOT IN (SELECT path FROM retired_file)")
    run(con, "DROP TABLE t_retire")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
        sa, sb = a.stat(), b.stat()
    except FileNotFoundError:
        return False
    # A copy (filesystems without hard links) made by copy2 keeps size and mtime.
    return sa.st_size == sb.st_size and sa.st_mtime_ns == sb.st_mtime_ns


def _tree_path(directory: Path, fact: str, month: str, path: str) -> Path:
    # A fact month is rewritten whole, so it has one file under a fixed name
    # that is replaced atomically; events are appended, one file per publish.
    name = Path(path).name if fact == "events" else FACT_FILE
    return directory / TREE / fact / f"month={month}" / name


def _sync_tree(directory: Path, manifest: Iterable[tuple[str, str, str]]) -> list[str]:
    """Make ``parquet/`` hold exactly the manifest's files (hard links, or
    copies where the filesystem has none). Returns tree files the loader did
    not put there (written by the layout before ``files/``, when catalogs
    referenced the tree directly): those are retired, not deleted at once."""
    tree = directory / TREE
    expected = {_tree_path(directory, f, m, p): Path(p) for f, m, p in manifest}
    for dst, src in sorted(expected.items()):
        if _same_file(dst, src):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)  # a glob sees the old month file or the new one, never both
    foreign: list[str] = []
    if not tree.exists():
        return foreign
    for path in tree.rglob(".*.tmp"):  # left by a crash in the loop above
        path.unlink(missing_ok=True)
    for path in sorted(tree.rglob("*.parquet")):
        if path in expected:
            continue
        twin = directory / FILES / path.relative_to(tree)
        if path.name == FACT_FILE or twin.exists():
            path.unlink(missing_ok=True)  # a link: the catalogs read the twin in files/
        else:
            foreign.append(str(path))
    for month_dir in tree.glob("*/month=*"):
        try:
            month_dir.rmdir()  # only when empty
        except OSError:
            pass
    return foreign


def _collect_garbage(con: duckdb.DuckDBPyConnection, directory: Path,
                     foreign: Iterable[str] = ()) -> None:
    live = {row[0] for row in run(con, "SELECT path FROM published_file")}
    root = directory / FILES
    # Unreferenced files nobody retired (written by a publish that crashed
    # before its commit, possibly after its catalog was swapped in; or from
    # before a rebuild) start their grace period when first seen.
    unseen = [str(p) for p in (root.rglob("*.parquet") if root.exists() else ())
              if str(p) not in live]
    _retire(con, [*unseen, *foreign])
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=GRACE_SECONDS)
    expired = [row[0] for row in run(con, "SELECT path FROM retired_file WHERE retired_at < ?",
                                     [cutoff])]
    for path in expired:
        Path(path).unlink(missing_ok=True)
    if expired:
        run(con, "CREATE OR REPLACE TEMP TABLE t_expired (path VARCHAR)")
        con.executemany("INSERT INTO t_expired VALUES (?)", [(p,) for p in expired]).fetchall()
        run(con, "DELETE FROM retired_file WHERE path IN (SELECT path FROM t_expired)")
        run(con, "DROP TABLE t_expired")
    # Staging folders of a publish that crashed: their files were retired
    # above like any unreferenced file; once those are gone, so is the folder
    # (only one loader runs, and its own publish removed its staging folder).
    for staging in (root.glob(".staging-*") if root.exists() else ()):
        if not any(p.is_file() for p in staging.rglob("*")):
            shutil.rmtree(staging, ignore_errors=True)
    # A catalog under construction is never opened by readers: only a crash
    # leaves one behind, and its age is all that matters.
    now = time.time()
    for path in directory.glob(".catalog-*.duckdb*"):  # and a crash's .wal
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
