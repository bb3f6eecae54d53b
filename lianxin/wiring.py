"""Wiring: builds the one CallCenter application and everything around it
from Settings. The HTTP app, the CLI, tests and benchmarks all start here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from commands.application import CallCenter
from commands.handlers import HandlerContext
from commands.service import CommandService
from lianxin.settings import Settings


@dataclass
class Lianxin:
    settings: Settings
    app: CallCenter
    commands: CommandService
    # Other parts (read models, warehouse, audit, telephony) attach themselves
    # here lazily, keyed by name, so this container does not import them all.
    parts: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for part in reversed(list(self.parts.values())):
            close = getattr(part, "close", None)
            if callable(close):
                close()
        self.app.close()


def build(settings: Settings | None = None, *, batching: bool = True) -> Lianxin:
    settings = settings or Settings.from_env()
    app = CallCenter(env=settings.eventsourcing_env())
    ctx = HandlerContext(pseudonym_key=settings.caller_hash_key())
    return Lianxin(settings=settings, app=app,
                   commands=CommandService(app, ctx, batching=batching))
