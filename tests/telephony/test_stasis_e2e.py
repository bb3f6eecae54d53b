"""The Stasis app against the ARI simulator over real HTTP and WebSocket on
loopback: each scenario a caller or agent could live through."""

from __future__ import annotations

from datetime import datetime

import pytest

from domain.agent import AgentState, agent_id_for
from tests.telephony.conftest import events_since, names, staff
from tests.telephony.stack import stack
from telephony_adapter.simulator import AnswerAfter, HangUpAfter, NeverAnswer

pytestmark = pytest.mark.timeout(60)


async def test_answered_call_goes_through_ivr_queue_agent_and_recording(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    start = lx.app.max_position()
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=2))
        ch = s.sim.place_call(caller="13800000001", dialed="95598")
        await s.call_state(ch, "ivr")
        await s.sim.press(ch, "0")
        call = await s.call_state(ch, "connected")
        assert call.queue == "general"
        await s.until(lambda: s.call(ch).recordings, what="recording")
        await s.sim.sleep(5)
        s.sim.hangup(ch)
        call = await s.call_state(ch, "ended")
        await s.until(lambda: all(r["stopped_at"] for r in s.call(ch).recordings.values()),
                      what="recording stopped")
    assert call.hung_up_by == "caller"
    evs = names(events_since(lx, start), "Call.")
    assert evs == ["Call.Offered", "Call.IvrEntered", "Call.MenuChoiceMade", "Call.Queued",
                   "Call.AgentAlerted", "Call.Answered", "Call.RecordingStarted", "Call.Ended",
                   "Call.RecordingStopped"]
    # ring delay and talk time are simulated seconds, as Asterisk stamped them
    [(leg_id, leg)] = list(s.call(ch).legs.items())
    stamps = {(e["type"], e.get("channel", {}).get("id")): datetime.fromisoformat(e["timestamp"])
              for e in s.sim.events if "channel" in e}
    assert leg["alerted_at"] == stamps[("ChannelCreated", leg_id)]
    assert leg["answered_at"] == stamps[("StasisStart", leg_id)]
    assert (leg["answered_at"] - leg["alerted_at"]).total_seconds() >= 2  # the phone rang 2 s
    assert lx.app.repository.get(agent_id_for("1001")).state == AgentState.WRAP_UP


def _requests(s, method: str, suffix: str) -> list:
    return [r for r in s.sim.requests if r[0] == method and r[1].endswith(suffix)]


async def _to_agent(s, ch: str, digit: str = "0") -> None:
    await s.call_state(ch, "ivr")
    await s.sim.press(ch, digit)


async def test_abandoned_in_queue_after_music_and_a_position_announcement(sqlite_lianxin):
    lx = sqlite_lianxin
    start = lx.app.max_position()
    async with stack(lx) as s:
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        await s.call_state(ch, "queued")
        await s.until(lambda: _requests(s, "POST", f"/channels/{ch}/moh"), what="MOH")
        # announce_first_s of the general queue is 20 s: wait past it
        await s.sim.sleep(24)
        await s.until(lambda: any("queue-youarenext" in str(r) for r in s.sim.requests),
                      what="position announcement")
        s.sim.hangup(ch)
        call = await s.call_state(ch, "abandoned")
    assert call.abandon_stage == "queue" and call.queue == "general"
    evs = names(events_since(lx, start), "Call.")
    assert evs[-2:] == ["Call.Queued", "Call.Abandoned"]


async def test_abandoned_in_the_ivr(sqlite_lianxin):
    lx = sqlite_lianxin
    async with stack(lx) as s:
        ch = s.sim.place_call()
        await s.call_state(ch, "ivr")
        await s.sim.sleep(1)
        s.sim.hangup(ch)
        call = await s.call_state(ch, "abandoned")
    assert call.abandon_stage == "ivr" and call.ivr_path == ["main"]


async def test_ring_no_answer_puts_the_agent_not_ready_and_the_next_one_answers(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")  # ready first: idle longest, rung first
    staff(lx, "1002")
    start = lx.app.max_position()
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", NeverAnswer())
        s.sim.register_endpoint("PJSIP/1002", AnswerAfter(delay=1))
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        call = await s.call_state(ch, "connected", timeout=15)
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")
    evs = events_since(lx, start)
    call_evs = [e for e in evs if type(e).__qualname__.startswith("Call.")]
    assert names(call_evs)[3:7] == ["Call.Queued", "Call.AgentAlerted", "Call.RingNoAnswer",
                                    "Call.AgentAlerted"]
    rna = next(e for e in call_evs if type(e).__qualname__ == "Call.RingNoAnswer")
    alerted = next(e for e in call_evs if type(e).__qualname__ == "Call.AgentAlerted")
    assert rna.outcome == "no_answer"
    # the general queue rings 15 simulated seconds before giving up
    rang = (rna.occurred_at - alerted.occurred_at).total_seconds()
    assert 15 <= rang < 18  # (a loaded machine oversleeps a little, never undersleeps)
    a1 = lx.app.repository.get(agent_id_for("1001"))
    assert (a1.state, a1.reason) == (AgentState.NOT_READY, "ring_no_answer")
    assert call.agent_id == agent_id_for("1002")


async def test_survey_after_the_agent_hangs_up_first(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", HangUpAfter(ring=1, talk=3))
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        call = await s.call_state(ch, "ended", timeout=15)
        assert call.hung_up_by == "agent"
        await s.until(lambda: any("survey" in str(r) for r in s.sim.requests), what="survey prompt")
        await s.sim.press(ch, "4")
        await s.until(lambda: s.call(ch).survey_score == 4, what="survey answer")
        # thanked, then hung up by us
        await s.until(lambda: ch not in s.sim.channel_ids(), what="caller hung up")
    assert lx.app.repository.get(agent_id_for("1001")).state == AgentState.WRAP_UP


async def test_survey_ignores_keys_outside_1_to_5_and_times_out(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", HangUpAfter(ring=1, talk=2))
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        await s.call_state(ch, "ended", timeout=15)
        await s.until(lambda: any("survey" in str(r) for r in s.sim.requests), what="survey prompt")
        await s.sim.press(ch, "9")
        await s.until(lambda: ch not in s.sim.channel_ids(), timeout=15, what="timeout hang-up")
    assert s.call(ch).survey_score is None


async def test_websocket_drop_closes_calls_that_ended_meanwhile_and_keeps_live_ones(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001", "1002")
    async with stack(lx) as s:
        for emp in ("1001", "1002"):
            s.sim.register_endpoint(f"PJSIP/{emp}", AnswerAfter(delay=1))
        gone, kept = s.sim.place_call(caller="1"), s.sim.place_call(caller="2")
        for ch in (gone, kept):
            await _to_agent(s, ch)
        for ch in (gone, kept):
            await s.call_state(ch, "connected", timeout=15)
        await s.sim.drop_websockets()
        s.sim.hangup(gone)  # nobody is listening: these events are lost
        await s.until(lambda: s.app.stats["reconnects"] >= 1, what="reconnect")
        ended = await s.call_state(gone, "ended")
        assert (await s.call_state(kept, "connected")).state.value == "connected"
        s.sim.hangup(kept)
        kept_call = await s.call_state(kept, "ended")
    assert ended.hung_up_by == "system"
    assert kept_call.hung_up_by == "caller"
    cause = [e for e in events_since(lx, 0) if type(e).__qualname__ == "Call.Ended"
             and e.originator_id == ended.id][0].cause
    assert cause == "lost: channel gone while disconnected from Asterisk"


async def test_asterisk_restart_mid_call_ends_every_call_with_a_cause(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1))
        talking, waiting = s.sim.place_call(caller="1"), s.sim.place_call(caller="2")
        await _to_agent(s, talking)
        await s.call_state(talking, "connected", timeout=15)
        await _to_agent(s, waiting)
        await s.call_state(waiting, "queued")
        await s.sim.restart(downtime=2)
        a = await s.call_state(talking, "ended", timeout=15)
        b = await s.call_state(waiting, "ended", "abandoned", timeout=15)
    assert a.hung_up_by == "system" and b.hung_up_by == "system"
    causes = {e.originator_id: e.cause for e in events_since(lx, 0)
              if type(e).__qualname__ == "Call.Ended"}
    assert causes[a.id].startswith("lost: Asterisk restarted")
    assert causes[b.id].startswith("lost: Asterisk restarted")
    assert s.app.tracker.live_calls() == []
    agent = lx.app.repository.get(agent_id_for("1001"))
    assert agent.state == AgentState.WRAP_UP  # released, not stuck on a dead call


async def test_an_agent_back_from_wrap_up_takes_the_next_caller(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with stack(lx, auto_ready_after_s=5) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1))
        first = s.sim.place_call(caller="1")
        await _to_agent(s, first)
        await s.call_state(first, "connected", timeout=15)
        second = s.sim.place_call(caller="2")
        await _to_agent(s, second)
        await s.call_state(second, "queued")
        s.sim.hangup(first)
        await s.call_state(first, "ended")
        # wrap-up (5 simulated seconds here), ready again, rung for the waiting caller
        call = await s.call_state(second, "connected", timeout=15)
        assert call.agent_id == agent_id_for("1001")
        s.sim.hangup(second)
        await s.call_state(second, "ended")


async def test_overflow_moves_a_caller_no_skilled_agent_can_take(sqlite_lianxin):
    import dataclasses

    from telephony_adapter.stasis.config import load

    cfg = load()
    # repair callers hear their own music; an overflow takes them to general's
    quick = tuple(dataclasses.replace(q, overflow_after_s=30, moh_class="repair-line")
                  if q.name == "repair" else q for q in cfg.queues)
    lx = sqlite_lianxin
    start = lx.app.max_position()
    async with stack(lx, config=dataclasses.replace(cfg, queues=quick)) as s:
        s.sim.register_endpoint("PJSIP/1002", AnswerAfter(delay=1))
        ch = s.sim.place_call()
        await s.call_state(ch, "ivr")
        await s.sim.press(ch, "11")  # repair menu, then the repair queue
        await s.until(lambda: s.call(ch).queue == "repair", what="repair queue")
        await s.until(lambda: s.sim.core.channels[ch].moh_class == "repair-line",
                      what="repair music")
        await s.until(lambda: s.call(ch).queue == "general", timeout=15, what="overflow")
        await s.until(lambda: s.sim.core.channels[ch].moh_class == "default",
                      what="general's music")
        staff(lx, "1002")  # no repair skill: general calls only
        call = await s.call_state(ch, "connected", timeout=20)
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")
    queued = [e for e in events_since(lx, start) if type(e).__qualname__ == "Call.Queued"]
    assert [e.queue for e in queued] == ["repair", "general"]
    # the second Queued says it was the repair queue's overflow rule
    assert [(e.reason, e.from_queue) for e in queued] == [(None, None), ("overflow", "repair")]
    assert [e.actor for e in queued] == [None, "acd-overflow:repair"]
    waited = (queued[1].occurred_at - queued[0].occurred_at).total_seconds()
    assert 30 <= waited < 40
    assert call.agent_id == agent_id_for("1002")


async def test_self_service_work_order_status_by_keypad(sqlite_lianxin):
    from telephony_adapter.stasis.selfservice import SelfServiceDesk

    asked = []

    def status(lianxin, number):
        asked.append(number)
        return {"status": "dispatched"}

    lx = sqlite_lianxin
    desk = SelfServiceDesk(lx, lookups={"work_order_status": status})
    start = lx.app.max_position()
    async with stack(lx, self_service=desk) as s:
        ch = s.sim.place_call()
        await s.call_state(ch, "ivr")
        await s.sim.press(ch, "21")  # self-service menu, work-order status
        await s.sim.sleep(1)
        await s.sim.press(ch, "2026#")
        await s.until(lambda: s.call(ch).self_service == ["work_order_status"], what="lookup")
        await s.until(lambda: any("status-dispatched" in str(r) for r in s.sim.requests),
                      what="status played")
        s.sim.hangup(ch)
        call = await s.call_state(ch, "ended", "abandoned")
    assert asked == ["2026"]
    used = [e for e in events_since(lx, start) if type(e).__qualname__ == "Call.SelfServiceUsed"]
    assert (used[0].service, used[0].reference, used[0].result) == (
        "work_order_status", "2026", "dispatched")
    # served by self-service: hanging up afterwards is not an abandon
    assert call.state.value == "ended" and call.hung_up_by == "caller"


async def test_silence_and_wrong_keys_end_with_an_agent(sqlite_lianxin):
    lx = sqlite_lianxin
    start = lx.app.max_position()
    async with stack(lx) as s:
        ch = s.sim.place_call()
        await s.call_state(ch, "ivr")
        await s.sim.press(ch, "7")  # not an option: the menu is replayed
        # then silence: one more replay, then the retries are exhausted
        call = await s.call_state(ch, "queued", timeout=20)
        s.sim.hangup(ch)
        await s.call_state(ch, "abandoned")
    assert call.queue == "general"
    evs = names(events_since(lx, start), "Call.")
    assert evs[:3] == ["Call.Offered", "Call.IvrEntered", "Call.Queued"]
    assert any("option-is-invalid" in str(r) for r in s.sim.requests)
    assert any("please-try-again" in str(r) for r in s.sim.requests)


async def test_a_bridge_lost_while_disconnected_is_rebuilt_and_the_call_goes_on(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1))
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        call = await s.call_state(ch, "connected", timeout=15)
        await s.until(lambda: s.call(ch).recordings, what="recording")
        bridge = f"call-{ch}"
        await s.sim.drop_websockets()
        s.sim.core.destroy_bridge(bridge)  # unseen: nobody is listening
        await s.until(lambda: s.app.stats["reconnects"] >= 1, what="reconnect")
        await s.until(lambda: bridge in s.sim.core.bridges
                      and set(s.sim.core.bridges[bridge].channels) == {ch, call.leg_id},
                      what="bridge rebuilt")
        await s.until(lambda: len(s.call(ch).recordings) == 2, what="new recording")
        first = s.call(ch).recordings[f"call-{ch}-1"]
        assert first["stopped_at"] is not None
        assert s.call(ch).state.value == "connected"
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


def _cause(lx, call) -> str:
    return [e for e in events_since(lx, 0) if type(e).__qualname__ == "Call.Ended"
            and e.originator_id == call.id][0].cause


async def test_callers_left_by_a_stopped_adapter_are_queued_again_or_ended(sqlite_lianxin):
    lx = sqlite_lianxin
    async with stack(lx) as s:
        waiting, choosing = s.sim.place_call(caller="1"), s.sim.place_call(caller="2")
        await _to_agent(s, waiting)
        queued = await s.call_state(waiting, "queued")
        await s.call_state(choosing, "ivr")
        await s.stop_adapter()
        await s.sim.sleep(30)
        # Asterisk keeps both in Stasis, in silence: nobody drives them
        assert {waiting, choosing} <= set(s.sim.channel_ids())
        staff(lx, "1001")
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1))
        await s.start_adapter()
        # the waiting caller is back in their queue and reaches the agent ...
        call = await s.call_state(waiting, "connected", timeout=15)
        assert call.agent_id == agent_id_for("1001") and call.queue == "general"
        assert call.queued_at == queued.queued_at  # their wait did not start again
        # ... the one stuck in the IVR is hung up, with a cause that says why
        ended = await s.call_state(choosing, "ended")
        await s.until(lambda: choosing not in s.sim.channel_ids(), what="IVR caller hung up")
        assert ended.hung_up_by == "system"
        assert _cause(lx, ended) == ("lost: the telephony adapter restarted while the call"
                                     " was in the IVR")
        assert s.app.stats["adopted"] == 1
        s.sim.hangup(waiting)
        assert (await s.call_state(waiting, "ended")).hung_up_by == "caller"


async def test_a_caller_ringing_an_agent_when_the_adapter_stopped_is_offered_again(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    start = lx.app.max_position()
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=12))
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        await s.call_state(ch, "ringing")
        await s.stop_adapter()  # the leg rings (or answers) with nobody following it
        await s.start_adapter()
        call = await s.call_state(ch, "connected", timeout=20)
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")
    evs = [e for e in events_since(lx, start) if type(e).__qualname__.startswith("Call.")]
    assert names(evs)[4:8] == ["Call.AgentAlerted", "Call.RingNoAnswer", "Call.AgentAlerted",
                               "Call.Answered"]
    assert evs[5].outcome == "canceled"  # not the agent's fault: back to ready, rung again
    assert evs[4].leg_id != call.leg_id  # a fresh leg
    assert call.agent_id == agent_id_for("1001")


def _played(s, ch: str) -> list[str]:
    return [r[2].get("media", "") for r in s.sim.requests
            if r[0] == "POST" and r[1].endswith(f"/channels/{ch}/play")]


async def test_self_service_reads_real_outage_notices_and_work_orders(sqlite_lianxin):
    from datetime import timedelta, timezone

    from commands import messages as m
    from commands import work_order_messages as wm

    lx = sqlite_lianxin
    now = datetime.now(timezone.utc)
    lx.commands.handle(wm.PublishOutage(reference="TD-77", kind="planned",
                                        areas=["district:310104", "feeder:F12"],
                                        start=now + timedelta(hours=1),
                                        end=now + timedelta(hours=5), reason="line upgrade"))
    opened = lx.commands.handle(m.OpenWorkOrder(type="complaint", summary="bill disputed",
                                                command_id="wo-ivr"))
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=opened.aggregate_id,
                                           department="billing"))
    number = lx.app.repository.get(opened.aggregate_id).number
    start = lx.app.max_position()
    async with stack(lx) as s:  # the stack's desk is the real one, on this core
        ch = s.sim.place_call()
        await s.call_state(ch, "ivr")
        await s.sim.press(ch, "22")  # self-service menu, outage information
        await s.until(lambda: "sound:custom/enter-area-code" in _played(s, ch), what="area prompt")
        await s.sim.press(ch, "310104")  # six digits: no # needed ...
        await s.until(lambda: "sound:custom/outage-planned" in _played(s, ch), what="outage read")
        heard = _played(s, ch)
        answer = heard[heard.index("sound:custom/outages-in-area"):]
        assert answer[:3] == ["sound:custom/outages-in-area", "digits:1",
                              "sound:custom/outage-planned"]
        # back in the self-service menu: 1 is the work-order status
        await s.until(lambda: _played(s, ch)[-1] == "sound:custom/selfservice-menu",
                      what="menu again")
        await s.sim.press(ch, "1")
        await s.until(lambda: _played(s, ch)[-1] == "sound:custom/enter-work-order-number",
                      what="number prompt")
        # ... and a full-length number followed by the # the prompt asks for:
        # that # is not taken for a menu choice cutting the answer short
        await s.sim.press(ch, number + "#", gap=0.1)
        await s.until(lambda: "sound:custom/status-dispatched" in _played(s, ch),
                      what="status read")
        assert "sound:option-is-invalid" not in _played(s, ch)
        # an area without a notice
        await s.until(lambda: _played(s, ch)[-1] == "sound:custom/selfservice-menu",
                      what="menu once more")
        await s.sim.press(ch, "2")
        await s.sim.press(ch, "999#")
        await s.until(lambda: "sound:custom/no-outage-in-area" in _played(s, ch),
                      what="no outage read")
        s.sim.hangup(ch)
        call = await s.call_state(ch, "ended", "abandoned")
    used = [(e.service, e.reference, e.result) for e in events_since(lx, start)
            if type(e).__qualname__ == "Call.SelfServiceUsed"]
    assert used == [("outage_info", "310104", "1 outage(s): planned"),
                    ("work_order_status", number, "dispatched"),
                    ("outage_info", "999", "no_outage")]
    assert call.state.value == "ended"  # served by self-service, not abandoned


def _started(s, ch: str, since: datetime) -> list[tuple[datetime, str]]:
    """(simulated time, media) of every prompt that started on the caller's channel."""
    return [(datetime.fromisoformat(e["timestamp"]), e["playback"]["media_uri"])
            for e in s.sim.events if e["type"] == "PlaybackStarted"
            and e["playback"]["target_uri"] == f"channel:{ch}"
            and datetime.fromisoformat(e["timestamp"]) >= since]


async def test_position_announcements_repeat_and_count_the_callers_ahead(sqlite_lianxin):
    lx = sqlite_lianxin
    async with stack(lx) as s:  # nobody staffed: everyone waits
        callers = []
        for n in range(3):
            ch = s.sim.place_call(caller=f"1380000000{n}")
            await _to_agent(s, ch)
            await s.call_state(ch, "queued")
            callers.append(ch)
        # general: first after 20 s in the queue, then every 40 s (the first
        # caller's third one would come at 100 s)
        await s.sim.sleep(20 + 40 + 15)
        heard = {ch: _started(s, ch, s.call(ch).queued_at) for ch in callers}
        mohs = {ch: len(_requests(s, "POST", f"/channels/{ch}/moh")) for ch in callers}
        for ch in callers:
            s.sim.hangup(ch)
            await s.call_state(ch, "abandoned")
    ahead = {callers[0]: ["sound:queue-youarenext"],
             callers[1]: ["sound:queue-thereare", "digits:1", "sound:queue-callswaiting"],
             callers[2]: ["sound:queue-thereare", "digits:2", "sound:queue-callswaiting"]}
    for ch, words in ahead.items():
        media = [m for _, m in heard[ch]]
        assert media[:2 * len(words)] == words * 2, ch  # the same position, said twice
        first, second = heard[ch][0][0], heard[ch][len(words)][0]
        queued_at = s.call(ch).queued_at
        # On the queue's schedule (20 s in, then every 40 s), never early; a
        # loaded machine may be a tick or two late. Measured from queued_at,
        # not from the first: a first that starts late would shorten the gap.
        assert 20 <= (first - queued_at).total_seconds() < 26, ch
        assert 60 <= (second - queued_at).total_seconds() < 66, ch
        # the music comes back after each announcement
        assert mohs[ch] >= 3, ch


@pytest.mark.parametrize("hang_up", ["while_ringing", "as_the_agent_is_chosen"])
async def test_an_agent_whose_caller_hung_up_during_the_ring_is_offered_the_next_caller(
        sqlite_lianxin, hang_up):
    # Found in the demo: from mid-morning on no caller reached an agent, all
    # fifteen were ready in the store and none was in the ACD. A caller who
    # hung up before the agent's phone reported ringing left no trace in the
    # agent's record, and nothing brought the agent back into routing.
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=8))
        first = s.sim.place_call(caller="1")
        if hang_up == "as_the_agent_is_chosen":
            flow = s.app.flow
            originate = flow.originate

            async def caller_gives_up_first(ext, *args, **kwargs):
                if ext == first:
                    s.sim.hangup(first)
                return await originate(ext, *args, **kwargs)

            flow.originate = caller_gives_up_first
        await _to_agent(s, first)
        if hang_up == "while_ringing":
            await s.until(lambda: s.call(first).legs, what="agent alerted")
            s.sim.hangup(first)
        call = await s.call_state(first, "abandoned")
        if hang_up == "as_the_agent_is_chosen":
            assert not call.legs  # the agent's record never saw a ring
        second = s.sim.place_call(caller="2")
        await _to_agent(s, second)
        call = await s.call_state(second, "connected", timeout=20)
        assert call.agent_id == agent_id_for("1001")
        s.sim.hangup(second)
        await s.call_state(second, "ended")
