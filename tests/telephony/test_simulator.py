"""The simulator's own behaviour: REST shapes and status codes as in Asterisk's spec,
phone behaviours, playback queueing, subscriptions, virtual time and the load generator."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from telephony_adapter.ari import spec
from telephony_adapter.ari.client import AriClient
from telephony_adapter.ari.errors import AriHttpError
from telephony_adapter.ari.models import (
    BridgeAttendedTransfer,
    ChannelCreated,
    PlaybackFinished,
    PlaybackStarted,
    RecordingStarted,
    StasisEnd,
    StasisStart,
)
from telephony_adapter.simulator import (
    AgentLoad,
    AnswerAfter,
    HangUpAfter,
    LoadGenerator,
    QueueLoad,
    Unavailable,
    run_simulator,
)

pytestmark = pytest.mark.timeout(90)

SPEC_DIR = Path(os.environ.get("LIANXIN_ARI_SPEC_DIR",
                               Path(__file__).resolve().parents[3] / "shared" / "asterisk-ari-spec"))


@pytest.fixture(scope="module")
def swagger() -> spec.SwaggerModels:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"Asterisk ARI spec not present at {SPEC_DIR}")
    return spec.load_models(SPEC_DIR)


@pytest.fixture
async def sim():
    async with run_simulator(speed=20.0) as simulator:
        yield simulator


@pytest.fixture
async def ari(sim):
    client = AriClient(sim.base_url, "lianxin", sim.username, sim.password, subscribe_all=True)
    received: list[Any] = []

    async def consume() -> None:
        async for event in client.events():
            received.append(event)

    task = asyncio.create_task(consume())
    client.received = received  # type: ignore[attr-defined]
    await sim.wait_for_app()
    yield client
    task.cancel()
    await client.close()


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_rest_resources_and_every_emitted_event_conform_to_the_spec(sim, ari, swagger):
    sim.register_endpoint("PJSIP/1001", AnswerAfter(0.5))
    call = sim.place_call()
    await until(lambda: call in sim.core.channels)
    body = await ari.request("GET", f"/channels/{call}")
    assert spec.json_problems(body, "Channel", swagger) == []
    await ari.answer(call)
    playback = await ari.request("POST", f"/channels/{call}/play", params={"media": "sound:beep"})
    assert spec.json_problems(playback, "Playback", swagger) == []
    bridge = await ari.request("POST", "/bridges", params={"type": "mixing", "name": "b"})
    assert spec.json_problems(bridge, "Bridge", swagger) == []
    agent = await ari.request("POST", "/channels", params={
        "endpoint": "PJSIP/1001", "app": "lianxin", "appArgs": "agent,1001"})
    assert spec.json_problems(agent, "Channel", swagger) == []
    await sim.wait_for_event(lambda e: e["type"] == "StasisStart" and e["channel"]["id"] == agent["id"])
    await ari.add_channel(bridge["id"], [call, agent["id"]])
    live = await ari.request("POST", f"/bridges/{bridge['id']}/record",
                             params={"name": "r1", "format": "wav"})
    assert spec.json_problems(live, "LiveRecording", swagger) == []
    assert spec.json_problems(await ari.request("GET", "/recordings/live/r1"),
                              "LiveRecording", swagger) == []
    snoop = await ari.request("POST", f"/channels/{call}/snoop",
                              params={"app": "lianxin", "whisper": "out"})
    assert spec.json_problems(snoop, "Channel", swagger) == []
    await ari.stop_recording("r1")
    assert spec.json_problems(await ari.request("GET", "/recordings/stored"),
                              "List[StoredRecording]", swagger) == []
    assert spec.json_problems(await ari.request("GET", "/bridges"), "List[Bridge]", swagger) == []
    assert spec.json_problems(await ari.request("GET", "/channels"), "List[Channel]", swagger) == []
    assert spec.json_problems(await ari.asterisk_info(), "AsteriskInfo", swagger) == []
    sim.hangup(agent["id"])
    sim.hangup(call)
    await until(lambda: not sim.core.channels)
    assert len(sim.events) > 30
    for event in sim.events:
        assert spec.json_problems(event, event["type"], swagger) == [], event["type"]


async def test_attended_transfer_by_the_agent_phone_links_our_bridge_to_the_colleague(
        sim, ari, swagger):
    sim.register_endpoint("PJSIP/1001", AnswerAfter(0.5))
    sim.register_endpoint("PJSIP/1002", AnswerAfter(1))
    call = sim.place_call()
    await until(lambda: call in sim.core.channels)
    await ari.answer(call)
    agent = await ari.request("POST", "/channels", params={
        "endpoint": "PJSIP/1001", "app": "lianxin", "appArgs": "agent,1001"})
    await sim.wait_for_event(lambda e: e["type"] == "StasisStart"
                             and e["channel"]["id"] == agent["id"])
    await ari.create_bridge("mixing", bridge_id="call")
    await ari.add_channel("call", [call, agent["id"]])
    second, colleague = sim.phone_dial(agent["id"], "1002")
    with pytest.raises(Exception, match="not answered"):
        sim.refer_attended(agent["id"], second)  # the colleague is still ringing
    await until(lambda: sim.core.channels[colleague].bridge is not None)
    consult = sim.core.channels[colleague].bridge
    assert sim.core.bridges[consult].bridge_class == "basic"  # the phone's own call
    assert sim.core.bridges["call"].channels == [call, agent["id"]]
    mark = len(sim.events)
    seat = sim.refer_attended(agent["id"], second)
    await until(lambda: agent["id"] not in sim.core.channels and second not in sim.core.channels)
    local = sim.core.channels[seat]
    assert local.name.startswith("Local/_attended@transfer-") and local.name.endswith(";1")
    # the caller with the Local ;1 in our bridge, its ;2 with the colleague in theirs
    assert sim.core.bridges["call"].channels == [call, seat]
    assert sorted(sim.core.bridges[consult].channels) == sorted([colleague, local.peer_half])
    after = sim.events[mark:]
    start = next(e for e in after if e["type"] == "StasisStart")
    assert start["channel"]["id"] == seat and start["replace_channel"]["id"] == agent["id"]
    transfer = next(e for e in after if e["type"] == "BridgeAttendedTransfer")
    assert transfer["transferer_first_leg"]["id"] == agent["id"]
    assert transfer["transferer_second_leg"]["id"] == second
    assert transfer["transferee"]["id"] == call
    assert transfer["transfer_target"]["id"] == colleague
    assert transfer["destination_type"] == "link"
    assert (transfer["destination_link_first_leg"]["id"],
            transfer["destination_link_second_leg"]["id"]) == (seat, local.peer_half)
    assert transfer["result"] == "Success" and transfer["is_external"] is True
    assert transfer["transferer_first_leg_bridge"]["channels"] == [call, agent["id"]]
    order = [e["type"] for e in after if e.get("channel", {}).get("id") == agent["id"]
             or e["type"] == "BridgeAttendedTransfer"]
    assert order.index("BridgeAttendedTransfer") < order.index("StasisEnd")
    await until(lambda: any(isinstance(e, BridgeAttendedTransfer) for e in ari.received))
    typed = next(e for e in ari.received if isinstance(e, BridgeAttendedTransfer))
    assert typed.transfer_target.id == colleague and typed.destination_link_first_leg.id == seat
    # the colleague hangs up: their bridge dissolves and the link goes with it
    sim.hangup(colleague)
    await until(lambda: seat not in sim.core.channels and consult not in sim.core.bridges)
    assert sim.core.bridges["call"].channels == [call]
    for event in sim.events:
        assert spec.json_problems(event, event["type"], swagger) == [], event["type"]
    sim.hangup(call)
    await until(lambda: call not in sim.core.channels)


async def test_status_codes_follow_asterisk(sim, ari):
    call = sim.place_call()
    await until(lambda: call in sim.core.channels)

    async def status(method: str, path: str, **params: Any) -> int:
        try:
            await ari.request(method, path, params=params)
        except AriHttpError as exc:
            return exc.status
        return 200

    assert await status("GET", "/channels/nope") == 404
    assert await status("POST", "/channels/nope/answer") == 404
    assert await status("POST", "/channels/nope/play", media="sound:beep") == 404
    assert await status("DELETE", "/bridges/nope") == 404
    assert await status("GET", "/playbacks/nope") == 404
    assert await status("POST", "/recordings/live/nope/stop") == 404
    assert await status("GET", "/recordings/stored/nope") == 404
    assert await status("POST", "/channels") == 400                      # endpoint missing
    assert await status("POST", f"/channels/{call}/play") == 400         # media missing
    assert await status("POST", f"/channels/{call}/redirect", endpoint="IAX2/x") == 422
    assert await status("DELETE", f"/channels/{call}", reason="because") == 400
    assert await status("POST", f"/channels/{call}/snoop", app="lianxin", spy="sideways") == 400
    assert await status("POST", "/channels", endpoint="PJSIP/1", app="lianxin",
                        channelId=call) == 409
    await ari.request("POST", f"/channels/{call}/record", params={"name": "n", "format": "wav"})
    assert await status("POST", f"/channels/{call}/record", name="n", format="wav") == 409
    await ari.stop_recording("n")
    assert await status("POST", f"/channels/{call}/record", name="n", format="wav") == 409
    assert await status("POST", f"/channels/{call}/record", name="n", format="wav",
                        ifExists="overwrite") == 200
    await ari.continue_in_dialplan(call)
    assert await status("POST", f"/channels/{call}/answer") == 409       # left Stasis
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(f"{sim.base_url}/ari/channels")
    assert response.status_code == 401 and response.json() == {"message": "Authentication required"}


async def test_phone_behaviours(sim, ari):
    sim.register_endpoint("PJSIP/2001", HangUpAfter(talk=2.0, ring=0.5))
    sim.register_endpoint("PJSIP/2002", Unavailable())
    sim.register_endpoint("PJSIP/2003", AnswerAfter(0.2))

    first = await ari.originate("PJSIP/2001", app="lianxin", channel_id="a1")
    gone = await sim.wait_for_event(lambda e: e["type"] == "ChannelDestroyed"
                                    and e["channel"]["id"] == "a1")
    requests = [e for e in sim.events if e["type"] == "ChannelHangupRequest"
                and e["channel"]["id"] == first.id]
    assert [{k: v for k, v in r.items() if k in ("cause", "soft")} for r in requests] == [{"cause": 16}]
    assert gone["cause"] == 16

    await ari.originate("PJSIP/2002", app="lianxin", channel_id="a2")
    gone = await sim.wait_for_event(lambda e: e["type"] == "ChannelDestroyed"
                                    and e["channel"]["id"] == "a2")
    assert gone["cause"] == 20
    assert [e["dialstatus"] for e in sim.events if e["type"] == "Dial"
            and e["peer"]["id"] == "a2"] == ["", "CHANUNAVAIL"]

    await ari.originate("PJSIP/2003", app="lianxin", channel_id="a3")
    await sim.wait_for_event(lambda e: e["type"] == "StasisStart" and e["channel"]["id"] == "a3")
    await ari.originate("PJSIP/2003", app="lianxin", channel_id="a4")  # the phone is in use
    gone = await sim.wait_for_event(lambda e: e["type"] == "ChannelDestroyed"
                                    and e["channel"]["id"] == "a4")
    assert (gone["cause"], gone["tech_cause"]) == (17, 486)


async def test_cancelling_a_ringing_agent_leg(sim, ari):
    sim.register_endpoint("PJSIP/3001", "never-answer")
    await ari.originate("PJSIP/3001", app="lianxin", channel_id="ring-1", timeout=30)
    await sim.wait_for_event(lambda e: e["type"] == "Dial" and e["dialstatus"] == "RINGING")
    await ari.hangup("ring-1")
    gone = await sim.wait_for_event(lambda e: e["type"] == "ChannelDestroyed")
    assert gone["channel"]["id"] == "ring-1" and gone["cause"] == 16
    assert [e["dialstatus"] for e in sim.events if e["type"] == "Dial"] == ["", "RINGING", "CANCEL"]
    assert not any(e["type"] == "StasisStart" for e in sim.events)


async def test_prompts_on_one_channel_play_one_after_the_other_and_can_be_stopped(sim, ari):
    call = sim.place_call()
    await until(lambda: call in sim.core.channels)
    await ari.answer(call)
    await ari.play(call, "sound:hello-world", "p1")
    await ari.play(call, ["digits:42", "sound:beep"], "p2")
    await ari.play(call, "sound:demo-congrats", "p3")
    await sim.wait_for_event(lambda e: e["type"] == "PlaybackStarted" and e["playback"]["id"] == "p3")
    await ari.stop_playback("p3")
    await sim.wait_for_event(lambda e: e["type"] == "PlaybackFinished" and e["playback"]["id"] == "p3")
    sequence = [(e["type"], e["playback"]["id"], e["playback"]["state"]) for e in sim.events
                if e["type"].startswith("Playback")]
    assert sequence == [
        ("PlaybackStarted", "p1", "playing"), ("PlaybackFinished", "p1", "done"),
        ("PlaybackStarted", "p2", "playing"), ("PlaybackContinuing", "p2", "continuing"),
        ("PlaybackFinished", "p2", "done"),
        ("PlaybackStarted", "p3", "playing"), ("PlaybackFinished", "p3", "done")]
    with pytest.raises(AriHttpError):
        await ari.get_playback("p3")


async def test_without_subscribe_all_only_stasis_events_and_no_duplicates(sim):
    client = AriClient(sim.base_url, "lianxin", sim.username, sim.password)
    received: list[Any] = []

    async def consume() -> None:
        async for event in client.events():
            received.append(event)

    task = asyncio.create_task(consume())
    await sim.wait_for_app()
    call = sim.place_call()
    await until(lambda: any(isinstance(e, StasisStart) for e in received))
    await client.answer(call)
    await client.create_bridge("mixing", bridge_id="b")
    await client.add_channel("b", call)
    await client.record_bridge("b", "rec")
    await until(lambda: any(isinstance(e, RecordingStarted) for e in received))
    await asyncio.sleep(0.05)
    assert sum(isinstance(e, RecordingStarted) for e in received) == 1
    assert not any(isinstance(e, ChannelCreated) for e in received)  # before Stasis: not ours
    assert any(e["type"] == "ChannelCreated" for e in sim.events)
    task.cancel()
    await client.close()


async def test_virtual_time_compresses_delays_and_stamps_simulated_time():
    async with run_simulator(speed=120.0) as sim:
        client = AriClient(sim.base_url, "lianxin", sim.username, sim.password)
        received: list[Any] = []

        async def consume() -> None:
            async for event in client.events():
                received.append(event)

        task = asyncio.create_task(consume())
        await sim.wait_for_app()
        call = sim.place_call()
        await until(lambda: any(isinstance(e, StasisStart) for e in received))
        loop = asyncio.get_running_loop()
        began = loop.time()
        await client.play(call, "sound:silence/60")  # one simulated minute
        await until(lambda: any(isinstance(e, PlaybackFinished) for e in received), timeout=10)
        real = loop.time() - began
        started = next(e for e in received if isinstance(e, PlaybackStarted))
        finished = next(e for e in received if isinstance(e, PlaybackFinished))
        simulated = (finished.occurred_at - started.occurred_at).total_seconds()
        # Never early; late only by scheduling delay (x120 on a busy machine).
        assert 59.9 <= simulated <= 75.0
        assert real < 5.0
        task.cancel()
        await client.close()


async def test_arrivals_follow_the_hourly_profile():
    profile = [1.0, 0.25] + [0.0] * 22
    async with run_simulator(speed=3600.0, seed=3) as sim:
        # No application is connected: every call fails at Stasis(), which is fine here.
        load = LoadGenerator(sim, [QueueLoad(dialed="95598", peak_calls_per_hour=720)],
                             profile=profile, seed=11)
        stats = await load.run(2 * 3600)
        await load.stop()
        created = sum(1 for e in sim.events if e["type"] == "ChannelCreated")
    assert stats.placed == created == stats.per_hour[0] + stats.per_hour[1]
    # Poisson: 720 and 180 expected; 4 standard deviations either way.
    assert 720 - 4 * 27 <= stats.per_hour[0] <= 720 + 4 * 27
    assert 180 - 4 * 14 <= stats.per_hour[1] <= 180 + 4 * 14


class MiniAcd:
    """Just enough of a Stasis app to exercise the load generator: greet, hold, hand the
    caller to the first free agent, survey the caller when the agent hangs up first."""

    def __init__(self, ari: AriClient, agents: list[str]) -> None:
        self.ari = ari
        self.free = list(agents)
        self.waiting: list[str] = []
        self.pair: dict[str, str] = {}   # agent channel -> caller channel and back
        self.agent_of: dict[str, str] = {}
        self.surveyed: set[str] = set()
        self.closed_queue = "12345"

    async def run(self) -> None:
        async for event in self.ari.events():
            try:
                await self.handle(event)
            except AriHttpError:
                pass  # the races Asterisk has too: the caller left meanwhile

    async def handle(self, event: Any) -> None:
        if isinstance(event, StasisStart) and not event.args:
            call = event.channel.id
            await self.ari.answer(call)
            await self.ari.play(call, "sound:hello-world")
            if event.channel.dialplan.exten == self.closed_queue:
                return  # nobody staffs this one: its callers can only give up
            self.waiting.append(call)
            await self.dispatch()
        elif isinstance(event, StasisStart) and event.args[:1] == ["agent"]:
            caller = self.pair.get(event.channel.id)
            if caller is None:
                await self.ari.hangup(event.channel.id)
                return
            bridge = await self.ari.create_bridge("mixing")
            await self.ari.add_channel(bridge.id, [caller, event.channel.id])
        elif isinstance(event, StasisEnd):
            gone = event.channel.id
            if gone in self.waiting:
                self.waiting.remove(gone)
            other = self.pair.pop(gone, None)
            if other is not None:
                self.pair.pop(other, None)
                if gone in self.agent_of:   # the agent hung up first: survey the caller
                    self.surveyed.add(other)
                    await self.ari.play(other, "sound:queue-thankyou")
                else:
                    await self.ari.hangup(other)
            endpoint = self.agent_of.pop(gone, None)
            if endpoint:
                self.free.append(endpoint)
                await self.dispatch()
        elif event.type == "ChannelDestroyed" and event.channel.id in self.agent_of:
            self.free.append(self.agent_of.pop(event.channel.id))   # never answered
            caller = self.pair.pop(event.channel.id, None)
            if caller:
                self.pair.pop(caller, None)
                self.waiting.insert(0, caller)
            await self.dispatch()
        elif event.type == "ChannelDtmfReceived" and event.channel.id in self.surveyed:
            await self.ari.hangup(event.channel.id)

    async def dispatch(self) -> None:
        while self.waiting and self.free:
            caller = self.waiting.pop(0)
            endpoint = self.free.pop(0)
            agent = await self.ari.originate(endpoint, app="lianxin", app_args=["agent"],
                                             timeout=20)
            self.pair[agent.id], self.pair[caller] = caller, agent.id
            self.agent_of[agent.id] = endpoint


async def test_a_load_run_abandons_connects_surveys_and_leaves_nothing_open():
    async with run_simulator(speed=80.0, seed=5) as sim:
        ari = AriClient(sim.base_url, "lianxin", sim.username, sim.password, subscribe_all=True)
        agents = [AgentLoad(f"PJSIP/10{n:02d}", ring_delay=2.0, ring_jitter=1.0, wrap_up=5.0)
                  for n in range(3)]
        acd = MiniAcd(ari, [a.endpoint for a in agents])
        acd_task = asyncio.create_task(acd.run())
        await sim.wait_for_app()
        queues = [QueueLoad(dialed="95598", peak_calls_per_hour=240, patience_mean=120,
                            talk_median=30, agent_hangs_up_first=0.5, survey_answer_rate=1.0),
                  QueueLoad(dialed=acd.closed_queue, peak_calls_per_hour=60, patience_mean=20)]
        load = LoadGenerator(sim, queues, agents, profile=[1.0] * 24, seed=7,
                             start_hour=datetime(2026, 11, 23, 9).hour)
        stats = await asyncio.wait_for(load.run(5 * 60), 60)
        await until(lambda: not sim.core.channels, timeout=10)
        await load.stop()
        acd_task.cancel()
        await ari.close()
    assert stats.per_queue["95598"] >= 10 and stats.per_queue[acd.closed_queue] >= 1
    assert stats.connected >= 5
    assert stats.abandoned >= stats.per_queue[acd.closed_queue]
    assert stats.completed_by_agent >= 1 and stats.survey_answers >= 1
    assert stats.placed == stats.connected + stats.abandoned + stats.ended_elsewhere
    assert stats.completed_by_agent + stats.completed_by_caller <= stats.connected


async def test_the_simulator_runs_as_its_own_process_with_generated_callers():
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony_adapter.simulator", "--port", "0", "--speed", "50",
        "--agents", "2", "--load", "3600", "--hours", "1", "--ivr-digits", "",
        stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert "listening on http://127.0.0.1:" in line
        base_url = line.split(" on ", 1)[1].split("/ari", 1)[0]
        client = AriClient(base_url, "lianxin", "lianxin", "lianxin")
        received: list[Any] = []

        async def consume() -> None:
            async for event in client.events():
                received.append(event)

        task = asyncio.create_task(consume())
        await until(lambda: any(isinstance(e, StasisStart) for e in received), timeout=20)
        start = next(e for e in received if isinstance(e, StasisStart))
        assert start.channel.dialplan.exten == "95598"
        assert (await client.get_channel(start.channel.id)).id == start.channel.id
        task.cancel()
        await client.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


def test_sim_clock_stamps_are_utc_whatever_zone_the_day_starts_in():
    from datetime import datetime, timedelta, timezone

    from telephony_adapter.simulator.clock import SimClock

    shanghai = timezone(timedelta(hours=8))
    clock = SimClock(speed=1.0, start=datetime(2026, 11, 23, 9, 0, tzinfo=shanghai))
    stamped = datetime.strptime(clock.stamp(), "%Y-%m-%dT%H:%M:%S.%f%z")
    assert abs(stamped - datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)) < timedelta(seconds=5)
