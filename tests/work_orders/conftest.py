"""Helpers for the work-order tests: local (Asia/Shanghai) times, a wired
instance, and shortcuts for the commands the tests repeat."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from commands import messages as m
from lianxin.settings import Settings
from lianxin.wiring import Lianxin, build
from tests.conftest import make_settings

CST = ZoneInfo("Asia/Shanghai")


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=CST)


def open_order(lx: Lianxin, type: str, at: datetime, key: str, **kw: Any) -> Any:
    kw.setdefault("summary", f"{type} reported")
    return lx.commands.handle(m.OpenWorkOrder(type=type, occurred_at=at, command_id=key, **kw))


def order(lx: Lianxin, wo_id: Any) -> Any:
    return lx.app.repository.get(wo_id)


def settings_with(home: Path, **env: str) -> Settings:
    base = make_settings(home)
    return Settings.from_env(env={
        "LIANXIN_HOME": str(home), "LIANXIN_PSEUDONYM_KEY": base.pseudonym_key, **env})


@pytest.fixture
def lx(tmp_path: Path) -> Iterator[Lianxin]:
    instance = build(make_settings(tmp_path / "home"))
    try:
        yield instance
    finally:
        instance.close()


def events(lx: Lianxin, originator: Any = None, name: str | None = None) -> list[Any]:
    """Stored events in log order (optionally of one aggregate / one class)."""
    out = []
    for n in lx.app.recorder.select_notifications(start=1, limit=1_000_000):
        if originator is not None and n.originator_id != originator:
            continue
        e = lx.app.mapper.to_domain_event(n)
        if name is None or type(e).__qualname__.endswith("." + name):
            out.append(e)
    return out
