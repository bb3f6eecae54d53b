"""The Stasis app wired to the ARI simulator over real HTTP + WebSocket on
loopback, for the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from domain.call import call_id_for
from telephony_adapter.ari.client import AriClient
from telephony_adapter.simulator import run_simulator
from telephony_adapter.stasis.app import StasisApp
from telephony_adapter.stasis.config import TelephonyConfig, load


@dataclass
class Stack:
    sim: Any
    app: StasisApp
    client: AriClient
    lianxin: Any

    def call(self, channel: str) -> Any:
        return self.lianxin.app.repository.get(call_id_for(channel))

    async def until(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Real seconds to wait for ``check`` to become truthy (store reads
        raise until the aggregate exists)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
            except Exception as exc:  # noqa: BLE001 - not there yet
                last = exc
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what or check}: {last!r}; "
                             f"rejected={self.app.rejected[-3:]}")

    async def call_state(self, channel: str, *states: str, timeout: float = 10.0) -> Any:
        return await self.until(lambda: self.call(channel).state.value in states and
                                self.call(channel), timeout, f"call {channel} in {states}")


@contextlib.asynccontextmanager
async def stack(lianxin: Any, *, speed: float = 20.0, config: TelephonyConfig | None = None,
                auto_ready_after_s: float | None = None,
                self_service: Any = None) -> AsyncIterator[Stack]:
    async with run_simulator(speed=speed) as sim:
        client = AriClient(sim.base_url, sim.app, sim.username, sim.password,
                           backoff_initial=0.05, backoff_max=0.3)
        app = StasisApp(lianxin.commands, client, config or load(), app_name=sim.app,
                        clock=sim.clock.now, self_service=self_service,
                        auto_ready_after_s=auto_ready_after_s)
        task = asyncio.create_task(app.run(client.events(raw=True)))
        try:
            await sim.wait_for_app()
            yield Stack(sim, app, client, lianxin)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await client.close()
