"""The Stasis app wired to the ARI simulator over real HTTP + WebSocket on
loopback, for the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
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
    task: asyncio.Task | None = None
    options: dict[str, Any] = field(default_factory=dict)

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

    async def stop_adapter(self) -> None:
        """The adapter process goes away: its socket closes, Asterisk keeps
        the callers in Stasis."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        await self.client.close()
        await self.sim.wait_for_app_gone()

    async def start_adapter(self) -> None:
        """A new adapter process on the same store and the same Asterisk."""
        self.app, self.client, self.task = await _start(self.sim, self.lianxin, **self.options)


async def _start(sim: Any, lianxin: Any, *, config: TelephonyConfig | None,
                 auto_ready_after_s: float | None,
                 self_service: Any) -> tuple[StasisApp, AriClient, asyncio.Task]:
    client = AriClient(sim.base_url, sim.app, sim.username, sim.password,
                       backoff_initial=0.05, backoff_max=0.3)
    # the app on this core: without self_service, the real desk on it
    app = StasisApp(lianxin, client, config or load(), app_name=sim.app,
                    clock=sim.clock.now, self_service=self_service,
                    auto_ready_after_s=auto_ready_after_s)
    task = asyncio.create_task(app.run(client.events(raw=True)))
    try:
        await sim.wait_for_app()
    except BaseException:
        task.cancel()
        await client.close()
        raise
    return app, client, task


@contextlib.asynccontextmanager
async def stack(lianxin: Any, *, speed: float = 20.0, config: TelephonyConfig | None = None,
                auto_ready_after_s: float | None = None,
                self_service: Any = None) -> AsyncIterator[Stack]:
    options = {"config": config, "auto_ready_after_s": auto_ready_after_s,
               "self_service": self_service}
    async with run_simulator(speed=speed) as sim:
        app, client, task = await _start(sim, lianxin, **options)
        s = Stack(sim, app, client, lianxin, task, options)
        try:
            yield s
        finally:
            if s.task is not None:
                s.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await s.task
            await s.client.close()
