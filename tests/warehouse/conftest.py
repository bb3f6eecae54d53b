from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest

from lianxin.wiring import build
from tests.conftest import fresh_pg_database, make_settings
from tests.warehouse.scenario import build_small_day
from warehouse.service import load


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def small_day(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The small day, stored (SQLite and PostgreSQL) and loaded in odd-sized
    batches so that calls straddle batch boundaries. Read-only for tests."""
    home = tmp_path_factory.mktemp("small_day") / "home"
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            dbname = stack.enter_context(fresh_pg_database("lianxin_wh"))
            settings = make_settings(home, "postgres", dbname)
        else:
            settings = make_settings(home)
        lx = build(settings)
        stack.callback(lx.close)
        ids = build_small_day(lx.commands)
        load(lx, batch_size=7)
        yield lx, ids


@pytest.fixture(scope="module")
def small_day_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    lx = build(make_settings(tmp_path_factory.mktemp("small_day_sqlite") / "home"))
    try:
        ids = build_small_day(lx.commands)
        load(lx, batch_size=7)
        yield lx, ids
    finally:
        lx.close()

