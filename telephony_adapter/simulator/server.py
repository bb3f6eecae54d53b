"""The simulator process: uvicorn on loopback serving ARI REST + the event WebSocket,
plus the scenario controls tests and the demo use (place a call, press digits, hang up,
drop the WebSockets, restart Asterisk).

Why Starlette + uvicorn: the REST side is a few dozen small routes with path parameters,
and the same ASGI app serves the WebSocket on the same port, exactly as Asterisk does.
Both are already project dependencies (FastAPI sits on them), and uvicorn can be started
and stopped inside the test's own event loop, so a test drives the simulator's state
directly while talking to it over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from datetime import datetime
from typing import Any, AsyncIterator, Callable, Iterable, Optional, Union

import uvicorn
from uvicorn.config import WS_PROTOCOLS
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from telephony_adapter.simulator.clock import SimClock
from telephony_adapter.simulator.core import Asterisk, SimError, Subscriber
from telephony_adapter.simulator.endpoints import Behaviour, behaviour_from
from telephony_adapter.simulator.rest import build_app

_CLOSE = object()


class Simulator:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, app: str = "lianxin",
                 username: str = "lianxin", password: str = "lianxin", speed: float = 1.0,
                 seed: int = 0, start: datetime | None = None) -> None:
        self.host = host
        self.port = port
        self.app = app
        self.username = username
        self.password = password
        self.clock = SimClock(speed, start)
        self.core = Asterisk(self.clock, seed=seed)
        self.down = False
        # Successful REST calls (method, path, query); every answer's status in ``responses``.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.responses: list[tuple[str, str, int]] = []
        self._server: Optional[uvicorn.Server] = None
        self._serve_task: Optional[asyncio.Task] = None
        self._asgi = build_app(self)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: without it Nagle + delayed ACK add 40 ms per request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        # The sans-I/O implementation avoids websockets' deprecated legacy server API.
        ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
        config = uvicorn.Config(self._asgi, log_level="warning", access_log=False,
                                lifespan="off", ws=ws,
                                ws_ping_interval=None, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._serve_task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._close_subscribers()
        self.core.wipe()
        if self._server is not None:
            self._server.should_exit = True
        if self._serve_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._serve_task, 5)

    # --- the event WebSocket -------------------------------------------------------------

    async def events_endpoint(self, ws: WebSocket) -> None:
        params = ws.query_params
        if self.down:
            await ws.send_denial_response(JSONResponse({"message": "Asterisk is restarting"},
                                                       status_code=503))
            return
        if params.get("api_key") != f"{self.username}:{self.password}":
            await ws.send_denial_response(JSONResponse({"message": "Authentication required"},
                                                       status_code=401))
            return
        apps = [a for a in (params.get("app") or "").split(",") if a]
        if not apps:
            await ws.send_denial_response(JSONResponse({"message": "Missing app parameter"},
                                                       status_code=400))
            return
        subscribe_all = (params.get("subscribeAll") or "").lower() in ("true", "1", "yes")
        await ws.accept()
        queue: asyncio.Queue = asyncio.Queue()
        subs = [Subscriber(app=a, subscribe_all=subscribe_all, queue=queue) for a in apps]
        self.core.subscribers.extend(subs)

        async def watch_client() -> None:
            # Ends when the adapter closes its side; the sender is then cancelled.
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while True:
                    await ws.receive_text()

        watcher = asyncio.get_running_loop().create_task(watch_client())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                message = getter.result()
                if message is _CLOSE:
                    # A dropped connection, not a polite goodbye: 1011 like a crashed peer.
                    with contextlib.suppress(Exception):
                        await ws.close(code=1011)
                    break
                await ws.send_text(json.dumps(message, separators=(",", ":")))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the adapter went away mid-send (uvicorn's ClientDisconnected is an OSError)
        finally:
            watcher.cancel()
            for sub in subs:
                if sub in self.core.subscribers:
                    self.core.subscribers.remove(sub)

    def _close_subscribers(self) -> None:
        subs, self.core.subscribers[:] = list(self.core.subscribers), []
        for sub in subs:
            sub.queue.put_nowait(_CLOSE)

    async def drop_websockets(self) -> None:
        """Every event WebSocket is cut; events until the adapter reconnects are lost."""
        self._close_subscribers()
        await asyncio.sleep(0)

    async def restart(self, downtime: float = 0.0) -> None:
        """Asterisk restarts: sockets drop, every channel and bridge vanishes silently
        (stored recordings survive, they are files). During ``downtime`` simulated seconds
        REST answers 503 and WebSocket handshakes are refused."""
        self.down = True
        self._close_subscribers()
        self.core.wipe()
        await self.clock.sleep(downtime)
        self.down = False

    async def wait_for_app(self, timeout: float = 5.0, app: str | None = None) -> None:
        """Real seconds to wait until an adapter has the event WebSocket open."""
        app = app or self.app
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.core.registered(app):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no WebSocket registered app {app!r} within {timeout}s")
            await asyncio.sleep(0.005)

    async def wait_for_app_gone(self, timeout: float = 5.0, app: str | None = None) -> None:
        """Real seconds to wait until no WebSocket has the app registered (an
        adapter that stopped); its channels stay in Stasis meanwhile."""
        app = app or self.app
        deadline = asyncio.get_running_loop().time() + timeout
        while self.core.registered(app):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"app {app!r} still registered after {timeout}s")
            await asyncio.sleep(0.005)

    # --- scenario controls ---------------------------------------------------------------

    def place_call(self, caller: str = "13800000000", dialed: str = "95598", *,
                   caller_name: str | None = None, args: Iterable[str] = (),
                   channel_id: str | None = None) -> str:
        """An inbound trunk call entering Stasis (StasisStart); returns the channel id."""
        return self.core.place_call(caller, dialed, caller_name=caller_name, app=self.app,
                                    args=list(args), channel_id=channel_id)

    async def press(self, channel_id: str, digits: str, *, gap: float = 0.25,
                    duration_ms: int = 280) -> None:
        """The caller keys ``digits`` (RFC 4733), ``gap`` simulated seconds apart."""
        for i, digit in enumerate(digits):
            if i:
                await self.clock.sleep(gap)
            if channel_id not in self.core.channels:
                return
            self.core.press(channel_id, digit, duration_ms)

    def hangup(self, channel_id: str) -> None:
        """The far end hangs up (caller's BYE, or the agent's phone when given its leg)."""
        self.core.remote_hangup(channel_id)

    def register_endpoint(self, endpoint: str, behaviour: Union[Behaviour, str] = "answer",
                          **kwargs: float) -> None:
        """``PJSIP/1001`` with AnswerAfter / NeverAnswer / Busy / HangUpAfter / Unavailable
        (or their names: answer, never-answer, busy, hang-up-after, unavailable)."""
        self.core.endpoints[endpoint] = behaviour_from(behaviour, **kwargs)

    def endpoint_hold(self, channel_id: str, on: bool = True) -> None:
        """The phone puts the call on hold by re-INVITE (ChannelHold / ChannelUnhold)."""
        self.core.endpoint_hold(channel_id, on)

    def refer(self, channel_id: str, target: str, context: str = "internal") -> str | None:
        """The agent phone blind-transfers by SIP REFER; see Asterisk.refer."""
        return self.core.refer(channel_id, target, context)

    def phone_dial(self, channel_id: str, target: str,
                   context: str = "internal") -> tuple[str, str]:
        """The agent phone calls a colleague itself (first half of an attended
        transfer by the phone); see Asterisk.phone_dial."""
        return self.core.phone_dial(channel_id, target, context)

    def refer_attended(self, channel_id: str, second_id: str) -> str:
        """The agent phone joins the caller and the colleague (REFER with
        Replaces): BridgeAttendedTransfer; see Asterisk.refer_attended."""
        return self.core.refer_attended(channel_id, second_id)

    async def talk(self, channel_id: str, seconds: float) -> None:
        """Talk detection (only when TALK_DETECT is set on the channel)."""
        self.core.talk(channel_id, True)
        await self.clock.sleep(seconds)
        if channel_id in self.core.channels:
            self.core.talk(channel_id, False, int(seconds * 1000))

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    # --- observation -------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted (whether or not a WebSocket was there to receive it)."""
        return list(self.core.events)

    def clear_events(self) -> None:
        self.core.events.clear()

    def channel_ids(self) -> list[str]:
        return list(self.core.channels)

    async def wait_for_event(self, predicate: Callable[[dict[str, Any]], bool], *,
                             timeout: float = 5.0, since: int = 0) -> dict[str, Any]:
        """First emitted event (from index ``since``) matching ``predicate``; real seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for event in list(self.core.events)[since:]:
                if predicate(event):
                    return event
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("expected event was not emitted")
            await self.core.changed(min(remaining, 0.05))

    def application_json(self, name: str) -> dict[str, Any]:
        return {"name": name,
                "channel_ids": [c.id for c in self.core.channels.values() if name in c.subscribed],
                "bridge_ids": [b.id for b in self.core.bridges.values() if b.app == name],
                "endpoint_ids": [], "device_names": [], "events_allowed": [],
                "events_disallowed": []}

    def endpoint_json(self, endpoint: str) -> dict[str, Any]:
        tech, _, resource = endpoint.partition("/")
        chans = [c.id for c in self.core.channels.values() if c.endpoint == endpoint]
        return {"technology": tech, "resource": resource, "state": "online",
                "channel_ids": chans}


@contextlib.asynccontextmanager
async def run_simulator(host: str = "127.0.0.1", port: int = 0, app: str = "lianxin",
                        username: str = "lianxin", password: str = "lianxin", *,
                        speed: float = 1.0, seed: int = 0,
                        start: datetime | None = None) -> AsyncIterator[Simulator]:
    """A running fake Asterisk on loopback; ``sim.base_url`` is what AriClient takes."""
    sim = Simulator(host=host, port=port, app=app, username=username, password=password,
                    speed=speed, seed=seed, start=start)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


__all__ = ["Simulator", "run_simulator", "SimError"]
