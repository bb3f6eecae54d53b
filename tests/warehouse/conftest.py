from __future__ import annotations

from typing import Any, Iterator

import pytest

from lianxin.wiring import build
from tests.conftest import make_settings, require_postgres
from tests.warehouse.scenario import build_small_day
from warehouse.service import load


def _pg_database() -> Iterator[str]:
    import os
    import uuid

    import psycopg

    from tests.conftest import PG_HOST, PG_PORT

    name = f"lianxin_wh_{uuid.uuid4().hex[:12]}"
    admin = dict(host=PG_HOST, port=PG_PORT, user=os.environ.get("LIANXIN_PG_USER", "postgres"),
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def small_day(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The small day, stored (SQLite and PostgreSQL) and loaded in odd-sized
    batches so that calls straddle batch boundaries. Read-only for tests."""
    home = tmp_path_factory.mktemp("small_day") / "home"
    if request.param == "postgres":
        require_postgres()
        gen = _pg_database()
        settings = make_settings(home, "postgres", next(gen))
    else:
        gen = None
        settings = make_settings(home)
    lx = build(settings)
    try:
        ids = build_small_day(lx.commands)
        load(lx, batch_size=7)
        yield lx, ids
    finally:
        lx.close()
        if gen is not None:
            for _ in gen:
                pass


@pytest.fixture(scope="module")
def small_day_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    lx = build(make_settings(tmp_path_factory.mktemp("small_day_sqlite") / "home"))
    try:
        ids = build_small_day(lx.commands)
        load(lx, batch_size=7)
        yield lx, ids
    finally:
        lx.close()

