"""Readers open the published catalog, never the loader's file."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from warehouse.publish import CATALOG


class NotLoaded(RuntimeError):
    """Nothing has been published yet (run ``lianxin warehouse load``)."""


@contextmanager
def open_catalog(directory: Any) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the newest published catalog. Opening the
    file pins that generation: a publish that swaps the file meanwhile does
    not change what this connection sees."""
    path = Path(directory) / CATALOG
    if not path.exists():
        raise NotLoaded(f"the warehouse at {directory} has not been loaded yet; "
                        f"run `lianxin warehouse load`")
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        yield con
    finally:
        con.close()


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
