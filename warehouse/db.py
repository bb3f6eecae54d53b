"""Small DuckDB helpers shared by the loader and the readers."""

from __future__ import annotations

from typing import Any

import duckdb


def run(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Execute and drain: DuckDB 2 refuses new work on a connection while a
    previous result is still pending, even a DDL's empty one."""
    cur = con.execute(sql, params) if params is not None else con.execute(sql)
    return cur.fetchall()
