"""Every captured Asterisk 22 trace replayed through the Stasis app's
translator (observe mode, fake REST port): the domain events must say what
Asterisk did, in its order and with its timestamps."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

import pytest

from domain.agent import AgentState, agent_id_for
from domain.call import CallState, call_id_for
from telephony_adapter.stasis.app import StasisApp
from telephony_adapter.stasis.config import load
from telephony_adapter.stasis.fake_rest import RecordingRest
from tests.telephony.conftest import TRACE_NAMES, events_since, names, staff, trace

EXPECTED = {
    "local_inbound_answered_recorded": (
        ["Offered", "Queued", "AgentAlerted", "Answered", "RecordingStarted", "Ended",
         "RecordingStopped"], "caller"),
    "local_abandon_holding_moh": (["Offered", "Queued", "Abandoned"], "caller"),
    "local_dtmf": (["Offered", "Ended"], "system"),
    "local_hold_moh_redirect_continue": (
        ["Offered", "Queued", "AgentAlerted", "Answered", "Ended"], "transfer"),
    "local_snoop": (["Offered", "Queued", "AgentAlerted", "Answered", "MonitorStarted",
                     "RecordingStarted", "RecordingStopped", "MonitorStopped", "Ended"], "agent"),
    "sip_abandon_holding_moh": (["Offered", "Queued", "Abandoned"], "caller"),
    "sip_agent_blind_transfer_refer": (
        ["Offered", "Queued", "AgentAlerted", "Answered", "Transferred", "Ended"], "transfer"),
    "sip_agent_noanswer_busy": (
        ["Offered", "Queued", "AgentAlerted", "RingNoAnswer", "AgentAlerted", "RingNoAnswer",
         "Ended"], "system"),
    "sip_agent_transfer_ari_only": (
        ["Offered", "Queued", "AgentAlerted", "Answered", "Transferred", "AgentAlerted",
         "Answered", "Ended"], "system"),
    "sip_dtmf_rfc4733": (["Offered", "Abandoned"], "caller"),
    "sip_inbound_answered_hold_recorded": (
        ["Offered", "Queued", "AgentAlerted", "Answered", "RecordingStarted", "Held", "Resumed",
         "Ended", "RecordingStopped"], "caller"),
    "sip_redirect_302": (["Offered", "Ended"], "transfer"),
}


def config_for(name: str):
    cfg = load()
    if name == "sip_agent_transfer_ari_only":
        # in that capture the app answered the REFER to 2000 by calling agent 1002
        cfg = dataclasses.replace(cfg, transfer_targets={"2000": "agent:1002"})
    return cfg


def replay(lianxin, name: str, events=None, rest=None, app=None) -> StasisApp:
    app = app or StasisApp(lianxin.commands, rest or RecordingRest(), config_for(name),
                           control=False)

    async def run():
        for ev in events if events is not None else trace(name):
            await app.handle(ev)

    asyncio.run(run())
    return app


def the_call(lianxin, name: str):
    start = next(ev for ev in trace(name) if ev["type"] == "StasisStart" and not ev.get("args"))
    return lianxin.app.repository.get(call_id_for(start["channel"]["id"]))


def test_every_captured_trace_is_covered():
    assert set(TRACE_NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_trace_becomes_the_call_asterisk_reported(sqlite_lianxin, name):
    lx = sqlite_lianxin
    staff(lx, "1001", "1002")
    start = lx.app.max_position()
    app = replay(lx, name)
    evs = events_since(lx, start)
    expected, hung_up_by = EXPECTED[name]
    assert names(evs, "Call.") == [f"Call.{n}" for n in expected]
    assert app.rejected == []
    call = the_call(lx, name)
    assert call.state in (CallState.ENDED, CallState.ABANDONED)
    assert call.hung_up_by == hung_up_by
    # a call's timeline is Asterisk's: each event at the instant Asterisk
    # stamped the ARI event that caused it, in the order it reported them
    stamps = {datetime.fromisoformat(ev["timestamp"]) for ev in trace(name)}
    times = [e.occurred_at for e in evs if type(e).__qualname__.startswith("Call.")]
    assert set(times) <= stamps
    assert times == sorted(times)


def test_answered_and_recorded_call_lines_up_with_asterisk(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    replay(lx, "sip_inbound_answered_hold_recorded")
    call = the_call(lx, "sip_inbound_answered_hold_recorded")
    assert call.answered_at == datetime.fromisoformat("2026-11-22T13:29:16.571+00:00")
    assert call.hold_s == pytest.approx(3.007)
    rec = call.recordings["sip-call-6-rec"]
    assert rec["target"] == "bridge:sip-bridge-6"
    assert rec["started_at"] == datetime.fromisoformat("2026-11-22T13:29:16.575+00:00")
    assert rec["stopped_at"] == datetime.fromisoformat("2026-11-22T13:29:25.859+00:00")
    agent = lx.app.repository.get(agent_id_for("1001"))
    assert agent.state == AgentState.WRAP_UP


def test_unanswered_and_busy_agents_are_put_not_ready(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001", "1002")
    start = lx.app.max_position()
    replay(lx, "sip_agent_noanswer_busy")
    outcomes = [e.outcome for e in events_since(lx, start)
                if type(e).__qualname__ == "Call.RingNoAnswer"]
    assert outcomes == ["no_answer", "busy"]
    for emp in ("1001", "1002"):
        agent = lx.app.repository.get(agent_id_for(emp))
        assert (agent.state, agent.reason) == (AgentState.NOT_READY, "ring_no_answer")
    assert the_call(lx, "sip_agent_noanswer_busy").queue == "general"


def test_caller_number_is_kept_only_as_personal_data(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    start = lx.app.max_position()
    replay(lx, "sip_inbound_answered_hold_recorded")
    evs = events_since(lx, start)
    assert evs[0].pii == {"caller_number": "13900000001"}
    assert evs[0].caller_hash and "13900000001" not in evs[0].caller_hash
    for e in evs:
        public = {k: v for k, v in vars(e).items() if k != "pii"}
        assert "13900000001" not in repr(public)


def test_duplicated_events_never_duplicate_domain_events(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    evs = trace("sip_inbound_answered_hold_recorded")
    doubled = [e for ev in evs for e in (ev, dict(ev))]
    start = lx.app.max_position()
    app = replay(lx, "sip_inbound_answered_hold_recorded", events=doubled)
    assert names(events_since(lx, start), "Call.").count("Call.RecordingStarted") == 1
    assert app.stats["duplicates"] >= len(evs)


def test_a_restarted_adapter_rereading_a_trace_adds_nothing(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001", "1002")
    for name in ("local_snoop", "sip_agent_noanswer_busy", "sip_agent_blind_transfer_refer"):
        replay(lx, name)
    mark = lx.app.max_position()
    for name in ("local_snoop", "sip_agent_noanswer_busy", "sip_agent_blind_transfer_refer"):
        replay(lx, name)  # a fresh app: only the command ids recognise the replay
    assert events_since(lx, mark) == []


def _split(name: str, after_type: str, nth: int = 1):
    evs = trace(name)
    seen = 0
    for i, ev in enumerate(evs):
        if ev["type"] == after_type:
            seen += 1
            if seen == nth:
                return evs[: i + 1], evs[i + 1:]
    raise AssertionError(after_type)


def test_reconnect_with_the_call_still_up_changes_nothing(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    name = "sip_inbound_answered_hold_recorded"
    before, after = _split(name, "StasisStart", 2)  # the agent answered
    rest = RecordingRest({("GET", "/channels"): [{"id": "1795354152.23"},
                                                 {"id": "agent-1001-26c2b289"}],
                          ("GET", "/bridges"): [{"id": "sip-bridge-6"}],
                          ("GET", "/asterisk/info"): {"status": {"startup_time": "t0"}}})
    app = StasisApp(lx.commands, rest, config_for(name), control=False)
    asyncio.run(app.snapshot_asterisk())
    start = lx.app.max_position()
    replay(lx, name, events=before + [{"type": "Reconnected"}] + after, app=app)
    assert ("GET", "/channels") in [(mth, p) for mth, p, _, _ in rest.requests]
    assert names(events_since(lx, start), "Call.") == [
        f"Call.{n}" for n in EXPECTED[name][0]]
    assert app.stats["reconciled"] == 0


def test_calls_that_ended_while_disconnected_are_closed_with_a_cause(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    name = "sip_inbound_answered_hold_recorded"
    before, after = _split(name, "StasisStart", 2)
    rest = RecordingRest({("GET", "/channels"): [], ("GET", "/bridges"): [],
                          ("GET", "/asterisk/info"): {"status": {"startup_time": "t0"}}})
    app = StasisApp(lx.commands, rest, config_for(name), control=False)
    asyncio.run(app.snapshot_asterisk())
    replay(lx, name, events=before + [{"type": "Reconnected"}], app=app)
    call = the_call(lx, name)
    assert call.state == CallState.ENDED and call.hung_up_by == "system"
    ended = [e for e in events_since(lx, 0) if type(e).__qualname__ == "Call.Ended"][-1]
    assert ended.cause == "lost: channel gone while disconnected from Asterisk"
    agent = lx.app.repository.get(agent_id_for("1001"))
    assert agent.state == AgentState.WRAP_UP  # not left on a call that no longer exists
    mark = lx.app.max_position()
    replay(lx, name, events=after, app=app)  # late events for the closed call
    assert names(events_since(lx, mark), "Call.") in ([], ["Call.RecordingStopped"])


def test_asterisk_restart_mid_call_ends_every_call(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    name = "sip_inbound_answered_hold_recorded"
    before, _ = _split(name, "StasisStart", 2)
    started = iter(["2026-11-22T13:00:00.000+0000", "2026-11-22T13:29:30.000+0000"])
    rest = RecordingRest({
        ("GET", "/asterisk/info"): lambda params: {"status": {"startup_time": next(started)}},
        # a restarted Asterisk may reuse ids: a channel with the same id is not our call
        ("GET", "/channels"): [{"id": "1795354152.23"}],
        ("GET", "/bridges"): []})
    app = StasisApp(lx.commands, rest, config_for(name), control=False)
    asyncio.run(app.snapshot_asterisk())
    replay(lx, name, events=before + [{"type": "Reconnected"}], app=app)
    call = the_call(lx, name)
    assert call.state == CallState.ENDED
    ended = [e for e in events_since(lx, 0) if type(e).__qualname__ == "Call.Ended"][-1]
    assert ended.cause.startswith("lost: Asterisk restarted")
    assert app.tracker.live_calls() == []


def test_the_same_trace_gives_the_same_events_on_every_store(lianxin):
    staff(lianxin, "1001")
    start = lianxin.app.max_position()
    replay(lianxin, "sip_inbound_answered_hold_recorded")
    replay(lianxin, "sip_inbound_answered_hold_recorded")  # and once more: nothing new
    evs = events_since(lianxin, start)
    assert names(evs, "Call.") == [f"Call.{n}" for n in
                                   EXPECTED["sip_inbound_answered_hold_recorded"][0]]
    assert [e.occurred_at for e in evs] == sorted(e.occurred_at for e in evs)
