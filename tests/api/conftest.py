from __future__ import annotations

from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from lianxin.http import create_app


def make_client(lianxin: Any) -> Iterator[TestClient]:
    api = create_app(lianxin)
    api.state.read_timeout_s = 0.5
    with TestClient(api, raise_server_exceptions=False) as client:
        client.lianxin = lianxin  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def client(lianxin: Any) -> Iterator[TestClient]:
    """HTTP client on both event stores."""
    yield from make_client(lianxin)


@pytest.fixture
def sqlite_client(sqlite_lianxin: Any) -> Iterator[TestClient]:
    yield from make_client(sqlite_lianxin)


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()
