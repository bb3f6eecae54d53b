"""The simulator against real Asterisk: each captured scenario is driven again, with the
same REST calls (through AriClient, over HTTP), on the simulator, and what arrives on the
event WebSocket (subscribeAll, as in the captures) is compared with the captured stream.

Compared per channel role (``PJSIP/trunk`` = the caller, ``PJSIP/1001`` = an agent phone,
``Local/2000@internal;1``...), the sequence of the events that carry call-center meaning
with their details (states, causes, dial statuses, playback/recording states, digits).
``Dial`` events and playbacks are separate streams because Asterisk itself orders them
differently from one capture to the next relative to the channel's own events. Noise
(ChannelVarset, DeviceStateChanged, ChannelDialplan, caller-id updates) is left out of the
sequences but its shapes are checked with everything else in ``test_field_shapes``.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any, Awaitable, Callable

import pytest

from telephony_adapter.ari.client import AriClient
from telephony_adapter.ari.errors import AriHttpError
from telephony_adapter.simulator import AnswerAfter, Busy, NeverAnswer, Simulator, run_simulator
from tests.telephony.conftest import TRACES

NOISE = {"ChannelVarset", "DeviceStateChanged", "ChannelDialplan", "ChannelCallerId",
         "ChannelConnectedLine"}
SPEED = 20.0  # simulated seconds per real second: the 3-4 s waits of the captures take ~0.2 s


def trace_messages(name: str) -> list[dict[str, Any]]:
    return [json.loads(line)["message"]
            for line in (TRACES / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def rest_statuses(name: str) -> list[tuple[str, str, int]]:
    rows = [json.loads(line) for line in (TRACES / f"{name}.rest.jsonl").read_text().splitlines()]
    return [(r["method"], _path_kind(r["path"]), r["status"]) for r in rows]


def _path_kind(path: str) -> str:
    # /ari/channels/1795354113.1/answer -> channels/*/answer (ids differ between runs)
    parts = path.removeprefix("/ari/").split("/")
    return "/".join(p if i % 2 == 0 else "*" for i, p in enumerate(parts))


def role_of(channel: dict[str, Any]) -> str:
    name = channel.get("name", "")
    if name.startswith("Snoop/"):
        return "Snoop"
    base, _, half = name.partition(";")
    base = base.rsplit("-", 1)[0]
    return f"{base};{half}" if half else base


def streams(messages: list[dict[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    roles: dict[str, str] = {}
    for m in messages:
        t = m["type"]
        if t in NOISE:
            continue
        if isinstance(m.get("channel"), dict):
            roles[m["channel"]["id"]] = role_of(m["channel"])
        if t == "Dial":
            out[role_of(m["peer"]) + ":dial"].append(m["dialstatus"])
        elif t.startswith("Playback"):
            kind, _, ident = m["playback"]["target_uri"].partition(":")
            out[roles.get(ident, kind) + ":playback"].append((t, m["playback"]["state"]))
        elif t.startswith("Recording"):
            kind = m["recording"]["target_uri"].split(":", 1)[0]
            out["recording:" + kind].append((t, m["recording"]["state"]))
        elif t in ("BridgeCreated", "BridgeDestroyed"):
            out["bridge:" + m["bridge"]["bridge_type"]].append(t)
        elif t == "BridgeBlindTransfer":
            out["transfer"].append((t, m["result"], role_of(m["channel"]),
                                    role_of(m["replace_channel"]), role_of(m["transferee"])))
        elif t == "ChannelTransfer":
            out["transfer"].append((t, m.get("state"),
                                    m["refer_to"]["requested_destination"].get("destination"),
                                    role_of(m["referred_by"]["source_channel"])))
        else:
            out[role_of(m["channel"])].append(_detail(m))
    return dict(out)


def _detail(m: dict[str, Any]) -> tuple:
    t = m["type"]
    if t == "ChannelStateChange":
        return (t, m["channel"]["state"])
    if t == "ChannelHangupRequest":
        return (t, m.get("cause"), m.get("soft"), m.get("tech_cause"))
    if t == "ChannelDestroyed":
        return (t, m["cause"], m.get("tech_cause"))
    if t == "ChannelDtmfReceived":
        return (t, m["digit"])
    if t == "StasisStart":
        replace = m.get("replace_channel")
        return (t, tuple(m["args"]), role_of(replace) if replace else None)
    if t == "ChannelCreated":
        return (t, m["channel"]["state"])
    return (t,)


class Run:
    """The simulator, a client driving it, and everything the client's WebSocket received."""

    def __init__(self, sim: Simulator, client: AriClient) -> None:
        self.sim = sim
        self.ari = client
        self.received: list[dict[str, Any]] = []

    async def call(self, method: str, path: str, **params: Any) -> Any:
        try:
            return await self.ari.request(method, path, params=params)
        except AriHttpError:
            return None

    @property
    def statuses(self) -> list[tuple[str, str, int]]:
        """The status codes the simulator answered, in order."""
        return [(method, _path_kind(path), status) for method, path, status in self.sim.responses]

    async def event(self, type_: str, **match: Any) -> dict[str, Any]:
        def pred(e: dict[str, Any]) -> bool:
            if e["type"] != type_:
                return False
            ch = e.get("channel") or {}
            return all(ch.get(k) == v or e.get(k) == v for k, v in match.items())
        return await self.sim.wait_for_event(pred, timeout=5)

    async def settle(self) -> None:
        """Until the socket has delivered the last event emitted (real time bounded)."""
        for _ in range(500):
            if self.sim.events and self.received and self.received[-1] == {
                    **self.sim.events[-1], "application": "lianxin"}:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the WebSocket did not deliver every emitted event")


async def replay(driver: Callable[[Run], Awaitable[None]]) -> Run:
    async with run_simulator(speed=SPEED) as sim:
        client = AriClient(sim.base_url, "lianxin", sim.username, sim.password,
                           subscribe_all=True)
        run = Run(sim, client)

        async def consume() -> None:
            async for message in client.events(raw=True):
                run.received.append(message)

        consumer = asyncio.create_task(consume())
        try:
            await sim.wait_for_app()
            await driver(run)
            await run.settle()
        finally:
            consumer.cancel()
            await client.close()
        return run


# --- drivers: the REST calls of each capture's .rest.jsonl, in order ---------------------------

async def sip_inbound_answered_hold_recorded(r: Run) -> None:
    r.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1.0))
    call = r.sim.place_call("13900000001", "100")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/variable", variable="TALK_DETECT(set)", value="")
    await r.call("POST", f"/channels/{call}/ring")
    await r.sim.sleep(1)
    await r.call("POST", f"/channels/{call}/answer")
    await r.call("POST", f"/channels/{call}/play", media="sound:hello-world", playbackId="pb-sip-6")
    r.sim.core.talk(call, True)  # the carrier streams audio: talking starts, never stops
    await r.event("PlaybackFinished")
    await r.call("POST", "/bridges", type="mixing", bridgeId="sip-bridge-6", name="sip-call-6")
    await r.call("POST", "/bridges/sip-bridge-6/addChannel", channel=call)
    await r.call("POST", "/channels", endpoint="PJSIP/1001", app="lianxin", appArgs="agent,1001",
                 callerId='"Queue" <1001>', channelId="agent-1001-26c2b289", timeout=30)
    await r.event("StasisStart", id="agent-1001-26c2b289")
    await r.call("POST", "/bridges/sip-bridge-6/addChannel", channel="agent-1001-26c2b289")
    await r.call("POST", "/bridges/sip-bridge-6/record", name="sip-call-6-rec", format="wav",
                 ifExists="overwrite")
    r.sim.endpoint_hold("agent-1001-26c2b289", True)   # re-INVITE a=sendonly
    await r.sim.sleep(3)
    r.sim.endpoint_hold("agent-1001-26c2b289", False)  # a=sendrecv
    r.sim.hangup(call)                                 # carrier BYE
    await r.event("ChannelDestroyed", id=call)
    await r.call("POST", "/recordings/live/sip-call-6-rec/stop")
    await r.call("DELETE", "/channels/agent-1001-26c2b289")
    await r.call("DELETE", "/bridges/sip-bridge-6")


async def sip_abandon_holding_moh(r: Run) -> None:
    call = r.sim.place_call("13900000002", "200")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/answer")
    await r.call("POST", "/bridges", type="holding", bridgeId="sip-holding-7", name="queue-wait")
    await r.call("POST", "/bridges/sip-holding-7/addChannel", channel=call)
    await r.call("POST", "/bridges/sip-holding-7/moh", mohClass="default")
    await r.sim.sleep(4)
    r.sim.hangup(call)
    await r.event("ChannelDestroyed", id=call)
    await r.call("DELETE", "/bridges/sip-holding-7/moh")
    await r.call("DELETE", "/bridges/sip-holding-7")


async def sip_agent_noanswer_busy(r: Run) -> None:
    r.sim.register_endpoint("PJSIP/1001", NeverAnswer())
    r.sim.register_endpoint("PJSIP/1002", Busy())
    call = r.sim.place_call("13900000003", "300")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/answer")
    await r.call("POST", "/bridges", type="holding", bridgeId="sip-holding-8", name="queue-wait")
    await r.call("POST", "/bridges/sip-holding-8/addChannel", channel=call)
    await r.call("POST", f"/channels/{call}/moh", mohClass="default")
    await r.call("POST", "/channels", endpoint="PJSIP/1001", app="lianxin", appArgs="agent,1001",
                 callerId='"Queue" <1001>', channelId="agent-1001-a3d43205", timeout=5)
    await r.event("ChannelDestroyed", id="agent-1001-a3d43205")
    await r.call("POST", "/channels", endpoint="PJSIP/1002", app="lianxin", appArgs="agent,1002",
                 callerId='"Queue" <1002>', channelId="agent-1002-499263fb", timeout=10)
    await r.event("ChannelDestroyed", id="agent-1002-499263fb")
    await r.call("DELETE", f"/channels/{call}/moh")
    await r.call("DELETE", f"/channels/{call}", reason="normal")
    await r.call("DELETE", "/bridges/sip-holding-8")


async def sip_dtmf_rfc4733(r: Run) -> None:
    call = r.sim.place_call("13900000004", "400")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/answer")
    await r.call("POST", f"/channels/{call}/play", media="sound:demo-congrats", playbackId="pb-ivr-9")
    await r.sim.press(call, "12#")
    await r.call("POST", f"/channels/{call}/dtmf", dtmf="5")
    r.sim.hangup(call)  # BYE while the prompt still plays
    await r.event("ChannelDestroyed", id=call)


async def sip_redirect_302(r: Run) -> None:
    call = r.sim.place_call("13900000005", "500")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/ring")
    await r.sim.sleep(1)
    await r.call("POST", f"/channels/{call}/redirect", endpoint="PJSIP/1002")
    await r.event("ChannelDestroyed", id=call)


async def sip_agent_blind_transfer_refer(r: Run) -> None:
    r.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1.0))
    call = r.sim.place_call("13900000006", "600")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/answer")
    await r.call("POST", "/bridges", type="mixing", bridgeId="sip-bridge-11", name="sip-call-11")
    await r.call("POST", "/bridges/sip-bridge-11/addChannel", channel=call)
    await r.call("POST", "/channels", endpoint="PJSIP/1001", app="lianxin", appArgs="agent,1001",
                 callerId='"Queue" <1001>', channelId="agent-1001-4da18189", timeout=30)
    await r.event("StasisStart", id="agent-1001-4da18189")
    await r.call("POST", "/bridges/sip-bridge-11/addChannel", channel="agent-1001-4da18189")
    await r.sim.sleep(2)
    r.sim.refer("agent-1001-4da18189", "2000")
    await r.event("ChannelDestroyed", id="agent-1001-4da18189")
    await r.sim.sleep(3)
    await r.call("DELETE", f"/channels/{call}")
    listed = await r.call("GET", "/channels")
    for channel in sorted(listed, key=lambda c: c["name"]):
        await r.call("DELETE", f"/channels/{channel['id']}")
    await r.call("GET", "/bridges")
    await r.call("DELETE", "/bridges/sip-bridge-11")


async def sip_agent_transfer_ari_only(r: Run) -> None:
    r.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1.0))
    r.sim.register_endpoint("PJSIP/1002", AnswerAfter(delay=1.0))
    call = r.sim.place_call("13900000007", "700")
    await r.event("StasisStart", id=call)
    await r.call("POST", f"/channels/{call}/answer")
    await r.call("POST", "/bridges", type="mixing", bridgeId="sip-bridge-12", name="sip-call-12")
    await r.call("POST", "/bridges/sip-bridge-12/addChannel", channel=call)
    await r.call("POST", "/channels", endpoint="PJSIP/1001", app="lianxin", appArgs="agent,1001",
                 callerId='"Queue" <1001>', channelId="agent-1001-e3d0c6bc", timeout=30)
    await r.event("StasisStart", id="agent-1001-e3d0c6bc")
    await r.call("POST", "/channels/agent-1001-e3d0c6bc/variable",
                 variable="PJSIP_TRANSFER_HANDLING()", value="ari-only")
    await r.call("POST", "/bridges/sip-bridge-12/addChannel", channel="agent-1001-e3d0c6bc")
    r.sim.refer("agent-1001-e3d0c6bc", "2000")
    await r.event("ChannelTransfer")
    await r.call("POST", "/channels", endpoint="PJSIP/1002", app="lianxin", appArgs="agent,1002",
                 callerId='"Queue" <1002>', channelId="agent-1002-9f895985", timeout=30)
    await r.event("StasisStart", id="agent-1002-9f895985")
    await r.call("POST", "/bridges/sip-bridge-12/addChannel", channel="agent-1002-9f895985")
    await r.call("POST", "/bridges/sip-bridge-12/removeChannel", channel="agent-1001-e3d0c6bc")
    await r.call("POST", "/channels/agent-1001-e3d0c6bc/transfer_progress",
                 states="channel_answered")
    r.sim.hangup("agent-1001-e3d0c6bc")  # the transferer's phone BYEs
    await r.event("ChannelDestroyed", id="agent-1001-e3d0c6bc")
    await r.call("DELETE", f"/channels/{call}")
    await r.call("DELETE", "/channels/agent-1002-9f895985")
    await r.call("DELETE", "/bridges/sip-bridge-12")


SIP_SCENARIOS = {f.__name__: f for f in [
    sip_inbound_answered_hold_recorded, sip_abandon_holding_moh, sip_agent_noanswer_busy,
    sip_dtmf_rfc4733, sip_redirect_302, sip_agent_blind_transfer_refer,
    sip_agent_transfer_ari_only]}


@pytest.fixture(scope="module")
def replays() -> dict[str, Run]:
    async def all_runs() -> dict[str, Run]:
        return {name: await replay(driver) for name, driver in SIP_SCENARIOS.items()}
    return asyncio.run(all_runs())


@pytest.mark.parametrize("name", list(SIP_SCENARIOS))
def test_the_simulator_reproduces_the_captured_event_sequences(name, replays):
    expected = streams(trace_messages(name))
    got = streams(replays[name].received)
    assert got == expected


@pytest.mark.parametrize("name", list(SIP_SCENARIOS))
def test_the_simulator_answers_the_rest_calls_with_the_captured_status_codes(name, replays):
    assert replays[name].statuses == rest_statuses(name)


def _key_sets(messages: list[dict[str, Any]]) -> dict[str, set[frozenset]]:
    shapes: dict[str, set[frozenset]] = defaultdict(set)
    for m in messages:
        shapes[m["type"]].add(frozenset(m))
        for nested in ("channel", "bridge", "playback", "recording", "peer", "replace_channel",
                       "transferee", "device_state"):
            if isinstance(m.get(nested), dict):
                shapes[f"{m['type']}.{nested}"].add(frozenset(m[nested]))
    return shapes


def test_field_shapes_match_what_asterisk_sent(replays):
    real: dict[str, set[frozenset]] = defaultdict(set)
    for path in TRACES.glob("*.jsonl"):
        if not path.name.endswith(".rest.jsonl"):
            for key, shapes in _key_sets(trace_messages(path.stem)).items():
                real[key] |= shapes
    checked = 0
    for run in replays.values():
        for key, shapes in _key_sets(run.received).items():
            assert key in real, f"the simulator emits {key}, never seen from Asterisk"
            for shape in shapes:
                assert shape in real[key], (key, sorted(shape))
                checked += 1
    assert checked > 40


def test_bridge_recording_events_arrive_twice_with_subscribe_all(replays):
    got = streams(replays["sip_inbound_answered_hold_recorded"].received)
    assert got["recording:bridge"] == [("RecordingStarted", "recording")] * 2 + \
        [("RecordingFinished", "done")] * 2


def test_an_agent_who_never_answers_gives_ringing_then_cause_19_and_no_noanswer(replays):
    got = streams(replays["sip_agent_noanswer_busy"].received)
    assert got["PJSIP/1001:dial"] == ["", "RINGING"]
    assert got["PJSIP/1001"][-1] == ("ChannelDestroyed", 19, 480)
    assert got["PJSIP/1002:dial"] == ["", "BUSY"]
    assert ("ChannelDestroyed", 17, 486) in got["PJSIP/1002"]


def test_a_hangup_during_a_prompt_fails_the_playback(replays):
    got = streams(replays["sip_dtmf_rfc4733"].received)
    assert got["PJSIP/trunk:playback"] == [("PlaybackStarted", "playing"),
                                           ("PlaybackFinished", "failed")]


def test_a_refer_brings_a_local_channel_replacing_the_agent(replays):
    received = replays["sip_agent_blind_transfer_refer"].received
    start = next(m for m in received if m["type"] == "StasisStart" and "replace_channel" in m)
    assert start["channel"]["name"].startswith("Local/2000@internal-")
    assert start["replace_channel"]["id"] == "agent-1001-4da18189"
    entered = [m for m in received if m["type"] == "ChannelEnteredBridge"]
    assert entered[-1]["channel"]["id"] == start["channel"]["id"]


# --- Local-channel captures: the parts the simulator models -------------------------------------

def test_hold_indication_from_ari_produces_no_channel_hold_event():
    async def driver(r: Run) -> None:
        call = r.sim.place_call("13800000005", "500")
        await r.event("StasisStart", id=call)
        await r.call("POST", f"/channels/{call}/answer")
        await r.call("POST", f"/channels/{call}/hold")
        await r.sim.sleep(2)
        await r.call("DELETE", f"/channels/{call}/hold")
        await r.call("POST", f"/channels/{call}/moh", mohClass="default")
        await r.call("DELETE", f"/channels/{call}/moh")
        r.sim.endpoint_hold(call, True)  # only the phone's own re-INVITE does

    run = asyncio.run(replay(driver))
    captured = {m["type"] for m in trace_messages("local_hold_moh_redirect_continue")}
    assert "ChannelHold" not in captured
    holds = [m for m in run.received if m["type"] == "ChannelHold"]
    assert len(holds) == 1 and holds[0]["musicclass"] == "default"
    assert [s for s in run.statuses if s[0] == "DELETE"] == [
        ("DELETE", "channels/*/hold", 204), ("DELETE", "channels/*/moh", 204)]


def test_local_agent_legs_and_snoop_follow_the_local_snoop_capture():
    async def driver(r: Run) -> None:
        call = r.sim.place_call("13800000004", "400")
        await r.event("StasisStart", id=call)
        await r.call("POST", f"/channels/{call}/answer")
        await r.call("POST", "/channels", endpoint="Local/1002@agents", app="lianxin",
                     appArgs="agent,1002", callerId='"Queue" <1002>',
                     channelId="agent-1002-1d98b5ec", otherChannelId="agent-1002-1d98b5ec-phone",
                     timeout=30)
        await r.event("StasisStart", id="agent-1002-1d98b5ec")
        await r.call("POST", "/bridges", type="mixing", bridgeId="call-bridge-4", name="call-4")
        await r.call("POST", "/bridges/call-bridge-4/addChannel", channel=call)
        await r.call("POST", "/bridges/call-bridge-4/addChannel", channel="agent-1002-1d98b5ec")
        await r.call("POST", f"/channels/{call}/snoop", spy="both", app="lianxin",
                     appArgs="supervisor", snoopId="snoop-4")
        await r.call("POST", "/channels/snoop-4/record", name="snoop-4-rec", format="wav",
                     ifExists="overwrite")
        await r.sim.sleep(2.5)
        await r.call("DELETE", "/channels/snoop-4")
        await r.call("DELETE", "/channels/agent-1002-1d98b5ec")
        await r.call("DELETE", f"/channels/{call}")
        await r.call("DELETE", "/bridges/call-bridge-4")

    run = asyncio.run(replay(driver))
    expected = streams(trace_messages("local_snoop"))
    got = streams(run.received)
    for role in ("Snoop", "Local/1002@agents;1", "Local/1002@agents;2",
                 "Local/1002@agents;1:dial", "recording:channel", "bridge:mixing"):
        assert got[role] == expected[role], role
    # The hung-up snoop channel lingers until the snooped caller is destroyed.
    order = [(m["type"], m["channel"]["id"]) for m in run.received
             if m["type"] == "ChannelDestroyed"]
    assert order[-1] == ("ChannelDestroyed", "snoop-4")
    # Same calls and statuses, minus the capture's first one (originating the Local caller).
    assert run.statuses == rest_statuses("local_snoop")[1:]


def test_stopping_moh_after_the_last_caller_left_a_holding_bridge_is_a_409():
    async def driver(r: Run) -> None:
        call = r.sim.place_call("13800000002", "200")
        await r.event("StasisStart", id=call)
        await r.call("POST", f"/channels/{call}/answer")
        await r.call("POST", "/bridges", type="holding", bridgeId="holding-bridge-2",
                     name="queue-wait")
        await r.call("POST", "/bridges/holding-bridge-2/addChannel", channel=call)
        await r.call("POST", "/bridges/holding-bridge-2/moh", mohClass="default")
        await r.sim.sleep(3)
        r.sim.hangup(call)
        await r.event("ChannelDestroyed", id=call)
        await r.call("DELETE", "/bridges/holding-bridge-2/moh")
        await r.call("DELETE", "/bridges/holding-bridge-2")

    run = asyncio.run(replay(driver))
    # The capture also originated the Local caller and hung up its far half over REST;
    # here the caller is a trunk call and hangs up by itself.
    captured = [s for s in rest_statuses("local_abandon_holding_moh")[1:]
                if s != ("DELETE", "channels/*", 204)]
    assert run.statuses == captured
    assert run.statuses[-2:] == [("DELETE", "bridges/*/moh", 409), ("DELETE", "bridges/*", 204)]


def test_redirecting_a_local_channel_does_nothing_and_continue_leaves_stasis():
    async def driver(r: Run) -> None:
        r.sim.register_endpoint("PJSIP/1001", AnswerAfter(0.5))
        await r.call("POST", "/channels", endpoint="Local/1001@agents", app="lianxin",
                     appArgs="agent,1001", channelId="agent-1001-2f6b26fc", timeout=30)
        await r.event("StasisStart", id="agent-1001-2f6b26fc")
        await r.call("POST", "/channels/agent-1001-2f6b26fc/redirect",
                     endpoint="Local/2000@transfer-target")
        await r.sim.sleep(1)
        await r.call("POST", "/channels/agent-1001-2f6b26fc/continue", context="transfer-target",
                     extension="2000", priority=1)
        await r.event("StasisEnd", id="agent-1001-2f6b26fc")

    run = asyncio.run(replay(driver))
    assert [s[2] for s in run.statuses] == [200, 204, 204]
    agent = streams(run.received)["Local/1001@agents;1"]
    assert agent[-1] == ("StasisEnd",)
    assert not any(t[0] in ("ChannelHangupRequest", "ChannelDestroyed") for t in agent)
