"""Shared fixtures.

``lianxin`` is a fully wired instance on a fresh data directory; it is
parametrised over the event stores with ``store`` (SQLite always, PostgreSQL
when the server is reachable). PostgreSQL and NATS tests skip with a reason
on a machine without those servers, but with ``CI=true`` they must run: a
missing server is then a test failure, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from lianxin.settings import Settings
from lianxin.wiring import Lianxin, build

PG_HOST = os.environ.get("LIANXIN_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LIANXIN_PG_PORT", "5432"))
NATS_URL = os.environ.get("LIANXIN_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    if IN_CI:
        pytest.fail(f"{name} at {host}:{port} is required when CI=true, and it is not reachable")
    pytest.skip(f"{name} is not reachable at {host}:{port} (it runs for real in CI)")


def require_postgres() -> None:
    require_server("PostgreSQL", PG_HOST, PG_PORT)


def require_nats() -> None:
    host, port = NATS_URL.split("//", 1)[1].split(":")
    require_server("NATS", host, int(port))


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "lianxin_t") -> Iterator[str]:
    """Create a PostgreSQL database for a test (or a module) and drop it after."""
    require_postgres()
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = dict(host=PG_HOST, port=PG_PORT, user=os.environ.get("LIANXIN_PG_USER", "postgres"),
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    with fresh_pg_database() as name:
        yield name


def make_settings(home: Path, store: str = "sqlite", pg_dbname: str = "test") -> Settings:
    return Settings.from_env(
        env={"LIANXIN_HOME": str(home), "LIANXIN_STORE": store,
             "LIANXIN_PG_HOST": PG_HOST, "LIANXIN_PG_PORT": str(PG_PORT),
             "LIANXIN_PG_USER": os.environ.get("LIANXIN_PG_USER", "postgres"),
             "LIANXIN_PG_DBNAME": pg_dbname, "LIANXIN_PSEUDONYM_KEY": "test-key"},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> Settings:
    if store == "postgres":
        dbname = request.getfixturevalue("pg_database")
        return make_settings(tmp_path / "home", "postgres", dbname)
    return make_settings(tmp_path / "home")


@pytest.fixture
def lianxin(settings: Settings) -> Iterator[Lianxin]:
    instance = build(settings)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def sqlite_lianxin(tmp_path: Path) -> Iterator[Lianxin]:
    """SQLite only, for tests whose subject is not the event store."""
    instance = build(make_settings(tmp_path / "home"))
    try:
        yield instance
    finally:
        instance.close()
