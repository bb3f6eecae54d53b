"""Kill the loader (a real process, SIGKILL) at several points, restart it,
and the tables equal a clean rebuild's; a rebuild is deterministic."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import duckdb
import pytest

from bench.warehouse import fill_store
from lianxin.wiring import build
from tests.conftest import make_settings
from tests.warehouse.helpers import (cli_env, lianxin_cmd, row_counts, table_differences,
                                     tree_equals_catalog)
from warehouse.loader import Loader
from warehouse.publish import CATALOG


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 4,000 realistic stored events (bulk-copied templates of calls
    made through the command service) in a real store."""
    home = tmp_path_factory.mktemp("stored") / "home"
    lx = build(make_settings(home))
    try:
        fill_store(lx.app.recorder, calls=400, agents=20)
    finally:
        lx.close()
    return home


def _rebuild_into(home: Path, directory: Path) -> Path:
    lx = build(make_settings(home))
    try:
        loader = Loader(lx.app.recorder, directory, mapper=lx.app.mapper)
        loader.rebuild(batch_size=333)
        loader.close()
    finally:
        lx.close()
    return directory / "loader.duckdb"


def test_killed_loader_resumes_to_the_same_tables_as_a_clean_rebuild(stored: Path, tmp_path: Path):
    env = cli_env(stored)
    kills = 0
    for lines_before_kill in (2, 5, 3, 8):
        proc = subprocess.Popen(lianxin_cmd("warehouse", "load", "--batch-size", "97",
                                            "--publish-every", "3", "--progress"),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = 0
        while seen < lines_before_kill:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("batch "):
                seen += 1
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 3, "the loader finished before it could be killed: not a crash test"
    killed_db = stored / "warehouse" / "loader.duckdb"
    partial = row_counts(killed_db)
    assert 0 < partial["events"]
    done = subprocess.run(lianxin_cmd("warehouse", "load", "--batch-size", "500"), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    clean = _rebuild_into(stored, tmp_path / "clean")
    assert table_differences(killed_db, clean) == {}
    assert row_counts(clean)["events"] == _store_size(stored)
    # What readers see (the published Parquet) is the same as the tables.
    con = duckdb.connect(str(stored / "warehouse" / CATALOG), read_only=True)
    con.execute(f"ATTACH '{clean}' AS clean (READ_ONLY)").fetchall()
    for t in ("fact_call", "fact_leg", "fact_agent_state", "events"):
        diff = con.execute(f"SELECT count(*) FROM (SELECT * FROM {t} EXCEPT ALL "
                           f"SELECT * FROM clean.{t})").fetchall()[0][0]
        n = con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
        assert diff == 0 and n == row_counts(clean)[t], t
    con.close()
    # Killed publishes leave no trace in the interchange tree either.
    tree_equals_catalog(stored / "warehouse")


def _store_size(home: Path) -> int:
    lx = build(make_settings(home))
    try:
        return lx.app.max_position()
    finally:
        lx.close()


def test_rebuild_is_deterministic_and_batch_size_does_not_matter(stored: Path, tmp_path: Path):
    a = _rebuild_into(stored, tmp_path / "a")
    lx = build(make_settings(stored))
    try:
        loader = Loader(lx.app.recorder, tmp_path / "b", mapper=lx.app.mapper)
        loader.load(batch_size=1000)
        loader.load(batch_size=1000)  # nothing new: a no-op
        loader.close()
    finally:
        lx.close()
    assert table_differences(a, tmp_path / "b" / "loader.duckdb") == {}


def test_second_loader_process_is_refused(stored: Path, tmp_path: Path):
    from warehouse.loader import LoaderBusy, connect_writer

    path = tmp_path / "w" / "loader.duckdb"
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [*lianxin_cmd()[:2], f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
                             "print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LoaderBusy):
            connect_writer(path)
    finally:
        holder.kill()
        holder.wait()


def test_a_file_from_an_older_schema_must_be_rebuilt(stored: Path, tmp_path: Path):
    from warehouse.loader import SchemaOutdated, connect_writer

    path = tmp_path / "old" / "loader.duckdb"
    connect_writer(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_info SET version = 1").fetchall()
    con.close()
    with pytest.raises(SchemaOutdated, match="--rebuild"):
        connect_writer(path)
    lx = build(make_settings(stored))
    try:
        loader = Loader(lx.app.recorder, path.parent, mapper=lx.app.mapper)
        assert loader.rebuild(batch_size=5000).events == lx.app.max_position()
        loader.close()
    finally:
        lx.close()


def test_loading_after_an_upgrade_rebuilds_the_older_warehouse(stored: Path, caplog):
    """`lianxin warehouse load` (and the HTTP load) on a warehouse an older
    release made rebuilds it from the events instead of stopping."""
    from warehouse.service import load

    lx = build(make_settings(stored))
    try:
        load(lx)
        path = lx.settings.warehouse_dir / "loader.duckdb"
        con = duckdb.connect(str(path))
        con.execute("UPDATE schema_info SET version = 1").fetchall()
        con.close()
        with caplog.at_level("WARNING"):
            result = load(lx)
        assert result.events == lx.app.max_position()  # everything again, from position 0
        assert "rebuilding" in caplog.text
        assert load(lx).events == 0  # and now an ordinary incremental load
    finally:
        lx.close()


def test_a_warehouse_of_a_newer_release_is_left_alone(stored: Path):
    """An older release (a rollback, a second node not yet upgraded) must not
    rebuild, at its own older schema, what a newer one made."""
    from warehouse.loader import SchemaNewer
    from warehouse.service import load

    lx = build(make_settings(stored))
    try:
        load(lx)
        path = lx.settings.warehouse_dir / "loader.duckdb"
        con = duckdb.connect(str(path))
        con.execute("UPDATE schema_info SET version = 999").fetchall()
        con.close()
        with pytest.raises(SchemaNewer, match="newer than this release"):
            load(lx)
        con = duckdb.connect(str(path), read_only=True)
        assert con.execute("SELECT max(version) FROM schema_info").fetchall() == [(999,)]
        assert con.execute("SELECT count(*) FROM fact_call").fetchall()[0][0] > 0
        con.close()
    finally:
        lx.close()
