"""AriClient against the simulator over real HTTP and WebSocket on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from telephony_adapter.ari.client import AriClient
from telephony_adapter.ari.errors import (
    AriAuthError,
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriHttpError,
    AriNotFound,
    AriUnprocessable,
)
from telephony_adapter.ari.models import (
    ChannelDtmfReceived,
    ChannelStateChange,
    Dial,
    Event,
    PlaybackFinished,
    Reconnected,
    StasisStart,
)
from telephony_adapter.simulator import AnswerAfter, run_simulator

pytestmark = pytest.mark.timeout(60)


class Listener:
    """Consumes client.events() in the background, like an application's main loop."""

    def __init__(self, client: AriClient, raw: bool = False) -> None:
        self.client = client
        self.events: list[Any] = []
        self._new = asyncio.Event()
        self.task = asyncio.create_task(self._run(raw))

    async def _run(self, raw: bool) -> None:
        async for event in self.client.events(raw=raw):
            self.events.append(event)
            self._new.set()

    async def wait_for(self, predicate, timeout: float = 5.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no matching event; got {[self._name(e) for e in self.events]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass

    @staticmethod
    def _name(event: Any) -> str:
        return event["type"] if isinstance(event, dict) else event.type

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def of(type_: type, **fields: Any):
    def pred(event: Any) -> bool:
        if not isinstance(event, type_):
            return False
        channel = getattr(event, "channel", None)
        return all(getattr(event, k, None) == v or getattr(channel, k, None) == v
                   for k, v in fields.items())
    return pred


@pytest.fixture
async def sim():
    async with run_simulator(speed=20.0) as simulator:
        yield simulator


@pytest.fixture
async def ari(sim):
    client = AriClient(sim.base_url, "lianxin", sim.username, sim.password,
                       backoff_initial=0.02, backoff_max=0.2)
    yield client
    await client.close()


async def test_events_arrive_typed_and_the_rest_calls_act_on_the_call(sim, ari):
    listener = Listener(ari)
    await sim.wait_for_app()
    sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1.0))
    call = sim.place_call(caller="13800000000", dialed="95598")

    start = await listener.wait_for(of(StasisStart, id=call))
    assert start.channel.caller.number == "13800000000"
    assert start.channel.dialplan.exten == "95598"
    assert start.args == [] and start.occurred_at is not None

    await ari.answer(call)
    assert (await listener.wait_for(of(ChannelStateChange, id=call))).channel.state == "Up"
    playback = await ari.play(call, "sound:hello-world", playback_id="pb-welcome")
    assert (playback.id, playback.state, playback.target_uri) == (
        "pb-welcome", "queued", f"channel:{call}")
    finished = await listener.wait_for(of(PlaybackFinished))
    assert finished.playback.state == "done"

    bridge = await ari.create_bridge("mixing", bridge_id="call-bridge-1", name="call-1")
    assert (bridge.id, bridge.bridge_type, bridge.technology) == (
        "call-bridge-1", "mixing", "simple_bridge")
    await ari.add_channel(bridge.id, call)
    agent = await ari.originate("PJSIP/1001", app="lianxin", app_args=["agent", "1001"],
                                channel_id="agent-1001-x", caller_id='"Queue" <1001>', timeout=30)
    assert agent.id == "agent-1001-x" and agent.state == "Down"
    agent_start = await listener.wait_for(of(StasisStart, id="agent-1001-x"))
    assert agent_start.args == ["agent", "1001"]
    dials = [e.dialstatus for e in listener.events if isinstance(e, Dial)]
    assert dials == ["", "RINGING", "ANSWER"]
    await ari.add_channel(bridge.id, agent.id)
    assert set((await ari.get_bridge(bridge.id)).channels) == {call, agent.id}

    recording = await ari.record_bridge(bridge.id, "call-1-rec", if_exists="overwrite")
    assert (recording.name, recording.state, recording.target_uri) == (
        "call-1-rec", "queued", f"bridge:{bridge.id}")
    await sim.sleep(4)
    await ari.stop_recording("call-1-rec")
    stored = await ari.get_stored_recording("call-1-rec")
    assert (stored.name, stored.format) == ("call-1-rec", "wav")
    audio = await ari.get_stored_recording_file("call-1-rec")
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"

    channels = {c.id for c in await ari.list_channels()}
    assert channels == {call, agent.id}
    await ari.hangup(agent.id)
    await ari.hangup(call, "normal")
    await ari.destroy_bridge(bridge.id)
    assert await ari.list_channels() == [] and await ari.list_bridges() == []
    await listener.stop()


async def test_supervision_and_dialplan_operations(sim, ari):
    listener = Listener(ari)
    await sim.wait_for_app()
    call = sim.place_call()
    await listener.wait_for(of(StasisStart, id=call))
    await ari.answer(call)
    await ari.hold(call)
    await ari.unhold(call)
    await ari.start_moh(call, "default")
    await ari.stop_moh(call)
    await ari.send_dtmf(call, "9*", between=200, duration=150)
    assert sim.core.channels[call].sent_dtmf == ["9*"]
    await ari.set_variable(call, "CALL_ID", "c-1")
    assert await ari.get_variable(call, "CALL_ID") == "c-1"
    spy = await ari.snoop(call, "lianxin", spy="both", app_args="supervisor", snoop_id="snoop-1")
    assert spy.id == "snoop-1" and spy.name.startswith(f"Snoop/{call}-")
    snoop_start = await listener.wait_for(of(StasisStart, id="snoop-1"))
    assert snoop_start.args == ["supervisor"]
    await ari.hangup("snoop-1")
    await ari.continue_in_dialplan(call, context="transfer-target", extension="2000", priority=1)
    with pytest.raises(AriConflict):
        await ari.answer(call)  # no longer in Stasis
    await listener.stop()


async def test_ari_errors_are_typed_with_asterisks_status_and_message(sim, ari):
    with pytest.raises(AriNotFound) as nf:
        await ari.hangup("no-such-channel")
    assert nf.value.status == 404 and nf.value.message == "Channel not found"
    await ari.create_bridge("mixing", bridge_id="b-1")
    with pytest.raises(AriConflict) as dup:
        await ari.create_bridge("mixing", bridge_id="b-1")
    assert "already exists" in dup.value.message
    with pytest.raises(AriBadRequest):
        await ari.add_channel("b-1", "no-such-channel")
    call = sim.place_call()  # no WebSocket yet: Stasis() fails and the call is gone
    with pytest.raises(AriNotFound):
        await ari.answer(call)
    listener = Listener(ari)
    await sim.wait_for_app()
    call = sim.place_call()
    await listener.wait_for(of(StasisStart, id=call))
    with pytest.raises(AriUnprocessable) as not_in:
        await ari.remove_channel("b-1", call)
    assert not_in.value.message == "Channel not in this bridge"
    with pytest.raises(AriHttpError) as bad_format:
        await ari.record_bridge("b-1", "x", format="mp7")
    assert bad_format.value.status == 422
    await listener.stop()


async def test_a_dropped_websocket_reconnects_and_marks_the_gap_for_reconciliation(sim, ari):
    listener = Listener(ari)
    await sim.wait_for_app()
    ended = sim.place_call(caller="13800000001")
    live = sim.place_call(caller="13800000002")
    await listener.wait_for(of(StasisStart, id=live))

    await sim.drop_websockets()
    sim.hangup(ended)  # happens while the adapter is disconnected: its events are lost

    marker = await listener.wait_for(lambda e: isinstance(e, Reconnected))
    assert marker.type == "Reconnected" and marker.disconnected_for >= 0
    assert ari.reconnects == 1
    lost = [e for e in listener.events if isinstance(e, Event) and
            getattr(getattr(e, "channel", None), "id", None) == ended and e.type == "StasisEnd"]
    assert lost == []
    # The marker carries what ARI still has, taken after the socket reopened.
    assert [c.id for c in marker.channels] == [live]
    assert marker.bridges == []
    assert {c.id for c in await ari.list_channels()} == {live}

    await sim.press(live, "2")  # and the live call's events keep coming
    dtmf = await listener.wait_for(of(ChannelDtmfReceived, id=live))
    assert dtmf.digit == "2"
    assert listener.events.index(marker) < listener.events.index(dtmf)
    await listener.stop()


async def test_an_asterisk_restart_loses_every_call_and_the_client_comes_back(sim, ari):
    listener = Listener(ari)
    await sim.wait_for_app()
    call = sim.place_call()
    await listener.wait_for(of(StasisStart, id=call))
    await ari.create_bridge("holding", bridge_id="queue-1")

    restart = asyncio.create_task(sim.restart(downtime=4.0))  # 0.2 s of real time
    await asyncio.sleep(0.05)
    with pytest.raises(AriHttpError) as down:
        await ari.list_channels()
    assert down.value.status == 503
    await restart
    marker = await listener.wait_for(lambda e: isinstance(e, Reconnected))
    assert marker.attempts >= 1  # refused at least once while Asterisk was down
    assert marker.channels == [] and marker.bridges == []  # the call and the queue are gone
    assert await ari.list_channels() == [] and await ari.list_bridges() == []
    new_call = sim.place_call()
    assert new_call != call
    await listener.wait_for(of(StasisStart, id=new_call))
    await listener.stop()


async def test_raw_mode_yields_the_messages_as_sent(sim, ari):
    listener = Listener(ari, raw=True)
    await sim.wait_for_app()
    call = sim.place_call()
    message = await listener.wait_for(lambda m: m["type"] == "StasisStart")
    assert message["channel"]["id"] == call and message["application"] == "lianxin"
    assert list(message)[:2] == ["type", "timestamp"]
    await sim.drop_websockets()
    marker = await listener.wait_for(lambda m: m["type"] == "Reconnected")
    assert [c["id"] for c in marker["channels"]] == [call]
    json.dumps(marker)  # plain JSON, like every other raw message
    await listener.stop()


async def test_wrong_credentials_are_raised_not_retried(sim):
    client = AriClient(sim.base_url, "lianxin", sim.username, "wrong", backoff_initial=0.01)
    with pytest.raises(AriAuthError):
        await client.list_channels()
    with pytest.raises(AriAuthError):
        async for _ in client.events():
            pass
    await client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_asterisk_is_a_connection_error_and_events_wait_for_it():
    port = _free_port()
    delays: list[float] = []

    class Recording(AriClient):
        async def _pause(self, seconds: float) -> None:
            delays.append(seconds)
            await asyncio.sleep(seconds)

    client = Recording(f"http://127.0.0.1:{port}", "lianxin", "lianxin", "lianxin",
                       backoff_initial=0.02, backoff_factor=2.0, backoff_max=0.16)
    with pytest.raises(AriConnectionError):
        await client.list_channels()
    listener = Listener(client)
    await asyncio.sleep(0.5)
    assert len(delays) >= 4
    # Exponential with jitter in [d/2, d], capped.
    for n, delay in enumerate(delays):
        cap = min(0.02 * 2 ** n, 0.16)
        assert cap / 2 <= delay <= cap
    async with run_simulator(port=port, speed=20.0) as sim:
        await sim.wait_for_app(timeout=5)
        call = sim.place_call()
        await listener.wait_for(of(StasisStart, id=call))
        # The first connection is not a reconnection: no marker.
        assert not any(isinstance(e, Reconnected) for e in listener.events)
    await listener.stop()
    await client.close()


async def test_close_ends_the_event_stream(sim):
    client = AriClient(sim.base_url, "lianxin", sim.username, sim.password)
    listener = Listener(client)
    await sim.wait_for_app()
    await client.close()
    await asyncio.wait_for(listener.task, 5)
    assert await _eventually_unregistered(sim)


async def _eventually_unregistered(sim) -> bool:
    for _ in range(200):
        if not sim.core.registered("lianxin"):
            return True
        await asyncio.sleep(0.01)
    return False
