"""Readers open the published catalog, never the loader's file.

A process that serves reports (the API) keeps the catalog it opened attached
and reuses it until a publish replaces the file: DuckDB's buffer pool then
still holds the blocks the previous report read, which made a year-long
report about a fifth faster than opening the file afresh each time
(docs/performance.md). Each use gets its own cursor; a replaced catalog is
closed when its last cursor is done.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from warehouse.publish import CATALOG

# The attached catalog's name in a reader's connection.
ALIAS = "lianxin_catalog"
# Warehouses one process keeps attached (a test run opens many).
KEEP = 4
# Each attachment is a DuckDB database of its own; with DuckDB's default
# (80% of RAM each) a few of them would each believe they may take most of
# the machine. Spill files go beside the catalog (DuckDB's default for an
# in-memory database is ``.tmp`` in the working directory, which a service
# may not be allowed to write).
MEMORY_LIMIT = os.environ.get("LIANXIN_READER_MEMORY_LIMIT", "20%")
SPILL_DIR = ".reader-spill"


class NotLoaded(RuntimeError):
    """Nothing has been published yet (run ``lianxin warehouse load``)."""


class _Attached:
    """One published generation, attached read-only to a private in-memory
    database. Not ``duckdb.connect(path)``: DuckDB hands every connect of a
    path already open in this process the same database, so a process that
    kept one open would never see the next generation."""

    def __init__(self, path: Path, key: tuple[int, ...]) -> None:
        self.key = key
        self.root = duckdb.connect(":memory:", config={
            "memory_limit": MEMORY_LIMIT, "temp_directory": str(path.parent / SPILL_DIR)})
        quoted = str(path).replace("'", "''")
        self.root.execute(f"ATTACH '{quoted}' AS {ALIAS} (READ_ONLY)").fetchall()
        self.users = 0
        self.retired = False

    def release(self) -> None:
        if self.retired and self.users == 0:
            self.root.close()


_lock = threading.Lock()
_attached: OrderedDict[str, _Attached] = OrderedDict()


def _forget_after_fork() -> None:
    # A forked child inherits neither the lock's holder nor DuckDB's worker
    # threads: it starts with nothing attached.
    global _lock
    _lock = threading.Lock()
    _attached.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _identity(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


@contextmanager
def open_catalog(directory: Any) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the newest published catalog. Opening it
    pins that generation: a publish that swaps the file meanwhile does not
    change what this connection sees."""
    path = Path(directory).resolve() / CATALOG
    try:
        key = _identity(path)
    except FileNotFoundError:
        raise NotLoaded(f"the warehouse at {directory} has not been loaded yet; "
                        f"run `lianxin warehouse load`") from None
    with _lock:
        cat = _attached.get(str(path))
        if cat is None or cat.key != key:
            if cat is not None:
                cat.retired = True
                cat.release()
            cat = _Attached(path, key)
            _attached[str(path)] = cat
        _attached.move_to_end(str(path))
        while len(_attached) > KEEP:
            _, old = _attached.popitem(last=False)
            old.retired = True
            old.release()
        cat.users += 1
    try:
        con = cat.root.cursor()
        try:
            con.execute(f"USE {ALIAS}").fetchall()
            con.execute("SET TimeZone = 'UTC'").fetchall()
            yield con
        finally:
            con.close()
    finally:
        with _lock:
            cat.users -= 1
            cat.release()


def read_meta(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = con.execute("SELECT generation, as_of_position, as_of_time::VARCHAR, "
                      "published_at::VARCHAR, timezone, calendar FROM warehouse_meta").fetchall()[0]
    keys = ("generation", "as_of_position", "as_of_time", "published_at", "timezone", "calendar")
    return dict(zip(keys, row))


def status(directory: Any) -> dict[str, Any]:
    with open_catalog(directory) as con:
        meta = read_meta(con)
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("events", "fact_call", "fact_leg", "fact_agent_state",
                            "fact_work_order", "dim_agent")}
    return {**meta, "rows": counts}
