"""The fake Asterisk's state and the events it emits.

It keeps real state (channels, bridges and their members, playbacks, live and stored
recordings, channel variables) and emits the event sequences a real Asterisk 22 emits for
the same operations, including the quirks seen in ``tests/fixtures/ari_traces``. Every
operation is synchronous and runs on the event loop, so the emitted order is the order of
the state changes; anything that takes time (a prompt, a ringing phone) is an asyncio task
sleeping on the simulated clock.

The HTTP/WebSocket layer (``server.py``) maps REST calls onto the methods here; a
``SimError`` carries the status code and message Asterisk would answer.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from telephony_adapter.simulator.clock import SimClock
from telephony_adapter.simulator.endpoints import (
    AnswerAfter,
    Behaviour,
    Busy,
    HangUpAfter,
    NeverAnswer,
    Unavailable,
)
from telephony_adapter.simulator.sounds import media_seconds

ASTERISK_ID = "02:fc:00:00:00:01"

# Q.850 causes ARI reports, keyed by the ``reason`` of DELETE /channels/{id}.
HANGUP_REASONS = {"normal": 16, "busy": 17, "congestion": 34, "no_answer": 19, "timeout": 19,
                  "rejected": 21, "unallocated": 1, "normal_unspecified": 31,
                  "number_incomplete": 28, "codec_mismatch": 58, "interworking": 127,
                  "failure": 38, "answered_elsewhere": 26}
CAUSE_TEXT = {0: "Unknown", 1: "Unallocated (unassigned) number", 16: "Normal Clearing",
              17: "User busy", 19: "User alerting, no answer", 20: "Subscriber absent",
              21: "Call Rejected", 23: "Redirected to new destination", 26: "Answered elsewhere",
              28: "Invalid number format (incomplete number)", 31: "Normal, unspecified",
              34: "Circuit/channel congestion", 38: "Network out of order",
              58: "Bearer capability not available", 127: "Interworking, unspecified"}
RECORDING_FORMATS = {"wav", "wav16", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "g729",
                     "ogg", "wav49"}
SNOOP_DIRECTIONS = {"none", "in", "out", "both"}


class SimError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class SimChannel:
    id: str
    name: str
    state: str
    kind: str  # "trunk" (inbound call), "agent" (originated), "local", "snoop"
    creationtime: str
    caller: tuple[str, str] = ("", "")
    connected: tuple[str, str] = ("", "")
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    protocol_id: str = ""
    endpoint: str = ""
    app: Optional[str] = None          # Stasis application the channel is in
    subscribed: set[str] = field(default_factory=set)
    via_dialplan: bool = False         # entered Stasis from the dialplan (runs on after StasisEnd)
    bridge: Optional[str] = None
    vars: dict[str, str] = field(default_factory=dict)
    hold_indicated: bool = False
    moh_class: Optional[str] = None
    talk_detect: bool = False
    playbacks: list[str] = field(default_factory=list)  # current first, then queued
    sent_dtmf: list[str] = field(default_factory=list)
    originator_dial: bool = False      # a Dial is in progress for this channel
    peer_half: Optional[str] = None    # the other half of a Local channel pair
    snooped_by: set[str] = field(default_factory=set)
    snoop_target: Optional[str] = None
    refer_to: Optional[str] = None     # destination of the last REFER left to the app
    dialstring: str = ""               # for POST /channels/create, dialled later
    tasks: set[asyncio.Task] = field(default_factory=set)
    alive: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state,
                "protocol_id": self.protocol_id,
                "caller": {"name": self.caller[0], "number": self.caller[1]},
                "connected": {"name": self.connected[0], "number": self.connected[1]},
                "accountcode": "",
                "dialplan": {"context": self.context, "exten": self.exten,
                             "priority": self.priority, "app_name": self.app_name,
                             "app_data": self.app_data},
                "creationtime": self.creationtime, "language": "en"}


@dataclass
class SimBridge:
    id: str
    name: str
    bridge_type: str   # "mixing" | "holding"
    creationtime: str
    app: str
    channels: list[str] = field(default_factory=list)
    technology: str = "simple_bridge"
    moh_class: Optional[str] = None
    recordings: set[str] = field(default_factory=set)
    bridge_class: str = "stasis"  # "basic" for a dialplan Dial() between two phones
    creator: str = "Stasis"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "technology": self.technology, "bridge_type": self.bridge_type,
                "bridge_class": self.bridge_class, "creator": self.creator, "name": self.name,
                "channels": list(self.channels), "creationtime": self.creationtime,
                "video_mode": "talker"}


@dataclass
class SimPlayback:
    id: str
    media: list[str]
    target_uri: str
    state: str = "queued"
    index: int = 0
    task: Optional[asyncio.Task] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "media_uri": self.media[self.index]}
        if self.index + 1 < len(self.media):
            out["next_media_uri"] = self.media[self.index + 1]
        out.update({"target_uri": self.target_uri, "language": "en", "state": self.state})
        return out


@dataclass
class SimRecording:
    name: str
    format: str
    target_uri: str
    started_at: float
    state: str = "queued"
    duration: Optional[int] = None
    task: Optional[asyncio.Task] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "format": self.format, "state": self.state,
                               "target_uri": self.target_uri}
        if self.duration is not None:
            out["duration"] = self.duration
        return out


@dataclass
class Subscriber:
    """One event WebSocket: its app, its subscribeAll flag and its outgoing queue."""

    app: str
    subscribe_all: bool
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


def parse_caller_id(text: str | None) -> tuple[str, str]:
    """``"Queue" <1001>`` -> ("Queue", "1001"); ``1001`` -> ("", "1001")."""
    if not text:
        return ("", "")
    match = re.match(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$', text)
    if match:
        return (match.group(1).strip(), match.group(2).strip())
    return ("", text.strip())


class Asterisk:
    """State + event emission. One instance per simulator; survives ``restart()``."""

    def __init__(self, clock: SimClock, *, seed: int = 0, keep_events: int = 200_000) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.channels: dict[str, SimChannel] = {}
        self.bridges: dict[str, SimBridge] = {}
        self.playbacks: dict[str, SimPlayback] = {}
        self.live_recordings: dict[str, SimRecording] = {}
        self.stored_recordings: dict[str, SimRecording] = {}
        self.endpoints: dict[str, Behaviour] = {}
        self.endpoint_busy_until: dict[str, float] = {}
        self.subscribers: list[Subscriber] = []
        self.events: deque[dict[str, Any]] = deque(maxlen=keep_events)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._uid = 0
        self._name_seq = 0
        self._local_seq = 0
        self._snoop_seq = 0
        self._changed = asyncio.Event()
        self.startup_time = clock.stamp()

    # --- ids and time ------------------------------------------------------------------

    def _unique_id(self) -> str:
        # Asterisk's ``<unix>.<n>``: a counter that survives restarts keeps ids unique.
        uid = f"{int(self.clock.now().timestamp())}.{self._uid}"
        self._uid += 1
        return uid

    def _next_name_seq(self) -> int:
        n = self._name_seq
        self._name_seq += 1
        return n

    def spawn(self, coro: Any, owner: SimChannel | None = None) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        if owner is not None:
            owner.tasks.add(task)
            task.add_done_callback(owner.tasks.discard)
        return task

    # --- event emission ------------------------------------------------------------------

    def emit(self, type_: str, fields: dict[str, Any], *, channels: Iterable[SimChannel] = (),
             bridge: SimBridge | None = None, twice_for_subscribe_all: bool = False) -> None:
        base: dict[str, Any] = {"type": type_, "timestamp": self.clock.stamp()}
        base.update(fields)
        base["asterisk_id"] = ASTERISK_ID
        apps: set[str] = set()
        for ch in channels:
            apps |= ch.subscribed
        if bridge is not None:
            apps.add(bridge.app)
        for sub in self.subscribers:
            if sub.subscribe_all or sub.app in apps:
                message = dict(base, application=sub.app)
                sub.queue.put_nowait(message)
                # Asterisk delivers bridge recording events once per subscription path.
                if twice_for_subscribe_all and sub.subscribe_all:
                    sub.queue.put_nowait(message)
        logged = dict(base, application=next(iter(apps), ""))
        self.events.append(logged)
        for listener in self.listeners:
            listener(logged)
        self._changed.set()

    async def changed(self, timeout: float | None = None) -> None:
        """Wait (real seconds) until the next emitted event; for scripted callers."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def registered(self, app: str) -> bool:
        return any(sub.app == app for sub in self.subscribers)

    def _varset(self, ch: SimChannel, variable: str, value: str) -> None:
        ch.vars[variable] = value
        self.emit("ChannelVarset", {"variable": variable, "value": value,
                                    "channel": ch.to_json()}, channels=[ch])

    def _device(self, name: str, state: str) -> None:
        self.emit("DeviceStateChanged", {"device_state": {"name": name, "state": state}})

    @staticmethod
    def _device_name(ch: SimChannel) -> str:
        return ch.name.rsplit("-", 1)[0] if ch.kind != "local" else ch.name.split("-")[0]

    # --- lookups -----------------------------------------------------------------------

    def channel(self, channel_id: str) -> SimChannel:
        ch = self.channels.get(channel_id)
        if ch is None:
            raise SimError(404, "Channel not found")
        return ch

    def stasis_channel(self, channel_id: str) -> SimChannel:
        ch = self.channel(channel_id)
        if ch.app is None:
            raise SimError(409, "Channel not in Stasis application")
        return ch

    def bridge(self, bridge_id: str) -> SimBridge:
        br = self.bridges.get(bridge_id)
        if br is None:
            raise SimError(404, "Bridge not found")
        return br

    # --- channels entering Stasis ----------------------------------------------------------

    def _new_channel(self, *, channel_id: str | None, name: str, state: str, kind: str,
                     **kw: Any) -> SimChannel:
        cid = channel_id or self._unique_id()
        if cid in self.channels:
            raise SimError(409, "Channel with given unique ID already exists")
        ch = SimChannel(id=cid, name=name, state=state, kind=kind,
                        creationtime=self.clock.stamp(), **kw)
        self.channels[cid] = ch
        return ch

    def _enter_stasis(self, ch: SimChannel, app: str, args: list[str],
                      replace: SimChannel | None = None) -> None:
        ch.app_name, ch.app_data = "Stasis", ",".join([app, *args])
        ch.app = app
        ch.subscribed.add(app)
        self._varset(ch, "STASISSTATUS", "")
        fields: dict[str, Any] = {"args": list(args), "channel": ch.to_json()}
        if replace is not None:
            fields["replace_channel"] = replace.to_json()
        self.emit("StasisStart", fields, channels=[ch])

    def place_call(self, caller: str, dialed: str, *, caller_name: str | None = None,
                   app: str, args: Iterable[str] = (), channel_id: str | None = None) -> str:
        """An inbound trunk call that runs ``[from-trunk] -> Stasis(app)``."""
        name = f"PJSIP/trunk-{self._next_name_seq():08x}"
        ch = self._new_channel(channel_id=channel_id, name=name, state="Ring", kind="trunk",
                               caller=(caller_name if caller_name is not None
                                       else f"Customer {caller}", caller),
                               context="from-trunk", exten=dialed, endpoint="PJSIP/trunk",
                               protocol_id=f"{uuid.uuid4()}", via_dialplan=True)
        self.emit("ChannelCreated", {"channel": ch.to_json()}, channels=[ch])
        self._varset(ch, "SIPDOMAIN", "127.0.0.1")
        ch.app_name = "NoOp"
        self.emit("ChannelDialplan", {"dialplan_app": "NoOp", "dialplan_app_data": "",
                                      "channel": ch.to_json()}, channels=[ch])
        ch.priority, ch.app_name, ch.app_data = 2, "Stasis", ",".join([app, *args])
        self.emit("ChannelDialplan", {"dialplan_app": "Stasis", "dialplan_app_data": ch.app_data,
                                      "channel": ch.to_json()}, channels=[ch])
        if not self.registered(app):
            # Stasis() fails when no WebSocket has registered the application.
            self._varset(ch, "STASISSTATUS", "FAILED")
            self._teardown(ch, cause=16, first=None)
            return ch.id
        self._enter_stasis(ch, app, list(args))
        return ch.id

    # --- originate -----------------------------------------------------------------------

    def originate(self, endpoint: str, *, app: str | None, app_args: list[str],
                  channel_id: str | None, caller_id: str | None, timeout: float,
                  context: str | None = None, extension: str | None = None,
                  other_channel_id: str | None = None) -> "Created":
        if "/" not in endpoint:
            raise SimError(400, "Endpoint must be in the format tech/resource")
        if app is None and not extension:
            raise SimError(400, "Application or extension must be specified")
        tech, resource = endpoint.split("/", 1)
        caller = parse_caller_id(caller_id)
        if tech.lower() == "local":
            return self._originate_local(endpoint, resource, app=app, app_args=app_args,
                                         channel_id=channel_id,
                                         other_channel_id=other_channel_id, caller=caller)
        dialstring = resource.split("@", 1)[0]
        ch = self._new_channel(channel_id=channel_id,
                               name=f"{tech}/{dialstring}-{self._next_name_seq():08x}",
                               state="Down", kind="agent", context="internal", exten="s",
                               endpoint=f"{tech}/{dialstring}")
        if app:
            ch.subscribed.add(app)
        self.emit("ChannelCreated", {"channel": ch.to_json()}, channels=[ch])
        ch.app_name, ch.app_data = "AppDial2", "(Outgoing Line)"
        self.emit("ChannelDialplan", {"dialplan_app": "AppDial2",
                                      "dialplan_app_data": "(Outgoing Line)",
                                      "channel": ch.to_json()}, channels=[ch])
        ch.caller = caller
        self.emit("ChannelCallerId", {"caller_presentation": 0,
                                      "caller_presentation_txt": "Presentation Allowed, Not Screened",
                                      "channel": ch.to_json()}, channels=[ch])
        ch.connected = caller
        self.emit("ChannelConnectedLine", {"channel": ch.to_json()}, channels=[ch])
        ch.originator_dial = True
        self._dial(ch, "", dialstring)
        snapshot = ch.to_json()
        self.spawn(self._ring(ch, dialstring, app, app_args, timeout), owner=ch)
        return Created(ch, snapshot)

    def create_channel(self, endpoint: str, *, app: str, app_args: list[str],
                       channel_id: str | None) -> "Created":
        """``POST /channels/create``: the channel is in Stasis before it is dialled."""
        if "/" not in endpoint:
            raise SimError(400, "Endpoint must be in the format tech/resource")
        tech, resource = endpoint.split("/", 1)
        dialstring = resource.split("@", 1)[0]
        ch = self._new_channel(channel_id=channel_id,
                               name=f"{tech}/{dialstring}-{self._next_name_seq():08x}",
                               state="Down", kind="agent", context="internal", exten="s",
                               endpoint=f"{tech}/{dialstring}")
        ch.dialstring = dialstring
        ch.subscribed.add(app)
        self.emit("ChannelCreated", {"channel": ch.to_json()}, channels=[ch])
        snapshot = ch.to_json()
        self._enter_stasis(ch, app, app_args)
        return Created(ch, snapshot)

    def dial_created(self, channel_id: str, *, timeout: float) -> None:
        ch = self.stasis_channel(channel_id)
        if ch.state != "Down" or ch.originator_dial:
            raise SimError(409, "Channel is already dialed")
        dialstring = ch.dialstring or ch.endpoint.split("/", 1)[-1]
        ch.originator_dial = True
        self._dial(ch, "", dialstring)
        self.spawn(self._ring(ch, dialstring, None, [], timeout), owner=ch)

    def _dial(self, ch: SimChannel, status: str, dialstring: str) -> None:
        self.emit("Dial", {"dialstatus": status, "forward": "", "dialstring": dialstring,
                           "peer": ch.to_json()}, channels=[ch])

    async def _ring(self, ch: SimChannel, dialstring: str, app: str | None, args: list[str],
                    timeout: float) -> None:
        behaviour = self.endpoints.get(ch.endpoint, Unavailable())
        now = self.clock.elapsed()
        in_use = any(c.alive and c is not ch and c.endpoint == ch.endpoint and c.kind == "agent"
                     for c in self.channels.values())
        if (isinstance(behaviour, AnswerAfter) and behaviour.busy_when_in_use and in_use) or \
                self.endpoint_busy_until.get(ch.endpoint, -1) > now:
            behaviour = Busy()
        await self.clock.sleep(0.001)
        if isinstance(behaviour, Unavailable):
            self._dial(ch, "CHANUNAVAIL", dialstring)
            self._destroy(ch, cause=20)
            return
        if isinstance(behaviour, Busy):
            await self.clock.sleep(behaviour.delay)
            self.emit("ChannelHangupRequest", {"cause": 17, "tech_cause": 486,
                                               "channel": ch.to_json()}, channels=[ch])
            self._dial(ch, "BUSY", dialstring)
            self._destroy(ch, cause=17, tech_cause=486, device_event=False)
            return
        ch.state = "Ringing"
        self._dial(ch, "RINGING", dialstring)
        self.emit("ChannelStateChange", {"channel": ch.to_json()}, channels=[ch])
        self._device(ch.endpoint, "RINGING")
        if isinstance(behaviour, NeverAnswer):
            ring = float("inf")
        elif isinstance(behaviour, HangUpAfter):
            ring = behaviour.ring
        else:
            ring = behaviour.ring_seconds(self.rng)
        if ring >= timeout:
            await self.clock.sleep(timeout)
            # No ``Dial NOANSWER`` here: Asterisk just CANCELs and destroys the channel.
            self._destroy(ch, cause=19, tech_cause=480)
            return
        await self.clock.sleep(ring)
        ch.state = "Up"
        ch.protocol_id = str(uuid.uuid4())
        ch.originator_dial = False
        self.emit("ChannelStateChange", {"channel": ch.to_json()}, channels=[ch])
        self._dial(ch, "ANSWER", dialstring)
        if app:
            self._enter_stasis(ch, app, args)
        self._device(ch.endpoint, "INUSE")
        if isinstance(behaviour, HangUpAfter):
            await self.clock.sleep(behaviour.talk)
            self.remote_hangup(ch.id)

    def _originate_local(self, endpoint: str, resource: str, *, app: str | None,
                         app_args: list[str], channel_id: str | None,
                         other_channel_id: str | None, caller: tuple[str, str]) -> "Created":
        # Both halves of the Local pair exist; ``;2`` runs the dialplan (e.g. ``[agents]``
        # Answer()) and answers at once, ``;1`` enters our app (local_snoop trace).
        exten, _, context = resource.partition("@")
        seq = self._local_seq
        self._local_seq += 1
        base = f"Local/{resource}-{seq:08x}"
        one = self._new_channel(channel_id=channel_id, name=f"{base};1", state="Down",
                                kind="local", context=context or "default", exten=exten,
                                endpoint=endpoint)
        two = self._new_channel(channel_id=other_channel_id, name=f"{base};2", state="Ring",
                                kind="local", context=context or "default", exten=exten,
                                endpoint=endpoint)
        one.peer_half, two.peer_half = two.id, one.id
        if app:
            one.subscribed.add(app)
        self.emit("ChannelCreated", {"channel": one.to_json()}, channels=[one])
        self.emit("ChannelCreated", {"channel": two.to_json()}, channels=[two])
        one.app_name, one.app_data = "AppDial2", "(Outgoing Line)"
        one.caller = one.connected = caller
        snapshot = one.to_json()
        one.originator_dial = True
        self._dial(one, "", "")

        async def answer() -> None:
            await self.clock.sleep(0.001)
            one.originator_dial = False
            for half in (two, one):
                half.state = "Up"
                self.emit("ChannelStateChange", {"channel": half.to_json()}, channels=[half])
            self._dial(one, "ANSWER", "")
            if app:
                self._enter_stasis(one, app, app_args)

        self.spawn(answer(), owner=one)
        return Created(one, snapshot)

    # --- hang-ups ------------------------------------------------------------------------

    def hangup(self, channel_id: str, reason: str | None = None,
               reason_code: int | None = None) -> None:
        """``DELETE /channels/{id}``."""
        ch = self.channel(channel_id)
        if reason is not None and reason not in HANGUP_REASONS:
            raise SimError(400, "Invalid reason for hangup provided")
        cause = reason_code if reason_code is not None else HANGUP_REASONS.get(reason or "normal", 16)
        if ch.originator_dial and ch.app is None:
            # Cancelling a ringing agent leg (the ACD gave up or the caller left).
            self.emit("ChannelHangupRequest", {"cause": 32, "soft": True,
                                               "channel": ch.to_json()}, channels=[ch])
            self._dial(ch, "CANCEL", ch.endpoint.split("/", 1)[-1])
            self._destroy(ch, cause=cause)
            return
        self._teardown(ch, cause=cause, first={"cause": 32, "soft": True})

    def remote_hangup(self, channel_id: str, *, cause: int = 16) -> None:
        """The far end hangs up (SIP BYE from the caller's carrier or the agent's phone)."""
        ch = self.channels.get(channel_id)
        if ch is None or not ch.alive:
            return
        if ch.originator_dial and ch.app is None:
            self._dial(ch, "CANCEL", ch.endpoint.split("/", 1)[-1])
            self._destroy(ch, cause=cause)
            return
        # A carrier BYE arrives without a cause; an agent phone's BYE carries 16.
        first = {} if ch.kind == "trunk" else {"cause": cause}
        if ch.kind == "trunk" and ch.playbacks and ch.bridge is None:
            # Seen in sip_dtmf_rfc4733: a BYE during a prompt ends with cause 0 "Unknown".
            cause = 0
        self._teardown(ch, cause=cause, first=first)

    def _teardown(self, ch: SimChannel, *, cause: int, first: dict[str, Any] | None,
                  tech_cause: int | None = None) -> None:
        """ChannelHangupRequest -> (PlaybackFinished failed) -> ChannelLeftBridge -> StasisEnd
        -> ChannelDestroyed, the order every trace shows."""
        if not ch.alive:
            return
        ch.alive = False
        if first is not None:
            self.emit("ChannelHangupRequest", {**first, "channel": ch.to_json()}, channels=[ch])
        for pb_id in list(ch.playbacks):
            self._finish_playback(pb_id, "failed")
        for rec in [r for r in self.live_recordings.values()
                    if r.target_uri == f"channel:{ch.id}"]:
            self._finish_recording(rec)
        if ch.bridge is not None:
            self._leave_bridge(ch)
        was_in_stasis = ch.app is not None
        if was_in_stasis:
            self._stasis_end(ch)
        half = self.channels.get(ch.peer_half or "")
        if half is not None and half.alive:
            # The other half of a Local pair is told first, destroyed after this one.
            self.emit("ChannelHangupRequest", {"cause": 16, "channel": half.to_json()},
                      channels=[half])
        if was_in_stasis:
            if ch.via_dialplan:
                second = {"cause": 16, "soft": True}
                if tech_cause is not None:
                    second["tech_cause"] = tech_cause
                self.emit("ChannelHangupRequest", {**second, "channel": ch.to_json()},
                          channels=[ch])
        target = self.channels.get(ch.snoop_target or "")
        if ch.kind == "snoop" and target is not None and target.alive:
            # Asterisk keeps a hung-up snoop channel until the snooped channel goes
            # (local_snoop: ChannelDestroyed of snoop-4 comes after the caller's).
            return
        self._destroy(ch, cause=cause, tech_cause=tech_cause)

    def _stasis_end(self, ch: SimChannel) -> None:
        self.emit("StasisEnd", {"channel": ch.to_json()}, channels=[ch])
        ch.app = None
        self._varset(ch, "STASISSTATUS", "SUCCESS")

    def _destroy(self, ch: SimChannel, *, cause: int, tech_cause: int | None = None,
                 device_event: bool = True) -> None:
        ch.alive = False
        ch.originator_dial = False
        for pb_id in list(ch.playbacks):
            self._finish_playback(pb_id, "failed")
        if ch.bridge is not None:
            self._leave_bridge(ch)
        if ch.app is not None:
            self._stasis_end(ch)
        fields: dict[str, Any] = {"cause": cause, "cause_txt": CAUSE_TEXT.get(cause, "Unknown")}
        if tech_cause is not None:
            fields["tech_cause"] = tech_cause
        ch.app_name, ch.app_data = "", ""
        fields["channel"] = ch.to_json()
        self.emit("ChannelDestroyed", fields, channels=[ch])
        self.channels.pop(ch.id, None)
        if ch.snoop_target and ch.snoop_target in self.channels:
            self.channels[ch.snoop_target].snooped_by.discard(ch.id)
        if device_event and ch.kind != "snoop":
            self._device(self._device_name(ch), "NOT_INUSE")
        for snoop_id in list(ch.snooped_by):
            snoop = self.channels.get(snoop_id)
            if snoop is None:
                continue
            if snoop.alive:
                self._teardown(snoop, cause=16, first={"cause": 16, "soft": True})
            else:
                self._destroy(snoop, cause=16)
        current = asyncio.current_task()
        for task in list(ch.tasks):
            if task is not current:
                task.cancel()
        if ch.peer_half and ch.peer_half in self.channels:
            half = self.channels[ch.peer_half]
            half.peer_half = None
            self._teardown(half, cause=16, first={"cause": 16, "soft": True})

    # --- simple channel operations -----------------------------------------------------------

    def answer(self, channel_id: str) -> None:
        ch = self.stasis_channel(channel_id)
        if ch.state == "Up":
            return
        ch.state = "Up"
        if not ch.protocol_id:
            ch.protocol_id = str(uuid.uuid4())
        self.emit("ChannelStateChange", {"channel": ch.to_json()}, channels=[ch])
        self._device(self._device_name(ch), "INUSE")

    def ring(self, channel_id: str, on: bool = True) -> None:
        # 180 Ringing towards the caller: an indication, no state change and no event.
        self.stasis_channel(channel_id)

    def set_hold(self, channel_id: str, on: bool) -> None:
        # Indicating hold to the far end is not the endpoint putting us on hold:
        # Asterisk emits no ChannelHold for it (see local_hold_moh_redirect_continue).
        self.stasis_channel(channel_id).hold_indicated = on

    def set_moh(self, channel_id: str, moh_class: str | None) -> None:
        self.stasis_channel(channel_id).moh_class = moh_class

    def send_dtmf(self, channel_id: str, dtmf: str) -> None:
        ch = self.stasis_channel(channel_id)
        if not dtmf or not re.fullmatch(r"[0-9A-D*#,]+", dtmf):
            raise SimError(400, "DTMF is required")
        ch.sent_dtmf.append(dtmf)

    def set_variable(self, channel_id: str, variable: str | None, value: str) -> None:
        ch = self.stasis_channel(channel_id)
        if not variable:
            raise SimError(400, "Variable name is required")
        if variable.upper().startswith("TALK_DETECT("):
            ch.talk_detect = True
        self._varset(ch, variable, value)

    def get_variable(self, channel_id: str, variable: str | None) -> str:
        ch = self.stasis_channel(channel_id)
        if not variable:
            raise SimError(400, "Variable name is required")
        if variable not in ch.vars:
            raise SimError(404, "Provided variable was not found")
        return ch.vars[variable]

    def press(self, channel_id: str, digit: str, duration_ms: int = 280) -> None:
        ch = self.channel(channel_id)
        self.emit("ChannelDtmfReceived", {"digit": digit, "duration_ms": duration_ms,
                                          "channel": ch.to_json()}, channels=[ch])

    def endpoint_hold(self, channel_id: str, on: bool, music_class: str = "default") -> None:
        """The phone itself holds (re-INVITE sendonly) or resumes (sendrecv)."""
        ch = self.channel(channel_id)
        if on:
            self.emit("ChannelHold", {"musicclass": music_class, "channel": ch.to_json()},
                      channels=[ch])
        else:
            self.emit("ChannelUnhold", {"channel": ch.to_json()}, channels=[ch])

    def talk(self, channel_id: str, started: bool, duration_ms: int = 0) -> None:
        ch = self.channel(channel_id)
        if not ch.talk_detect:
            return
        if started:
            self.emit("ChannelTalkingStarted", {"channel": ch.to_json()}, channels=[ch])
        else:
            self.emit("ChannelTalkingFinished", {"channel": ch.to_json(),
                                                 "duration": duration_ms}, channels=[ch])

    def redirect(self, channel_id: str, endpoint: str | None) -> None:
        if not endpoint:
            raise SimError(400, "Required parameter endpoint not provided")
        ch = self.stasis_channel(channel_id)
        tech = ch.name.split("/", 1)[0]
        if endpoint.split("/", 1)[0].lower() != tech.lower():
            raise SimError(422, "Endpoint technology does not match channel technology")
        if ch.kind == "local":
            # Asterisk answers 204 and does nothing for Local channels
            # ("Unsupported transfer requested"), as the local_hold trace shows.
            return
        # An unanswered PJSIP channel is redirected with a 302; an answered one by a REFER
        # the far end accepts. Both end the channel with cause 23.
        self._teardown(ch, cause=23, first={"cause": 23, "tech_cause": 302}, tech_cause=302)

    def continue_in_dialplan(self, channel_id: str, context: str | None, extension: str | None,
                             priority: int | None) -> None:
        ch = self.stasis_channel(channel_id)
        if ch.bridge is not None:
            self._leave_bridge(ch)
        self._stasis_end(ch)
        ch.context = context or ch.context
        ch.exten = extension or ch.exten
        ch.priority = priority or 1
        ch.app_name, ch.app_data = "Playback", "demo-congrats"
        self.emit("ChannelDialplan", {"dialplan_app": ch.app_name,
                                      "dialplan_app_data": ch.app_data,
                                      "channel": ch.to_json()}, channels=[ch])

    def snoop(self, channel_id: str, *, app: str | None, spy: str, whisper: str,
              app_args: list[str], snoop_id: str | None) -> "Created":
        target = self.channel(channel_id)
        if not app:
            raise SimError(400, "Required parameter app not provided")
        if spy not in SNOOP_DIRECTIONS or whisper not in SNOOP_DIRECTIONS:
            raise SimError(400, "Invalid direction specified for spy or whisper")
        if spy == "none" and whisper == "none":
            raise SimError(400, "Snooping requires spy or whisper")
        seq = self._snoop_seq
        self._snoop_seq += 1
        ch = self._new_channel(channel_id=snoop_id, name=f"Snoop/{target.id}-{seq:08x}",
                               state="Up", kind="snoop", snoop_target=target.id)
        ch.subscribed.add(app)
        ch.vars["SNOOP_SPY"], ch.vars["SNOOP_WHISPER"] = spy, whisper
        target.snooped_by.add(ch.id)
        self.emit("ChannelCreated", {"channel": ch.to_json()}, channels=[ch])
        ch.app_name, ch.app_data = "Stasis", ",".join([app, *app_args])
        self.emit("ChannelDialplan", {"dialplan_app": "Stasis", "dialplan_app_data": ch.app_data,
                                      "channel": ch.to_json()}, channels=[ch])
        snapshot = ch.to_json()
        self._enter_stasis(ch, app, app_args)
        return Created(ch, snapshot)

    def transfer_progress(self, channel_id: str, states: str | None) -> None:
        ch = self.stasis_channel(channel_id)
        if not states:
            raise SimError(400, "Required parameter states not provided")
        destination = {"destination": ch.refer_to} if ch.refer_to else {}
        self.emit("ChannelTransfer", {"refer_to": {"requested_destination": destination},
                                      "referred_by": {"source_channel": ch.to_json()},
                                      "state": states}, channels=[ch])

    # --- REFER from an agent phone -------------------------------------------------------

    def refer(self, channel_id: str, target: str, context: str = "internal") -> str | None:
        """The agent phone sends REFER Refer-To: sip:<target>. Returns the new Local;1 id."""
        agent = self.channel(channel_id)
        bridge = self.bridges.get(agent.bridge or "")
        if agent.vars.get("PJSIP_TRANSFER_HANDLING()") == "ari-only":
            agent.refer_to = target
            referred_by: dict[str, Any] = {"source_channel": agent.to_json()}
            if bridge is not None:
                others = [self.channels[c] for c in bridge.channels if c != agent.id]
                if others:
                    referred_by["connected_channel"] = others[0].to_json()
                referred_by["bridge"] = bridge.to_json()
            self.emit("ChannelTransfer", {"refer_to": {"requested_destination":
                                                       {"destination": target}},
                                          "referred_by": referred_by}, channels=[agent])
            return None
        if bridge is None or agent.app is None:
            raise SimError(409, "Channel is not bridged in Stasis; REFER rejected")
        transferee = next((self.channels[c] for c in bridge.channels if c != agent.id), None)
        self.emit("ChannelUnhold", {"channel": agent.to_json()}, channels=[agent])
        seq = self._local_seq
        self._local_seq += 1
        base = f"Local/{target}@{context}-{seq:08x}"
        one = self._new_channel(channel_id=None, name=f"{base};1", state="Down", kind="local",
                                context=context, exten=target)
        two = self._new_channel(channel_id=None, name=f"{base};2", state="Ring", kind="local",
                                context=context, exten=target)
        one.peer_half, two.peer_half = two.id, one.id
        self.emit("ChannelCreated", {"channel": one.to_json()}, channels=[one])
        self.emit("ChannelCreated", {"channel": two.to_json()}, channels=[two])
        self._varset(one, "BLINDTRANSFER", agent.name)
        self._varset(two, "BLINDTRANSFER", agent.name)
        replace_snapshot = one.to_json()
        self._enter_stasis(one, agent.app, [], replace=agent)
        self._leave_bridge(agent)
        self._join_bridge(bridge, one)
        two.state = "Up"
        self.emit("ChannelStateChange", {"channel": two.to_json()}, channels=[two])
        one.state = "Up"
        if transferee is not None:
            one.connected = transferee.caller
        self.emit("ChannelStateChange", {"channel": one.to_json()}, channels=[one])
        self._dial(one, "ANSWER", "")
        fields: dict[str, Any] = {"channel": agent.to_json(), "exten": target,
                                  "context": context, "result": "Success", "is_external": True}
        if transferee is not None:
            fields["transferee"] = transferee.to_json()
        fields["replace_channel"] = replace_snapshot
        fields["bridge"] = bridge.to_json()
        self.emit("BridgeBlindTransfer", fields, channels=[agent], bridge=bridge)
        # The transferer's phone gets NOTIFY 200 and hangs up.
        self._teardown(agent, cause=16, first={"cause": 16})
        return one.id

    # --- attended transfer by an agent phone ----------------------------------------------

    def phone_dial(self, channel_id: str, target: str, context: str = "internal",
                   timeout: float = 30.0) -> tuple[str, str]:
        """The agent's phone, with the caller on hold, calls ``target`` itself: a
        second channel of the same phone runs the dialplan and dials
        ``PJSIP/<target>``. Neither is in Stasis (only subscribeAll sees them);
        once the target answers, both are in a basic bridge. Returns (the
        phone's second channel, the target's channel)."""
        first = self.channel(channel_id)
        second = self._new_channel(channel_id=None,
                                   name=f"{first.endpoint}-{self._next_name_seq():08x}",
                                   state="Up", kind="phone", context=context, exten=target,
                                   endpoint=first.endpoint, caller=first.caller,
                                   protocol_id=str(uuid.uuid4()))
        self.emit("ChannelCreated", {"channel": second.to_json()}, channels=[second])
        second.app_name, second.app_data = "Dial", f"PJSIP/{target}"
        self.emit("ChannelDialplan", {"dialplan_app": "Dial", "dialplan_app_data": second.app_data,
                                      "channel": second.to_json()}, channels=[second])
        callee = self._new_channel(channel_id=None,
                                   name=f"PJSIP/{target}-{self._next_name_seq():08x}",
                                   state="Down", kind="agent", context=context, exten="s",
                                   endpoint=f"PJSIP/{target}", caller=first.caller)
        self.emit("ChannelCreated", {"channel": callee.to_json()}, channels=[callee])
        callee.originator_dial = True
        self._dial(callee, "", target)
        self.spawn(self._phone_ring(second, callee, target, timeout), owner=callee)
        return second.id, callee.id

    async def _phone_ring(self, second: SimChannel, callee: SimChannel, target: str,
                          timeout: float) -> None:
        await self._ring(callee, target, None, [], timeout)
        if not (callee.alive and callee.state == "Up" and second.alive):
            if second.alive:  # the colleague never answered: the phone gives up
                self._teardown(second, cause=16, first={"cause": 16})
            return
        br = SimBridge(id=str(uuid.uuid4()), name="", bridge_type="mixing",
                       creationtime=self.clock.stamp(), app="", bridge_class="basic",
                       creator="")
        self.bridges[br.id] = br
        self.emit("BridgeCreated", {"bridge": br.to_json()}, bridge=br)
        for ch in (second, callee):
            self._join_bridge(br, ch)

    def refer_attended(self, channel_id: str, second_id: str) -> str:
        """The agent phone completes the transfer: REFER on the first call with
        ``Replaces`` naming the second. A Stasis bridge refuses merges and swaps
        (``AST_BRIDGE_FLAG_TRANSFER_BRIDGE_ONLY``), so Asterisk links the two
        bridges (``attended_transfer_bridge`` in ``main/bridge.c``): a
        ``Local/_attended@transfer`` pair whose ``;1`` takes the agent's seat in
        our bridge (entering Stasis with ``replace_channel``) and whose ``;2``
        takes the phone's second channel's seat beside the colleague. Then
        ``BridgeAttendedTransfer`` (destination_type ``link``) and the phone
        hangs up both its calls. Returns the ``;1`` now in our bridge."""
        first, second = self.channel(channel_id), self.channel(second_id)
        bridge = self.bridges.get(first.bridge or "")
        if bridge is None or first.app is None:
            raise SimError(409, "Channel is not bridged in Stasis; REFER rejected")
        other = self.bridges.get(second.bridge or "")
        target = next((self.channels[c] for c in (other.channels if other else [])
                       if c != second.id), None)
        if other is None or target is None:
            raise SimError(409, "The consulted party has not answered; REFER rejected")
        transferee = next((self.channels[c] for c in bridge.channels if c != first.id), None)
        # the message carries the snapshots taken when the transfer began
        fields: dict[str, Any] = {"transferer_first_leg": first.to_json(),
                                  "transferer_second_leg": second.to_json()}
        if transferee is not None:
            fields["transferee"] = transferee.to_json()
        fields["transfer_target"] = target.to_json()
        fields["transferer_first_leg_bridge"] = bridge.to_json()
        fields["transferer_second_leg_bridge"] = other.to_json()
        for ch in [self.channels[c] for c in bridge.channels]:
            self._varset(ch, "ATTENDEDTRANSFER",
                         ch.vars.get("BRIDGEPEER", "") if ch is first else first.name)
        one, two = self._local_pair("_attended", "transfer")
        self._varset(one, "ATTENDEDTRANSFER", first.name)
        self._join_bridge(other, two)
        self._leave_bridge(second)
        self._enter_stasis(one, first.app, [], replace=first)
        self._leave_bridge(first)
        self._join_bridge(bridge, one)
        for half in (two, one):
            half.state = "Up"
            self.emit("ChannelStateChange", {"channel": half.to_json()}, channels=[half])
        fields.update({"result": "Success", "is_external": True, "destination_type": "link",
                       "destination_link_first_leg": one.to_json(),
                       "destination_link_second_leg": two.to_json()})
        self.emit("BridgeAttendedTransfer", fields, channels=[first], bridge=bridge)
        # NOTIFY 200 to the phone, which hangs up both of its calls
        self._teardown(first, cause=16, first={"cause": 16})
        self._teardown(second, cause=16, first={"cause": 16})
        return one.id

    def _local_pair(self, exten: str, context: str) -> tuple[SimChannel, SimChannel]:
        seq = self._local_seq
        self._local_seq += 1
        base = f"Local/{exten}@{context}-{seq:08x}"
        one = self._new_channel(channel_id=None, name=f"{base};1", state="Down", kind="local",
                                context=context, exten=exten)
        two = self._new_channel(channel_id=None, name=f"{base};2", state="Ring", kind="local",
                                context=context, exten=exten)
        one.peer_half, two.peer_half = two.id, one.id
        self.emit("ChannelCreated", {"channel": one.to_json()}, channels=[one])
        self.emit("ChannelCreated", {"channel": two.to_json()}, channels=[two])
        return one, two

    # --- bridges -------------------------------------------------------------------------

    def create_bridge(self, types: str | None, bridge_id: str | None, name: str | None,
                      app: str) -> SimBridge:
        bid = bridge_id or str(uuid.uuid4())
        if bid in self.bridges:
            raise SimError(409, "Bridge with the same bridgeId already exists")
        kinds = {t.strip() for t in (types or "mixing").split(",") if t.strip()}
        unknown = kinds - {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu",
                           "video_single", "sdp_label"}
        if unknown:
            raise SimError(400, f"Invalid bridge type: {','.join(sorted(unknown))}")
        holding = "holding" in kinds
        br = SimBridge(id=bid, name=name or "", bridge_type="holding" if holding else "mixing",
                       creationtime=self.clock.stamp(), app=app,
                       technology="holding_bridge" if holding else "simple_bridge")
        self.bridges[bid] = br
        self.emit("BridgeCreated", {"bridge": br.to_json()}, bridge=br)
        return br

    def add_channels(self, bridge_id: str, channel_ids: list[str]) -> None:
        br = self.bridge(bridge_id)
        if not channel_ids:
            raise SimError(400, "Required parameter channel not provided")
        chans = []
        for cid in channel_ids:
            ch = self.channels.get(cid)
            if ch is None:
                raise SimError(400, "Channel not found")
            if ch.app is None:
                raise SimError(422, "Channel not in Stasis application")
            chans.append(ch)
        for ch in chans:
            if ch.bridge == br.id:
                continue
            if ch.bridge is not None:
                self._leave_bridge(ch)
            self._join_bridge(br, ch)

    def _join_bridge(self, br: SimBridge, ch: SimChannel) -> None:
        br.channels.append(ch.id)
        ch.bridge = br.id
        self.emit("ChannelEnteredBridge", {"bridge": br.to_json(), "channel": ch.to_json()},
                  channels=[ch], bridge=br)
        if br.bridge_type == "mixing" and len(br.channels) >= 2:
            members = [self.channels[c] for c in br.channels if c in self.channels]
            for member in members:
                peers = ",".join(m.name for m in members if m is not member)
                self._varset(member, "BRIDGEPEER", peers)
            if len(members) == 2:
                a, b = members
                a.connected, b.connected = b.caller, a.caller
                for member in (b, a):
                    self.emit("ChannelConnectedLine", {"channel": member.to_json()},
                              channels=[member])
            self._update_technology(br)

    def _update_technology(self, br: SimBridge) -> None:
        # Two PJSIP channels get a native RTP bridge; anything else is mixed in Asterisk.
        members = [self.channels[c] for c in br.channels if c in self.channels]
        if br.bridge_type == "mixing":
            both_sip = len(members) == 2 and all(m.name.startswith("PJSIP/") for m in members)
            br.technology = "native_rtp" if both_sip else "simple_bridge"

    def remove_channels(self, bridge_id: str, channel_ids: list[str]) -> None:
        br = self.bridge(bridge_id)
        if not channel_ids:
            raise SimError(400, "Required parameter channel not provided")
        for cid in channel_ids:
            ch = self.channels.get(cid)
            if ch is None:
                raise SimError(400, "Channel not found")
            if ch.bridge != br.id:
                raise SimError(422, "Channel not in this bridge")
        for cid in channel_ids:
            self._leave_bridge(self.channels[cid])

    def _leave_bridge(self, ch: SimChannel) -> None:
        br = self.bridges.get(ch.bridge or "")
        ch.bridge = None
        if br is None:
            return
        if ch.id in br.channels:
            br.channels.remove(ch.id)
        if br.bridge_type == "mixing" and br.channels:
            self._varset(ch, "BRIDGEPEER", "")
        self._update_technology(br)
        self.emit("ChannelLeftBridge", {"bridge": br.to_json(), "channel": ch.to_json()},
                  channels=[ch], bridge=br)
        if not br.channels:
            # The announcer leaves with the last participant: a later DELETE .../moh is a 409.
            br.moh_class = None
        if br.bridge_class == "basic":
            self._dissolve_basic(br)

    def _dissolve_basic(self, br: SimBridge) -> None:
        # A Dial() bridge between two phones ends when either party leaves (a
        # channel swapped in takes the leaver's place first, so it goes on).
        alive = [self.channels[c] for c in br.channels if c in self.channels]
        if len(alive) == 1 and alive[0].alive:
            self._teardown(alive[0], cause=16, first={"cause": 16})
        elif not alive and br.id in self.bridges:
            del self.bridges[br.id]
            self.emit("BridgeDestroyed", {"bridge": br.to_json()}, bridge=br)

    def destroy_bridge(self, bridge_id: str) -> None:
        br = self.bridge(bridge_id)
        for cid in list(br.channels):
            ch = self.channels.get(cid)
            if ch is not None:
                self._leave_bridge(ch)
        for name in list(br.recordings):
            rec = self.live_recordings.get(name)
            if rec is not None:
                self._finish_recording(rec)
        for pb in [p for p in self.playbacks.values() if p.target_uri == f"bridge:{br.id}"]:
            self._finish_playback(pb.id, "done")
        if self.bridges.pop(br.id, None) is not None:  # a basic bridge dissolves by itself
            self.emit("BridgeDestroyed", {"bridge": br.to_json()}, bridge=br)

    def bridge_moh(self, bridge_id: str, moh_class: str | None, on: bool) -> None:
        br = self.bridge(bridge_id)
        if on:
            br.moh_class = moh_class or "default"
            self._device("Announcer/ARI_MOH", "INUSE")
        else:
            if br.moh_class is None:
                raise SimError(409, "Bridge isn't playing music")
            br.moh_class = None

    # --- playbacks -------------------------------------------------------------------------

    def play(self, target: str, target_id: str, media: list[str],
             playback_id: str | None) -> "Created":
        if not media or not all(media):
            raise SimError(400, "Required parameter media not provided")
        for m in media:
            if ":" not in m:
                raise SimError(400, f"Invalid media URI: {m}")
        pb_id = playback_id or str(uuid.uuid4())
        if pb_id in self.playbacks:
            raise SimError(409, "Playback with the same id already exists")
        if target == "channel":
            owner: Any = self.stasis_channel(target_id)
        else:
            owner = self.bridge(target_id)
        pb = SimPlayback(id=pb_id, media=media, target_uri=f"{target}:{target_id}")
        self.playbacks[pb_id] = pb
        snapshot = pb.to_json()
        if target == "channel":
            owner.playbacks.append(pb_id)
            if len(owner.playbacks) == 1:
                self._start_playback(pb, owner)
        else:
            self._start_playback(pb, None)
        return Created(pb, snapshot)

    def _start_playback(self, pb: SimPlayback, ch: SimChannel | None) -> None:
        pb.state = "playing"
        self.emit("PlaybackStarted", {"playback": pb.to_json()},
                  channels=[ch] if ch else [], bridge=self._bridge_of(pb))
        pb.task = self.spawn(self._run_playback(pb), owner=ch)

    def _bridge_of(self, pb: SimPlayback) -> SimBridge | None:
        kind, _, ident = pb.target_uri.partition(":")
        return self.bridges.get(ident) if kind == "bridge" else None

    def _channel_of(self, pb: SimPlayback) -> SimChannel | None:
        kind, _, ident = pb.target_uri.partition(":")
        return self.channels.get(ident) if kind == "channel" else None

    async def _run_playback(self, pb: SimPlayback) -> None:
        while True:
            await self.clock.sleep(media_seconds(pb.media[pb.index]))
            if pb.index + 1 >= len(pb.media):
                break
            pb.index += 1
            pb.state = "continuing"
            ch = self._channel_of(pb)
            self.emit("PlaybackContinuing", {"playback": pb.to_json()},
                      channels=[ch] if ch else [], bridge=self._bridge_of(pb))
            pb.state = "playing"
        pb.task = None
        self._finish_playback(pb.id, "done")

    def stop_playback(self, playback_id: str) -> None:
        if playback_id not in self.playbacks:
            raise SimError(404, "Playback not found")
        self._finish_playback(playback_id, "done")

    def _finish_playback(self, playback_id: str, state: str) -> None:
        pb = self.playbacks.pop(playback_id, None)
        if pb is None:
            return
        if pb.task is not None and pb.task is not asyncio.current_task():
            pb.task.cancel()
        ch = self._channel_of(pb)
        was_playing = pb.state in ("playing", "continuing")
        pb.state = state
        if was_playing:
            self.emit("PlaybackFinished", {"playback": pb.to_json()},
                      channels=[ch] if ch else [], bridge=self._bridge_of(pb))
        if ch is not None and playback_id in ch.playbacks:
            ch.playbacks.remove(playback_id)
            if ch.alive and ch.playbacks and state == "done":
                nxt = self.playbacks.get(ch.playbacks[0])
                if nxt is not None:
                    self._start_playback(nxt, ch)

    # --- recordings ------------------------------------------------------------------------

    def record(self, target: str, target_id: str, *, name: str | None, fmt: str | None,
               if_exists: str | None, max_duration: float | None) -> "Created":
        if not name or not fmt:
            raise SimError(400, "Required parameters name and format not provided")
        if target == "channel":
            ch = self.stasis_channel(target_id)
            owner_ch: SimChannel | None = ch
            br = None
        else:
            br = self.bridge(target_id)
            owner_ch = None
        if fmt not in RECORDING_FORMATS:
            raise SimError(422, "The format specified is unknown on this system")
        if_exists = if_exists or "fail"
        if if_exists not in ("fail", "overwrite", "append"):
            raise SimError(400, "ifExists invalid")
        if name in self.live_recordings:
            raise SimError(409, "Recording already in progress with the same name")
        if name in self.stored_recordings and if_exists == "fail":
            raise SimError(409, "A recording with the same name already exists on the system")
        rec = SimRecording(name=name, format=fmt, target_uri=f"{target}:{target_id}",
                           started_at=self.clock.elapsed())
        self.live_recordings[name] = rec
        snapshot = rec.to_json()
        rec.state = "recording"
        twice = br is not None
        if br is not None:
            br.recordings.add(name)
        self.emit("RecordingStarted", {"recording": rec.to_json()},
                  channels=[owner_ch] if owner_ch else [], bridge=br,
                  twice_for_subscribe_all=twice)
        if max_duration:
            async def stop_later() -> None:
                await self.clock.sleep(max_duration)
                self._finish_recording(rec)
            rec.task = self.spawn(stop_later(), owner=owner_ch)
        return Created(rec, snapshot)

    def stop_recording(self, name: str, *, discard: bool = False) -> None:
        rec = self.live_recordings.get(name)
        if rec is None:
            raise SimError(404, "Recording not found")
        self._finish_recording(rec, keep=not discard)

    def _finish_recording(self, rec: SimRecording, keep: bool = True) -> None:
        if self.live_recordings.get(rec.name) is not rec:
            return
        del self.live_recordings[rec.name]
        if rec.task is not None and rec.task is not asyncio.current_task():
            rec.task.cancel()
        rec.state = "done"
        rec.duration = int(round(self.clock.elapsed() - rec.started_at))
        kind, _, ident = rec.target_uri.partition(":")
        br = self.bridges.get(ident) if kind == "bridge" else None
        ch = self.channels.get(ident) if kind == "channel" else None
        if br is not None:
            br.recordings.discard(rec.name)
        self.emit("RecordingFinished", {"recording": rec.to_json()},
                  channels=[ch] if ch else [], bridge=br, twice_for_subscribe_all=kind == "bridge")
        if keep:
            self.stored_recordings[rec.name] = rec

    # --- restart -----------------------------------------------------------------------------

    def wipe(self) -> None:
        """Asterisk restarted: every channel, bridge and playback is gone without an event."""
        for ch in self.channels.values():
            ch.alive = False
            for task in ch.tasks:
                task.cancel()
        for pb in self.playbacks.values():
            if pb.task:
                pb.task.cancel()
        for rec in self.live_recordings.values():
            if rec.task:
                rec.task.cancel()
        self.channels.clear()
        self.bridges.clear()
        self.playbacks.clear()
        self.live_recordings.clear()
        self.startup_time = self.clock.stamp()


@dataclass
class Created:
    """A new resource and the JSON the REST call answers with (its state at request time)."""

    resource: Any
    json: dict[str, Any]
