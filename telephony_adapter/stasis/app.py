"""The Stasis application's loop: ARI events in, commands and ARI requests out.

Every event goes, in arrival order, through:

1. dedupe: an event already seen (Asterisk's duplicates, a replay after a
   reconnect) is dropped before it can move the IVR or ring an agent twice;
   the command ids derived from events make the aggregates refuse it anyway
   if the adapter itself restarted;
2. the tracker, which turns it into commands (Asterisk's timestamp becomes
   ``occurred_at``), submitted through ``CommandService`` (the adapter never
   writes events itself);
3. the flow (IVR, ACD, survey), which reacts with ARI requests.

Steps 2-3 run in the call's own lane (``run``): a call's events stay in
order, different calls proceed side by side, and the commands of all lanes
are committed together by one writer in submission order. Lanes do not wait
for the disk before reacting to the next event: what Asterisk reported has
happened whether or not it is stored yet, and the deterministic command ids
make a re-run after a crash harmless.

After a ``Reconnected`` marker from the client, the app reconciles with
``GET /channels`` and ``GET /bridges``: calls whose channels vanished while
the stream was down are ended with a cause that says so, and if Asterisk's
start time changed (it restarted) every call is ended as lost in the restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Protocol

from eventsourcing.application import AggregateNotFoundError

from commands import messages as m
from commands.service import CommandService
from domain.call import call_id_for
from domain.errors import DomainError
from telephony_adapter.stasis.config import TelephonyConfig
from telephony_adapter.stasis.events import as_dict, event_key
from telephony_adapter.stasis.tracker import OWN_ROLES, CallTracker, Translation

log = logging.getLogger(__name__)

SEEN_MEMORY = 20000

# what a call was doing when the adapter that handled it went away
RECOVERY_STAGE = {"offered": "being answered", "ivr": "in the IVR",
                  "connected": "connected to an agent", "held": "on hold",
                  "outside": "transferred out (the outside conversation was lost)"}


class RestPort(Protocol):
    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> Any: ...


def _is_reconnected(event: Any) -> bool:
    if isinstance(event, dict):
        return event.get("type") == "Reconnected"
    return type(event).__name__ == "Reconnected"


class StasisApp:
    """``service`` is the core the app runs on (the ``Lianxin`` container) or
    its ``CommandService``; with the latter, ``lianxin=`` names the core. The
    IVR's self-service answers from that core's read models
    (``SelfServiceDesk(core)``) unless ``self_service`` is given; a call flow
    with neither refuses to start rather than telling every caller who asks
    for self-service that the service is unavailable."""

    def __init__(self, service: CommandService | Any, rest: RestPort, config: TelephonyConfig, *,
                 app_name: str = "lianxin", control: bool = True,
                 clock: Callable[[], datetime] | None = None,
                 self_service: Any = None, auto_ready_after_s: float | None = None,
                 tick_s: float | None = None,
                 known_live_calls: Callable[[], list[tuple[Any, str]]] | None = None,
                 lianxin: Any = None) -> None:
        if lianxin is None and isinstance(getattr(service, "commands", None), CommandService):
            lianxin, service = service, service.commands  # given the core itself
        if lianxin is not None and service is not lianxin.commands:
            raise ValueError("the Stasis app's lianxin= core must be the one its commands go to")
        self.lianxin = lianxin
        self.service = service
        self.rest = rest
        self.config = config
        self.app_name = app_name
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.tracker = CallTracker(config)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.rejected: list[tuple[m.Command, str]] = []
        self.stats = {"events": 0, "duplicates": 0, "commands": 0, "rejected": 0,
                      "reconnects": 0, "reconciled": 0, "adopted": 0, "busy_s": 0.0}
        self.asterisk_started: str | None = None
        # (call id, caller channel) of calls the store believes live, read at
        # start-up: those whose channel is gone ended while no adapter ran
        self.known_live_calls = known_live_calls
        self.running = False  # in run(): lanes, commits not awaited by the lanes
        self._pending: list[tuple[list[m.Command], asyncio.Future]] = []
        self._flushing: list[tuple[list[m.Command], asyncio.Future]] = []  # being committed
        self._flusher: asyncio.Task | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stasis-store")
        self._queues: dict[str, asyncio.Queue] = {}
        # events wait while the start-up recovery compares Asterisk with the store
        self._order = asyncio.Lock()
        self._lanes: dict[str, asyncio.Task] = {}
        self.flow = None
        if control:
            from telephony_adapter.stasis.flow import CallFlow
            from telephony_adapter.stasis.selfservice import SelfServiceDesk

            if self_service is None:
                if lianxin is None:
                    raise ValueError(
                        "the Stasis call flow needs the core it runs on for the IVR's "
                        "self-service lookups: pass the Lianxin container (StasisApp(lx, ...) "
                        "or lianxin=lx), or self_service=")
                self_service = SelfServiceDesk(lianxin)
            self.flow = CallFlow(self, self_service=self_service,
                                 auto_ready_after_s=auto_ready_after_s,
                                 **({"tick_s": tick_s} if tick_s else {}))

    # -- commands --------------------------------------------------------------
    async def submit(self, commands: list[m.Command], *, wait: bool = True) -> list[Any]:
        """Submit commands; with ``wait`` (the default) return once they are
        durable, with their outcomes.

        Commands from every lane that arrive while a commit is under way
        wait and go together in the next ``handle_many`` on one worker
        thread: one commit for many calls, and a single thread in the write
        path (threads spinning on the bus's lock cost the event loop more in
        GIL hand-overs than the commits themselves). Submission order is
        commit order, so a lane that does not wait (``wait=False``: facts
        Asterisk reported, decisions nothing else depends on) still has its
        commands applied in order."""
        if not commands:
            return []
        commands = list(commands)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((commands, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        if not wait:
            future.add_done_callback(lambda f: self._account(commands, f))
            return []
        results = await future
        self._check(commands, results)
        return results

    def _account(self, commands: list[m.Command], future: asyncio.Future) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("commands %s failed: %r", [type(c).__name__ for c in commands],
                      future.exception())
            return
        try:
            self._check(commands, future.result())
        except BaseException as exc:  # noqa: BLE001 - nobody awaits: say it
            log.error("command failed: %r", exc)

    def _check(self, commands: list[m.Command], results: list[Any]) -> None:
        for cmd, res in zip(commands, results):
            if isinstance(res, DomainError):
                # The domain refusing a fact Asterisk reported means our view
                # and the store disagree (an event from before we started, a
                # race with an agent's own action): keep going, say so.
                self.rejected.append((cmd, res.message))
                self.stats["rejected"] += 1
                log.info("refused %s: %s", type(cmd).__name__, res.message)
            elif isinstance(res, BaseException):
                raise res
            else:
                self.stats["commands"] += 1

    async def settled(self) -> None:
        """Return once every command submitted so far is committed or
        refused: a read after this sees the decisions lanes did not wait for."""
        futures = [f for _, f in self._flushing] + [f for _, f in self._pending]
        if futures:
            await asyncio.wait(futures)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            self._flushing = batch
            flat = [cmd for cmds, _ in batch for cmd in cmds]
            try:
                results = await loop.run_in_executor(self._writer, self.service.handle_many, flat)
            except BaseException as exc:  # noqa: BLE001 - every waiter learns it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            i = 0
            for cmds, future in batch:
                if not future.done():
                    future.set_result(results[i:i + len(cmds)])
                i += len(cmds)

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store read off the event loop, on the writer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    # -- events ----------------------------------------------------------------
    def _fresh(self, ev: dict[str, Any]) -> bool:
        key = event_key(ev)
        if key in self._seen:
            self.stats["duplicates"] += 1
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN_MEMORY:
            self._seen.popitem(last=False)
        return True

    async def handle(self, event: Any) -> Translation | None:
        started = time.perf_counter()
        try:
            return await self._handle(event)
        finally:
            self.stats["busy_s"] += time.perf_counter() - started

    async def _handle(self, event: Any) -> Translation | None:
        if _is_reconnected(event):
            await self.reconcile()
            return None
        ev = as_dict(event)
        self.stats["events"] += 1
        if not self._fresh(ev):
            return None
        out = self.tracker.translate(ev)
        await self._apply(out)
        return out

    async def run(self, events: Any, *, on_start: Callable[[], Awaitable[None]] | None = None) -> None:
        """Consume the client's event iterator until it ends or is cancelled.

        Events are translated one by one in arrival order (the tracker's view
        stays exact), then each call's commands and reactions run in that
        call's own lane: one call's events stay in order while different
        calls' commits overlap, so the command bus commits them together
        instead of paying one disk flush per event."""
        await self.snapshot_asterisk()
        if self.flow is not None:
            await self.flow.start()
        recovery = asyncio.create_task(self._recover_when_connected())
        if on_start is not None:
            await on_start()
        self.running = True
        try:
            async for event in events:
                try:
                    async with self._order:
                        await self._route(event)
                except Exception:  # noqa: BLE001 - one bad event must not stop the center
                    log.exception("failed on ARI event %r", getattr(event, "type", event))
        finally:
            self.running = False
            recovery.cancel()
            for lane in list(self._lanes.values()):
                lane.cancel()
            if self.flow is not None:
                await self.flow.stop()

    async def _route(self, event: Any) -> None:
        if _is_reconnected(event):
            await self.drain()
            await self.reconcile()
            return
        ev = as_dict(event)
        self.stats["events"] += 1
        if not self._fresh(ev):
            return
        started = time.perf_counter()
        out = self.tracker.translate(ev)
        self.stats["busy_s"] += time.perf_counter() - started
        if not out.commands and not out.signals:
            return
        key = self._lane_key(out)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._lanes[key] = asyncio.create_task(self._lane(key, queue))
        queue.put_nowait(out)

    def _lane_key(self, out: Translation) -> str:
        if out.signals:
            return out.signals[0].external_id
        cmd = out.commands[0]
        ext = getattr(cmd, "external_id", None)
        if ext:
            return str(ext)
        call_id = getattr(cmd, "call_id", None)
        for view in self.tracker.calls.values():
            if view.call_id == call_id:
                return view.external_id
        return "_"

    async def _lane(self, key: str, queue: asyncio.Queue) -> None:
        try:
            while True:
                out = await queue.get()
                started = time.perf_counter()
                try:
                    await self._apply(out, wait=False)
                except Exception:  # noqa: BLE001
                    log.exception("failed applying ARI event effects for %s", key)
                finally:
                    self.stats["busy_s"] += time.perf_counter() - started
                    queue.task_done()
                if queue.empty():
                    # retire the idle lane; a later event for the call opens a new one
                    self._queues.pop(key, None)
                    self._lanes.pop(key, None)
                    return
        except asyncio.CancelledError:
            self._queues.pop(key, None)
            self._lanes.pop(key, None)
            raise

    async def _apply(self, out: Translation, *, wait: bool = True) -> None:
        await self.submit(out.commands, wait=wait)
        if self.flow is not None:
            for signal in out.signals:
                try:
                    await self.flow.on_signal(signal)
                except DomainError as exc:
                    log.info("flow refused on %s: %s", signal.kind, exc.message)

    async def drain(self) -> None:
        """Wait until every lane has applied what it was given."""
        while self._queues or self._pending or (self._flusher and not self._flusher.done()):
            await asyncio.gather(*(q.join() for q in list(self._queues.values())))
            if self._flusher is not None and not self._flusher.done():
                await asyncio.shield(self._flusher)
            await asyncio.sleep(0)

    async def _recover_when_connected(self) -> None:
        """Start-up: what a previous adapter left behind. The snapshot is taken
        once the event socket is open (as after a reconnect), so whatever
        happens from then on reaches us as events; events wait meanwhile."""
        connected = getattr(self.rest, "connected", None)
        if isinstance(connected, asyncio.Event):
            await connected.wait()
        async with self._order:
            await self.drain()
            try:
                channels = [c for c in await self.rest.request("GET", "/channels") or []
                            if isinstance(c, dict)]
            except Exception:  # noqa: BLE001 - the next reconnect reconciles again
                log.exception("start-up recovery: GET /channels failed")
                return
            if self.known_live_calls is not None:
                await self.close_orphans(await self.read(self.known_live_calls), channels)
            await self.recover(channels, epoch="start")

    async def close_orphans(self, live: list[tuple[Any, str]],
                            channels: list[dict[str, Any]] | None = None) -> int:
        """Calls the store still shows live from before this adapter started:
        those whose channel Asterisk no longer has are ended with a cause.
        (Those still up are ``recover``'s business.)"""
        if not live:
            return 0
        if channels is None:
            channels = await self.rest.request("GET", "/channels") or []
        up = {str(c.get("id")) for c in channels if isinstance(c, dict)}
        now = self.clock()
        cmds = [m.EndCall(call_id=call_id, hung_up_by="system",
                          cause="lost: channel gone while no telephony adapter was running",
                          occurred_at=now, command_id=f"orphan:{external_id}", actor="asterisk")
                for call_id, external_id in live if external_id not in up]
        await self.submit(cmds)
        self.stats["reconciled"] += len(cmds)
        return len(cmds)

    # -- channels nobody here knows ----------------------------------------------
    async def recover(self, channels: list[dict[str, Any]], epoch: str) -> int:
        """Channels in our application that this adapter does not know: callers
        a previous adapter left in Stasis when it stopped (they hear silence
        until someone acts), and its agent legs, snoops and phones.

        A caller who was waiting for an agent (queued, or ringing one) is put
        back in their queue, keeping their place; a call caught in the IVR or
        in conversation is ended with a cause that says so (its agent is
        released) and hung up; a channel whose call is already over (a
        survey cut short) is hung up. A caller the store has never heard of
        is left alone: its StasisStart is on its way. Our own helper channels
        of calls nobody tracks any more are hung up."""
        if self.flow is None:
            return 0  # observe mode makes no requests
        strays = [(str(c.get("id")), args) for c in channels
                  if (args := self._stasis_args(c)) is not None
                  and not self._known(str(c.get("id")))]
        adopted: set[str] = set()
        done = 0
        for cid, args in strays:
            if not args:
                done += await self._recover_caller(cid, epoch, adopted)
        for cid, args in strays:
            if args and args[0] in OWN_ROLES:
                call = self.tracker.calls.get(args[-1])
                if call is None or not call.live or args[-1] in adopted:
                    await self.flow.ari("DELETE", f"/channels/{cid}")
        return done

    def _stasis_args(self, ch: dict[str, Any]) -> list[str] | None:
        """The Stasis arguments of a channel in our application (``[]`` for an
        inbound call), None for any other channel."""
        plan = ch.get("dialplan") or {}
        if plan.get("app_name") != "Stasis":
            return None
        app, *args = str(plan.get("app_data") or "").split(",")
        return args if app == self.app_name else None

    def _known(self, channel: str) -> bool:
        return self.tracker.knows(channel) or (self.flow is not None
                                               and channel in self.flow.listeners)

    async def _recover_caller(self, ext: str, epoch: str, adopted: set[str]) -> int:
        assert self.flow is not None
        call = await self.read(self._stored_call, ext)
        if call is None:
            return 0
        if not call.is_live:
            await self.flow.ari("DELETE", f"/channels/{ext}")
            return 0
        state = call.state.value
        if state in ("queued", "ringing"):
            ringing = state == "ringing" and bool(call.leg_id)
            if ringing:
                # an agent's phone rang for a call nobody followed: cancel it
                # (not the agent's fault: ready again) and ring someone afresh
                await self.submit([m.ReportRingNoAnswer(
                    call_id=call.id, leg_id=call.leg_id, outcome="canceled",
                    occurred_at=self.clock(), command_id=f"recover:{epoch}:{ext}:ring",
                    actor="asterisk")])
                await self.flow.ari("DELETE", f"/channels/{call.leg_id}")
            await self.flow.adopt_queued(ext, call, at_front=ringing)
            adopted.add(ext)
            self.stats["adopted"] += 1
            return 1
        where = RECOVERY_STAGE.get(state, state)
        await self.submit([m.EndCall(call_id=call.id, hung_up_by="system",
                                     cause=f"lost: the telephony adapter restarted while the "
                                           f"call was {where}",
                                     occurred_at=self.clock(),
                                     command_id=f"recover:{epoch}:{ext}", actor="asterisk")])
        if call.leg_id:
            await self.flow.ari("DELETE", f"/channels/{call.leg_id}")
        await self.flow.ari("DELETE", f"/channels/{ext}")
        self.stats["reconciled"] += 1
        return 1

    def _stored_call(self, ext: str) -> Any:
        try:
            return self.service.app.repository.get(call_id_for(ext))
        except AggregateNotFoundError:
            return None

    # -- reconnect -------------------------------------------------------------
    async def snapshot_asterisk(self) -> str | None:
        try:
            info = await self.rest.request("GET", "/asterisk/info")
        except Exception:  # noqa: BLE001 - an ARI without /asterisk/info still works
            return None
        started = ((info or {}).get("status") or {}).get("startup_time")
        if self.asterisk_started is None:
            self.asterisk_started = started
        return started

    async def reconcile(self) -> None:
        self.stats["reconnects"] += 1
        now = self.clock()
        previous = self.asterisk_started
        self.asterisk_started = None
        started = await self.snapshot_asterisk()
        restarted = previous is not None and started is not None and started != previous
        channels = await self.rest.request("GET", "/channels") or []
        bridges = await self.rest.request("GET", "/bridges") or []
        live = {str(c.get("id")) for c in channels if isinstance(c, dict)}
        if restarted:
            live = set()  # channel ids may be reused by the new Asterisk: nothing survived
            cause = f"lost: Asterisk restarted at {started}"
        else:
            cause = "lost: channel gone while disconnected from Asterisk"
        epoch = str(self.stats["reconnects"])
        out = self.tracker.reconcile(live, cause, now, epoch=epoch)
        self.stats["reconciled"] += sum(1 for s in out.signals if s.kind == "call_ended")
        await self.submit(out.commands)
        if self.flow is not None:
            for signal in out.signals:
                await self.flow.on_signal(signal)
            await self.flow.after_reconcile({str(b.get("id")) for b in bridges
                                             if isinstance(b, dict)})
            if not restarted:
                await self.recover([c for c in channels if isinstance(c, dict)], epoch)
