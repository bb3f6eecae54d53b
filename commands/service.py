"""The write side's one entry point for adapters: ``service.handle(cmd)``."""

from __future__ import annotations

from typing import Any, Iterable

from commands.application import CallCenter
from commands.bus import CommandBus, Outcome
from commands.handlers import HandlerContext, handler_for
from commands import work_order_handlers  # noqa: F401 - registers its handlers
from commands import import_handlers  # noqa: F401 - registers its handlers
from commands import audit_handlers  # noqa: F401 - registers its handlers
from commands.messages import Command


class CommandService:
    def __init__(self, app: CallCenter, ctx: HandlerContext | None = None, *,
                 batching: bool = True) -> None:
        self.app = app
        self.bus = CommandBus(app, ctx or HandlerContext(), batching=batching)

    def handle(self, cmd: Command) -> Outcome:
        return self.bus.execute(handler_for(cmd), cmd)

    def handle_many(self, cmds: Iterable[Command]) -> list[Outcome | BaseException]:
        return self.bus.execute_many((handler_for(c), c) for c in cmds)

    async def handle_async(self, cmd: Command) -> Outcome:
        """For asyncio callers (telephony adapter, async endpoints): awaits
        durability without blocking the loop or holding a thread."""
        return await self.bus.execute_async(handler_for(cmd), cmd)

    def get(self, aggregate_id: Any) -> Any:
        return self.app.repository.get(aggregate_id)
