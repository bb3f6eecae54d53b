"""Publishing: a retired Parquet file outlives the catalogs that may read it
by the grace period counted from its retirement, and the `parquet/` tree
holds exactly what the newest catalog reads (what Trino/Spark/DuckDB see
when they glob it)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from bench.warehouse import fill_store
from commands import messages as m
from lianxin.wiring import build
from tests.conftest import make_settings
from tests.warehouse.helpers import tree_equals_catalog
from warehouse.publish import FILES, GRACE_SECONDS, MONTH_SCHEMA, TREE
from warehouse.reader import open_catalog
from warehouse.service import load

CST = timezone(timedelta(hours=8))


def _offer(lx, name: str, day: int, hour: int, month: int = 3) -> None:
    lx.commands.handle(m.OfferCall(external_id=name, dialed_number="95598",
                                   occurred_at=datetime(2026, month, day, hour, tzinfo=CST)))


def _backdate_files(directory: Path, seconds: float) -> None:
    old = time.time() - seconds
    for p in (directory / FILES).rglob("*.parquet"):
        os.utime(p, (old, old))


def _backdate_retirements(directory: Path, seconds: float) -> None:
    con = duckdb.connect(str(directory / "loader.duckdb"))
    con.execute(f"UPDATE retired_file SET retired_at = retired_at - INTERVAL {int(seconds)} SECOND"
                ).fetchall()
    con.close()


def _retired(directory: Path) -> dict[str, datetime]:
    con = duckdb.connect(str(directory / "loader.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT path, retired_at FROM retired_file").fetchall())
    finally:
        con.close()


def test_a_replaced_file_lives_for_the_grace_period_after_its_retirement(tmp_path: Path):
    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _offer(lx, "a", 2, 10)
        load(lx)
        # The month file was written long ago (an old, quiet month): its age
        # says nothing about how long readers of the current catalog need it.
        _backdate_files(wd, 3 * GRACE_SECONDS)
        first = {str(p) for p in (wd / FILES / "fact_call").rglob("*.parquet")}
        with open_catalog(wd) as reader:
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(1,)]
            _offer(lx, "b", 2, 11)
            load(lx)  # the same month is published again: the first file retires
            # The reader still sees its own snapshot, whole.
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(1,)]
        retired = _retired(wd)
        assert first <= set(retired)
        assert all(datetime.now(timezone.utc) - t < timedelta(seconds=60) for t in retired.values())
        assert all(Path(p).exists() for p in first)
        load(lx)  # a publish inside the grace period keeps it
        assert all(Path(p).exists() for p in first)
        _backdate_retirements(wd, GRACE_SECONDS + 60)
        load(lx)  # nothing new to load; the garbage is still collected
        assert not any(Path(p).exists() for p in first)
        assert not first & set(_retired(wd))
        with open_catalog(wd) as reader:
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(2,)]
    finally:
        lx.close()


def test_unreferenced_files_nobody_retired_get_a_grace_period_when_first_seen(tmp_path: Path):
    """A publish that crashed after swapping its catalog in (before its
    commit) leaves files a reader may be using; so does the tree layout from
    before `files/`, whose catalogs read `parquet/` directly."""
    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _offer(lx, "a", 2, 10)
        load(lx)
        current = next((wd / FILES / "fact_call").rglob("*.parquet"))
        orphan = current.with_name("g999999-crashed.parquet")
        legacy = wd / TREE / "fact_call" / current.parent.name / "g000001-oldlayout.parquet"
        shutil.copy(current, orphan)
        shutil.copy(current, legacy)
        old = time.time() - 3 * GRACE_SECONDS
        for p in (orphan, legacy):
            os.utime(p, (old, old))
        _offer(lx, "b", 3, 10, month=4)  # another month: March's file stays current
        load(lx)
        assert orphan.exists() and legacy.exists()
        assert {str(orphan), str(legacy)} <= set(_retired(wd))
        _backdate_retirements(wd, GRACE_SECONDS + 60)
        load(lx)
        assert not orphan.exists() and not legacy.exists()
        assert current.exists()  # still the current file of its month
    finally:
        lx.close()


def test_a_glob_over_the_tree_sees_what_the_catalog_sees(tmp_path: Path):
    home = tmp_path / "home"
    lx = build(make_settings(home))
    try:
        fill_store(lx.app.recorder, calls=60, agents=4)  # a year: every month, agents throughout
        wd = lx.settings.warehouse_dir
        # Small batches, a publish after each: months are replaced many
        # times and every publish appends event files.
        for round_ in range(4):
            load(lx, batch_size=45, publish_every=1)
            tree_equals_catalog(wd)
            _offer(lx, f"late-{round_}", 2, 9)
        load(lx)
        tree_equals_catalog(wd)
        load(lx, rebuild=True, batch_size=200)  # every file replaced under new names
        tree_equals_catalog(wd)
        files = list((wd / TREE).rglob("*.parquet"))
        assert len({p.parent for p in files if "fact_call" in p.parts}) >= 12
        # The tree holds links to the catalog's files, never copies of retired ones.
        assert all(p.stat().st_nlink >= 2 for p in files)
    finally:
        lx.close()


def test_a_reader_of_the_old_catalog_survives_a_rebuild(tmp_path: Path):
    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _offer(lx, "a", 2, 10)
        load(lx)
        _backdate_files(wd, 3 * GRACE_SECONDS)
        with open_catalog(wd) as reader:
            load(lx, rebuild=True)
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(1,)]
            assert reader.execute("SELECT count(*) FROM events").fetchall() == [(1,)]
    finally:
        lx.close()


def _plain(value):
    # each reader has its own Python type for a UUID and a zone
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, bytes) and len(value) == 16:
        return value.hex()
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return uuid.UUID(value).hex  # DuckDB hands a UUID to Arrow as text
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return value


def test_the_parquet_tree_reads_the_same_in_pyarrow_and_polars(tmp_path: Path):
    # The tree is the interchange for engines other than DuckDB: the files
    # (Parquet version 2 encodings for facts) must read, value for value, in
    # readers that do not share DuckDB's code.
    import polars as pl
    import pyarrow.parquet as pq

    home = tmp_path / "home"
    lx = build(make_settings(home))
    try:
        fill_store(lx.app.recorder, calls=60, agents=4)
        load(lx)
        wd = lx.settings.warehouse_dir
        con = duckdb.connect()
        checked = 0
        for path in sorted((wd / TREE).rglob("*.parquet")):
            expected = con.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning = false)").to_arrow_table()
            by_arrow = pq.read_table(path)
            assert by_arrow.num_rows == expected.num_rows > 0
            assert by_arrow.column_names == expected.column_names
            want = _plain(expected.to_pylist())
            assert _plain(by_arrow.to_pylist()) == want, path
            assert _plain(pl.read_parquet(path).to_dicts()) == want, path
            checked += 1
        con.close()
        assert checked >= 12
    finally:
        lx.close()


def _load_months(lx, *months: int) -> None:
    """One call offered in each month of 2026, then loaded and published."""
    for month in months:
        _offer(lx, f"m{month}", 2, 10, month=month)
    load(lx)


def _month_tables(wd: Path) -> set[str]:
    con = duckdb.connect(str(wd / "catalog.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = '{MONTH_SCHEMA}' AND table_name LIKE 'fact_call__%'").fetchall()}
    finally:
        con.close()


def test_facts_are_native_month_tables_and_a_publish_rewrites_only_changed_months(
        tmp_path: Path, monkeypatch):
    # A year of facts is most of the catalog; a publish every minute must
    # cost the months that changed, not the year.
    import warehouse.publish as publish

    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _load_months(lx, 1, 2, 3)
        assert _month_tables(wd) == {"fact_call__2026_01", "fact_call__2026_02", "fact_call__2026_03"}
        statements: list[str] = []
        real_run = publish.run

        def spy(con, sql, params=None):
            statements.append(sql)
            return real_run(con, sql, params)

        monkeypatch.setattr(publish, "run", spy)
        _offer(lx, "m2-late", 20, 10, month=2)
        load(lx)
        written = {s.split()[2] for s in statements if s.startswith(f"CREATE TABLE cat.{MONTH_SCHEMA}.")}
        assert written == {f"cat.{MONTH_SCHEMA}.fact_call__2026_02"}
        tree_equals_catalog(wd)
        with open_catalog(wd) as reader:
            assert reader.execute(
                "SELECT strftime(offered_at, '%m'), count(*) FROM fact_call GROUP BY 1 ORDER BY 1"
            ).fetchall() == [("01", 1), ("02", 2), ("03", 1)]
    finally:
        lx.close()


def _tamper(wd: Path, *statements: str) -> None:
    """Change the published catalog the way a hand would: in a copy swapped
    in (this process may hold the current one open for reading)."""
    stale = wd / "tampered-catalog.duckdb"
    shutil.copyfile(wd / "catalog.duckdb", stale)
    con = duckdb.connect(str(stale))
    for sql in statements:
        con.execute(sql).fetchall()
    con.close()
    os.replace(stale, wd / "catalog.duckdb")


def test_a_catalog_the_loader_did_not_publish_last_is_not_built_upon(tmp_path: Path):
    # A catalog of another layout or generation (an older release, a copy put
    # back by hand) may hold months that differ from the loader's: the next
    # publish writes every month again instead of keeping them.
    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _load_months(lx, 1, 2)
        _tamper(wd, f"DELETE FROM {MONTH_SCHEMA}.fact_call__2026_01",
                "UPDATE warehouse_meta SET generation = generation + 7")
        _offer(lx, "m2-late", 20, 10, month=2)
        load(lx)
        tree_equals_catalog(wd)
        with open_catalog(wd) as reader:
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(3,)]

        # The layout before native month tables: views over Parquet files.
        _tamper(wd, "ALTER TABLE warehouse_meta DROP COLUMN catalog_layout")
        _offer(lx, "m1-late", 21, 10, month=1)
        load(lx)
        tree_equals_catalog(wd)
        assert _month_tables(wd) == {"fact_call__2026_01", "fact_call__2026_02"}
        with open_catalog(wd) as reader:
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(4,)]
    finally:
        lx.close()


def _open_deleted_catalogs(wd: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    out = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(wd.resolve())) and target.endswith(" (deleted)"):
            out.append(target)
    return out


def test_a_long_lived_reader_process_follows_every_publish_and_lets_old_catalogs_go(tmp_path: Path):
    # The API keeps the catalog attached between reports (a warm buffer
    # pool); it must still see each new generation, and a replaced catalog's
    # disk space must come back once nobody reads it.
    from warehouse.service import status

    if not Path("/proc/self/fd").exists():
        import pytest

        pytest.skip("needs /proc to see open files")
    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _offer(lx, "a", 2, 10)
        load(lx)
        assert status(wd)["rows"]["fact_call"] == 1
        with open_catalog(wd) as held:
            for n in (2, 3):
                _offer(lx, f"call-{n}", 2, 10 + n)
                load(lx)
                assert status(wd)["rows"]["fact_call"] == n
            # The held connection keeps its own generation, and its file.
            assert held.execute("SELECT count(*) FROM fact_call").fetchall() == [(1,)]
            assert _open_deleted_catalogs(wd)
        assert not _open_deleted_catalogs(wd)
        assert status(wd)["rows"]["fact_call"] == 3
    finally:
        lx.close()


def test_an_edited_or_unreadable_catalog_is_replaced_and_a_failed_publish_leaves_no_copy(
        tmp_path: Path, monkeypatch):
    import warehouse.publish as publish

    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _load_months(lx, 1, 2)
        # Rows deleted by hand in a month nobody loads into any more.
        _tamper(wd, f"DELETE FROM {MONTH_SCHEMA}.fact_call__2026_01")
        _offer(lx, "m2-late", 20, 10, month=2)
        load(lx)
        tree_equals_catalog(wd)

        # A damaged file (a bad restore): the next publish writes a whole new one.
        (wd / "catalog.duckdb").write_bytes(b"not a database" * 100)
        _offer(lx, "m2-later", 21, 10, month=2)
        load(lx)
        tree_equals_catalog(wd)
        with open_catalog(wd) as reader:
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(4,)]

        # A publish that fails half-way (a full disk) leaves no copy behind,
        # and the next one works.
        real_run = publish.run

        def full_disk(con, sql, params=None):
            if sql.startswith(f"CREATE TABLE cat.{MONTH_SCHEMA}."):
                raise duckdb.IOException("No space left on device")
            return real_run(con, sql, params)

        monkeypatch.setattr(publish, "run", full_disk)
        _offer(lx, "m1-late", 21, 10, month=1)
        try:
            load(lx)
        except duckdb.IOException:
            pass
        else:
            raise AssertionError("the injected failure did not happen")
        assert not list(wd.glob(".catalog-*"))
        monkeypatch.setattr(publish, "run", real_run)
        load(lx)
        tree_equals_catalog(wd)
        with open_catalog(wd) as reader:
            assert reader.execute("SELECT count(*) FROM fact_call").fetchall() == [(5,)]
    finally:
        lx.close()


def test_a_crashed_publishs_staging_folders_go_once_their_files_have(tmp_path: Path):
    lx = build(make_settings(tmp_path / "home"))
    try:
        wd = lx.settings.warehouse_dir
        _offer(lx, "a", 2, 10)
        load(lx)
        empty = wd / FILES / ".staging-g000009-crashed" / "fact_call" / "lianxin_month=2026-03"
        empty.mkdir(parents=True)
        full = wd / FILES / ".staging-g000010-crashed" / "fact_call"
        full.mkdir(parents=True)
        shutil.copy(next((wd / FILES / "fact_call").rglob("*.parquet")), full / "x.parquet")
        load(lx)
        assert not empty.parent.parent.exists()
        assert (full / "x.parquet").exists()  # retired: kept for the grace period
        _backdate_retirements(wd, GRACE_SECONDS + 60)
        load(lx)
        assert not full.parent.exists()
    finally:
        lx.close()
