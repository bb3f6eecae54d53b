from __future__ import annotations

from typing import Any

import pytest

from tests.projections.scenario import T0


@pytest.fixture
def rm(lianxin: Any) -> Any:
    """The read-model runner of an instance (SQLite and PostgreSQL event
    stores: the read models follow either), caught up on demand."""
    return lianxin.read_models()


def all_events(lianxin: Any) -> list[Any]:
    app = lianxin.app
    notes = app.recorder.select_notifications(start=0, limit=10**9)
    return [app.mapper.to_domain_event(n) for n in notes]


__all__ = ["T0", "all_events"]
