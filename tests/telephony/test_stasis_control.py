"""Agent and supervisor actions over HTTP, acting on live calls in the
simulator: transfer (blind, attended, by the phone's REFER), conference,
listen and barge, hold, force hang-up, and their refusals."""

from __future__ import annotations

import contextlib
from datetime import datetime

import httpx
import pytest

from commands import messages as m
from domain.agent import AgentState, agent_id_for
from lianxin.http import create_app
from telephony_adapter.simulator import AnswerAfter, NeverAnswer
from tests.telephony.conftest import events_since, names, staff
from tests.telephony.stack import stack

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def connected_call(lx, *agents: str, skills=None):
    staff(lx, *agents, skills=skills)
    async with stack(lx) as s:
        for emp in (*agents, "1003", "1004", "9001"):
            s.sim.register_endpoint(f"PJSIP/{emp}", AnswerAfter(delay=1))
        lx.parts["telephony"] = s.app
        transport = httpx.ASGITransport(app=create_app(lx))
        async with httpx.AsyncClient(transport=transport, base_url="http://lianxin") as http:
            ch = s.sim.place_call()
            await s.call_state(ch, "ivr")
            await s.sim.press(ch, "0")
            call = await s.call_state(ch, "connected", timeout=15)
            bridge = f"call-{ch}"
            await s.until(lambda: _in_bridge(s, bridge, call.leg_id), what="agent bridged")
            await s.until(lambda: s.call(ch).recordings, what="recording started")
            try:
                yield s, http, ch, call
            finally:
                lx.parts.pop("telephony", None)


def kinds(lx, start):
    return names(events_since(lx, start), "Call.")


async def test_blind_transfer_to_a_queue_reaches_a_skilled_agent(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        staff(lx, "1003", skills={"repair": 3})  # the only one who can take repair calls
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "queue", "target": "repair"},
                            headers={"Idempotency-Key": "t-1"})
        assert r.status_code == 200, r.text
        again = await http.post(f"/telephony/calls/{call.id}/transfer",
                                json={"target_type": "queue", "target": "repair"},
                                headers={"Idempotency-Key": "t-1"})
        assert again.status_code == 200  # a retry is not a second transfer
        after = await s.until(lambda: s.call(ch).agent_id == agent_id_for("1003")
                              and s.call(ch).state.value == "connected" and s.call(ch),
                              timeout=15, what="answered by 1003")
        assert [k for k in kinds(lx, start) if "Recording" not in k][:3] == [
            "Call.Transferred", "Call.AgentAlerted", "Call.Answered"]
        assert after.transfers == 1 and after.queue == "repair"
        await s.until(lambda: _in_bridge(s, f"call-{ch}", after.leg_id)
                      and _in_bridge(s, f"call-{ch}", ch), what="caller and 1003 bridged")
        assert lx.app.repository.get(agent_id_for("1001")).state == AgentState.WRAP_UP
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_blind_transfer_by_the_agent_phone_refer(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        staff(lx, "1003", skills={"repair": 3})
        leg = call.leg_id
        s.sim.refer(leg, "2001")  # 2001 is the repair queue in queues.toml
        after = await s.until(lambda: s.call(ch).agent_id == agent_id_for("1003")
                              and s.call(ch).state.value == "connected" and s.call(ch),
                              timeout=15, what="answered by 1003")
        assert after.transfers == 1
        await s.until(lambda: _in_bridge(s, f"call-{ch}", after.leg_id)
                      and _in_bridge(s, f"call-{ch}", ch), what="caller and 1003 bridged")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


def _sim_event(s, kind, channel):
    return next(e for e in s.sim.events
                if e["type"] == kind and (e.get("channel") or {}).get("id") == channel)


def _agent_state(lx, employee_no):
    return lx.app.repository.get(agent_id_for(employee_no)).state


async def test_attended_transfer_consults_then_hands_over(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        first = call.agent_id
        other = "1002" if first == agent_id_for("1001") else "1001"
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        assert r.status_code == 200, r.text
        consult = r.json()["channel"]
        # the colleague's phone rings: their record says so, during the consultation
        await s.until(lambda: _agent_state(lx, other) == AgentState.RINGING,
                      what="colleague ringing")
        assert s.call(ch).consult_leg_id == consult
        early = await http.post(f"/telephony/calls/{call.id}/consult/complete")
        assert early.status_code == 409  # the colleague has not answered yet
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consult up")
        await s.until(lambda: _agent_state(lx, other) == AgentState.ON_CALL,
                      what="colleague on the call")
        held = s.call(ch)
        assert held.state.value == "held" and held.agent_id == first  # still the first agent's
        r = await http.post(f"/telephony/calls/{call.id}/consult/complete")
        assert r.status_code == 200, r.text
        after = await s.call_state(ch, "connected")
        assert after.agent_id == agent_id_for(other) and after.leg_id == consult
        evs = [e for e in events_since(lx, start) if type(e).__qualname__.startswith("Call.")
               and "Recording" not in type(e).__qualname__]
        assert names(evs) == ["Call.Held", "Call.ConsultAlerted", "Call.ConsultAnswered",
                              "Call.Transferred"]
        alerted, answered, xfer = evs[1:]
        # stamped when Asterisk reported the colleague's phone ringing and answering
        assert alerted.occurred_at == datetime.fromisoformat(
            _sim_event(s, "ChannelCreated", consult)["timestamp"])
        assert answered.occurred_at == datetime.fromisoformat(
            _sim_event(s, "StasisStart", consult)["timestamp"])
        assert alerted.occurred_at < answered.occurred_at < xfer.occurred_at
        assert (alerted.agent_id, alerted.leg_id) == (agent_id_for(other), consult)
        assert (xfer.kind, xfer.target_type, xfer.target, xfer.to_leg_id) == (
            "attended", "agent", other, consult)
        assert after.legs[consult]["answered_at"] == answered.occurred_at
        assert _agent_state(lx, other) == AgentState.ON_CALL
        assert lx.app.repository.get(first).state == AgentState.WRAP_UP
        await s.until(lambda: _in_bridge(s, f"call-{ch}", consult)
                      and _in_bridge(s, f"call-{ch}", ch), what="caller and colleague bridged")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")
        await s.until(lambda: _agent_state(lx, other) == AgentState.WRAP_UP,
                      what="colleague released")


async def test_three_way_conference_and_supervisor_listen_and_barge(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/conference",
                            json={"endpoint": "PJSIP/1004", "party": "billing-expert"})
        assert r.status_code == 200, r.text
        await s.until(lambda: s.call(ch).conference == ["billing-expert"], what="party joined")
        r = await http.post(f"/telephony/calls/{call.id}/monitor",
                            json={"supervisor_id": "sup-7", "mode": "listen"})
        assert r.status_code == 200, r.text
        await s.until(lambda: s.call(ch).monitors == {"sup-7": "listen"}, what="listening")
        r = await http.delete(f"/telephony/calls/{call.id}/monitor/sup-7")
        assert r.status_code == 200
        await s.until(lambda: s.call(ch).monitors == {}, what="stopped listening")
        r = await http.post(f"/telephony/calls/{call.id}/barge",
                            json={"supervisor_id": "sup-7", "endpoint": "PJSIP/9001"})
        assert r.status_code == 200, r.text
        barge = r.json()["channel"]
        await s.until(lambda: s.call(ch).monitors == {"sup-7": "barge"}, what="barged in")
        bridge = s.app.flow.plans[ch].bridge
        await s.until(lambda: _in_bridge(s, bridge, barge), what="supervisor in the bridge")
        r = await http.delete(f"/telephony/calls/{call.id}/conference/billing-expert")
        assert r.status_code == 200
        await s.until(lambda: s.call(ch).conference == [], what="party left")
        s.sim.hangup(barge)
        await s.until(lambda: s.call(ch).monitors == {}, what="barge over")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")
        assert kinds(lx, start)[:7] == [
            "Call.ConferencePartyJoined", "Call.MonitorStarted", "Call.MonitorStopped",
            "Call.MonitorStarted", "Call.ConferencePartyLeft", "Call.MonitorStopped",
            "Call.Ended"][:7]


def _in_bridge(s, bridge, channel) -> bool:
    br = s.sim.core.bridges.get(bridge)
    return br is not None and channel in [getattr(c, "id", c) for c in br.channels]


async def test_hold_resume_and_force_hangup(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        r = await http.post(f"/telephony/calls/{call.id}/hold", headers={"Idempotency-Key": "h1"})
        assert r.status_code == 200, r.text
        assert (await http.post(f"/telephony/calls/{call.id}/hold",
                                headers={"Idempotency-Key": "h1"})).status_code == 200
        twice = await http.post(f"/telephony/calls/{call.id}/hold")
        assert twice.status_code == 409
        assert twice.headers["content-type"].startswith("application/problem+json")
        await s.sim.sleep(3)
        assert (await http.post(f"/telephony/calls/{call.id}/unhold")).status_code == 200
        held = s.call(ch)
        assert held.state.value == "connected" and 3 <= held.hold_s < 6  # simulated seconds
        r = await http.post(f"/telephony/calls/{call.id}/hangup", json={"supervisor_id": "sup-1"})
        assert r.status_code == 200, r.text
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "supervisor"
        await s.until(lambda: ch not in s.sim.channel_ids(), what="caller channel gone")
        assert lx.app.repository.get(agent_id_for("1001")).state == AgentState.WRAP_UP
        gone = await http.post(f"/telephony/calls/{call.id}/hold")
        assert gone.status_code == 409


async def test_bad_requests_are_problems_and_change_nothing(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        # The bridge recording starts just after the answer; let it land so
        # that "nothing changed" below compares quiet positions.
        await s.until(lambda: lx.app.repository.get(call.id).recordings, what="recording")
        before = lx.app.max_position()
        r = await http.post("/telephony/calls/00000000-0000-0000-0000-000000000000/hold")
        assert r.status_code == 404 and r.json()["status"] == 404
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "moon", "target": "x"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "queue", "target": "no-such-queue"})
        assert r.status_code == 422 and "no-such-queue" in r.json()["detail"]
        r = await http.post(f"/telephony/calls/{call.id}/conference",
                            json={"endpoint": "nonsense", "party": "x"})
        assert r.status_code == 422
        r = await http.post(f"/telephony/calls/{call.id}/consult/complete")
        assert r.status_code == 409
        assert lx.app.max_position() == before
        assert s.call(ch).state.value == "connected"
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_without_an_adapter_the_routes_answer_503(sqlite_lianxin):
    transport = httpx.ASGITransport(app=create_app(sqlite_lianxin))
    async with httpx.AsyncClient(transport=transport, base_url="http://lianxin") as http:
        r = await http.post("/telephony/calls/x/hold")
        assert r.status_code == 503 and r.json()["code"] == "telephony-unavailable"
        assert (await http.get("/telephony/status")).status_code == 503


async def test_a_cancelled_consultation_returns_the_caller_and_the_colleague(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = "1002" if call.agent_id == agent_id_for("1001") else "1001"
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        consult = r.json()["channel"]
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consult up")
        # The adapter sees the answer before its AnswerConsult is committed.
        await s.until(lambda: _agent_state(lx, other) == AgentState.ON_CALL,
                      what="colleague on call with the agent")
        assert s.call(ch).state.value == "held"
        r = await http.post(f"/telephony/calls/{call.id}/consult/cancel")
        assert r.status_code == 200, r.text
        back = await s.call_state(ch, "connected")
        assert back.agent_id == call.agent_id
        ended = await s.until(lambda: s.call(ch).consult_leg_id is None and s.call(ch),
                              what="consult leg ended")
        assert ended.legs[consult]["ended_at"] == datetime.fromisoformat(
            _sim_event(s, "ChannelDestroyed", consult)["timestamp"])
        await s.until(lambda: _agent_state(lx, other) == AgentState.READY,
                      what="colleague ready again")
        # the colleague is routable again: they take the next caller
        nxt = s.sim.place_call(caller="2")
        await s.call_state(nxt, "ivr")
        await s.sim.press(nxt, "0")
        taken = await s.call_state(nxt, "connected", timeout=15)
        assert taken.agent_id == agent_id_for(other)
        for c in (ch, nxt):
            s.sim.hangup(c)
            await s.call_state(c, "ended")


async def test_an_unanswered_consultation_puts_the_colleague_not_ready(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = "1002" if call.agent_id == agent_id_for("1001") else "1001"
        s.sim.register_endpoint(f"PJSIP/{other}", NeverAnswer())
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        assert r.status_code == 200, r.text
        consult = r.json()["channel"]
        await s.until(lambda: _agent_state(lx, other) == AgentState.RINGING,
                      what="colleague ringing")
        start = lx.app.max_position()
        # the general queue's ring timeout (15 simulated s) ends the consult leg
        await s.until(lambda: consult not in s.sim.channel_ids(), what="consult leg gone")
        colleague = await s.until(
            lambda: (a := lx.app.repository.get(agent_id_for(other))).state
            == AgentState.NOT_READY and a, what="colleague not ready")
        assert colleague.reason == "ring_no_answer"
        (missed,) = [e for e in events_since(lx, start)
                     if type(e).__qualname__ == "Call.ConsultMissed"]
        gone = _sim_event(s, "ChannelDestroyed", consult)
        assert (missed.leg_id, missed.outcome) == (consult, "no_answer")
        assert missed.occurred_at == datetime.fromisoformat(gone["timestamp"])
        assert s.call(ch).consult_leg_id is None
        assert s.call(ch).state.value == "held"  # still with the first agent
        # the agent takes the caller back although there is no leg left to cancel
        r = await http.post(f"/telephony/calls/{call.id}/consult/cancel")
        assert r.status_code == 200, r.text
        back = await s.call_state(ch, "connected")
        assert back.agent_id == call.agent_id
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_a_consulted_colleague_is_not_offered_another_caller(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = "1002" if call.agent_id == agent_id_for("1001") else "1001"
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        consult = r.json()["channel"]
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consult up")
        # the colleague's record changes while they talk with the agent: the
        # ACD reloads it, and must still leave them out
        lx.commands.handle(m.ChangeSkills(employee_no=other, skills={"billing": 2}))
        nxt = s.sim.place_call(caller="2")
        await s.call_state(nxt, "ivr")
        await s.sim.press(nxt, "0")
        await s.call_state(nxt, "queued")
        await s.sim.sleep(5)
        assert s.call(nxt).state.value == "queued" and s.call(nxt).agent_id is None
        r = await http.post(f"/telephony/calls/{call.id}/consult/cancel")
        assert r.status_code == 200, r.text
        # free again: the waiting caller is theirs
        taken = await s.call_state(nxt, "connected", timeout=15)
        assert taken.agent_id == agent_id_for(other)
        for c in (ch, nxt):
            s.sim.hangup(c)
            await s.call_state(c, "ended")


async def test_a_colleague_is_out_of_routing_while_the_consultation_reads_their_record(
        sqlite_lianxin):
    # The ACD must not pick the colleague for a waiting caller between the
    # moment the consultation reads their record (ready) and the moment it
    # calls them.
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = "1002" if call.agent_id == agent_id_for("1001") else "1001"
        flow = s.app.flow
        read_record, waiting = flow.agent, []

        async def slow_read(employee_no):
            agent = await read_record(employee_no)
            if employee_no == other and not waiting:
                # meanwhile a caller asks for an agent and the ACD looks
                nxt = s.sim.place_call(caller="2")
                waiting.append(nxt)
                await s.call_state(nxt, "ivr")
                await s.sim.press(nxt, "0")
                await s.call_state(nxt, "queued", "ringing")
                await flow.dispatch()
            return agent

        flow.agent = slow_read
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        assert r.status_code == 200, r.text
        consult = r.json()["channel"]
        (nxt,) = waiting
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consult up")
        assert s.call(nxt).state.value == "queued" and s.call(nxt).agent_id is None
        assert flow.acd.ringing_for(other) is None
        assert not [c for c, _ in s.app.rejected if isinstance(c, m.AlertConsult)]
        # The tracker sees the answer before the adapter's command commits it.
        await s.until(lambda: _agent_state(lx, other) == AgentState.ON_CALL,
                      what="colleague on the consultation")
        r = await http.post(f"/telephony/calls/{call.id}/consult/cancel")
        assert r.status_code == 200, r.text
        taken = await s.call_state(nxt, "connected", timeout=15)
        assert taken.agent_id == agent_id_for(other)
        for c in (ch, nxt):
            s.sim.hangup(c)
            await s.call_state(c, "ended")


async def _returns(value):
    return value


async def test_consulting_a_colleague_the_acd_is_ringing_is_refused(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = "1002" if call.agent_id == agent_id_for("1001") else "1001"
        s.sim.register_endpoint(f"PJSIP/{other}", NeverAnswer())
        flow = s.app.flow
        # the ACD has picked them but their record does not say so yet (its
        # AlertAgent is still on the way to the store): what a read returns then
        before = await flow.agent(other)
        assert before.state == AgentState.READY
        read_record = flow.agent
        flow.agent = lambda emp: _returns(before) if emp == other else read_record(emp)
        nxt = s.sim.place_call(caller="2")
        await s.call_state(nxt, "ivr")
        await s.sim.press(nxt, "0")
        await s.until(lambda: flow.acd.ringing_for(other) == nxt, what="ACD rings them")
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        assert r.status_code == 409
        assert other not in s.app.flow.consulting
        assert s.app.flow.acd.ringing_for(other) == nxt  # their ring for the caller goes on
        assert s.call(ch).state.value == "connected"  # the caller was not put on hold
        for c in (ch, nxt):
            s.sim.hangup(c)
            await s.call_state(c, "ended", "abandoned")


async def test_consulting_a_colleague_who_is_not_ready_is_refused(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        staff(lx, "1005")
        lx.commands.handle(m.MakeNotReady(employee_no="1005", reason="meal"))
        before = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": "1005"})
        assert r.status_code == 409 and "not_ready" in r.json()["detail"]
        assert lx.app.max_position() == before  # the caller was not even put on hold
        assert not [c for c in s.sim.channel_ids() if c.startswith("agent-1005-")]
        assert "1005" not in s.app.flow.consulting  # routing follows their record again
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


def _snoop_of(s, snoop_id):
    return s.sim.core.channels[snoop_id]


async def test_supervisor_whisper_reaches_the_agent_only_and_ends_with_the_phone(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/monitor",
                            json={"supervisor_id": "sup-3", "mode": "whisper",
                                  "endpoint": "PJSIP/9001"})
        assert r.status_code == 200, r.text
        snoop = r.json()["channel"]
        await s.until(lambda: s.call(ch).monitors == {"sup-3": "whisper"}, what="whispering")
        spied = _snoop_of(s, snoop)
        # on the agent's leg: the supervisor hears both sides, and speaks into
        # what the agent hears (out), never into what the caller hears
        assert spied.snoop_target == call.leg_id
        assert (spied.vars["SNOOP_SPY"], spied.vars["SNOOP_WHISPER"]) == ("both", "out")
        phone = f"listen-{snoop}"
        await s.until(lambda: _in_bridge(s, f"monitor-{snoop}", phone)
                      and _in_bridge(s, f"monitor-{snoop}", snoop), what="supervisor phone bridged")
        assert not _in_bridge(s, f"call-{ch}", phone)  # not in the conversation itself
        # the supervisor puts the phone down: the whisper stops with it
        s.sim.hangup(phone)
        await s.until(lambda: s.call(ch).monitors == {}, what="whisper over")
        await s.until(lambda: snoop not in s.sim.channel_ids()
                      or not s.sim.core.channels[snoop].alive, what="snoop hung up")
        await s.until(lambda: f"monitor-{snoop}" not in s.sim.core.bridges, what="bridge gone")
        assert kinds(lx, start)[:2] == ["Call.MonitorStarted", "Call.MonitorStopped"]
        assert s.call(ch).state.value == "connected"
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_supervisor_listens_from_a_phone_until_monitoring_stops(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        r = await http.post(f"/telephony/calls/{call.id}/monitor",
                            json={"supervisor_id": "sup-4", "mode": "listen",
                                  "endpoint": "PJSIP/9001"})
        assert r.status_code == 200, r.text
        snoop = r.json()["channel"]
        phone, bridge = f"listen-{snoop}", f"monitor-{snoop}"
        await s.until(lambda: _in_bridge(s, bridge, phone), what="supervisor phone bridged")
        assert (_snoop_of(s, snoop).vars["SNOOP_SPY"],
                _snoop_of(s, snoop).vars["SNOOP_WHISPER"]) == ("both", "none")
        assert s.call(ch).monitors == {"sup-4": "listen"}
        r = await http.delete(f"/telephony/calls/{call.id}/monitor/sup-4")
        assert r.status_code == 200
        await s.until(lambda: s.call(ch).monitors == {}, what="stopped listening")
        # nothing left open: the supervisor's phone is hung up, its bridge gone
        await s.until(lambda: phone not in s.sim.channel_ids(), what="supervisor phone hung up")
        await s.until(lambda: bridge not in s.sim.core.bridges, what="monitor bridge gone")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_attended_transfer_by_the_agent_phone(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        first = call.agent_id
        other = "1002" if first == agent_id_for("1001") else "1001"
        start = lx.app.max_position()
        leg = call.leg_id
        s.sim.endpoint_hold(leg)  # the phone holds the caller (re-INVITE)
        await s.call_state(ch, "held")
        second, colleague = s.sim.phone_dial(leg, other)  # and calls the colleague itself
        await s.until(lambda: colleague in s.sim.core.channels
                      and s.sim.core.channels[colleague].bridge, what="colleague answered")
        seat = s.sim.refer_attended(leg, second)  # REFER with Replaces
        after = await s.until(lambda: s.call(ch).agent_id == agent_id_for(other)
                              and s.call(ch).state.value == "connected" and s.call(ch),
                              what="colleague took the call")
        # the caller reaches the colleague through the Local channel Asterisk
        # put in the agent's seat: that is the colleague's leg of the call
        assert after.leg_id == seat
        assert _in_bridge(s, f"call-{ch}", seat) and _in_bridge(s, f"call-{ch}", ch)
        evs = [e for e in events_since(lx, start) if type(e).__qualname__.startswith("Call.")]
        # recorded as the consultation the API makes: the colleague's leg is
        # the seat, and the transfer hands the call to it
        assert names(evs) == ["Call.Held", "Call.ConsultAlerted", "Call.ConsultAnswered",
                              "Call.Transferred"]
        xfer = evs[3]
        assert (xfer.kind, xfer.target_type, xfer.target) == ("attended", "agent", other)
        assert (xfer.to_leg_id, xfer.to_agent_id) == (seat, agent_id_for(other))
        # stamped when Asterisk reported the transfer
        bat = next(e for e in s.sim.events if e["type"] == "BridgeAttendedTransfer")
        assert evs[1].occurred_at == xfer.occurred_at == datetime.fromisoformat(bat["timestamp"])
        assert lx.app.repository.get(first).state == AgentState.WRAP_UP
        assert lx.app.repository.get(agent_id_for(other)).state == AgentState.ON_CALL
        # one recording throughout, still running in the same bridge
        assert [r["stopped_at"] for r in after.recordings.values()] == [None]
        # the colleague hangs up first: the caller is asked for the survey
        s.sim.hangup(colleague)
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "agent"
        await s.until(lambda: any("survey" in str(r) for r in s.sim.requests), what="survey")
        assert lx.app.repository.get(agent_id_for(other)).state == AgentState.WRAP_UP
        s.sim.hangup(ch)


def _put_in_wrap_up(lx, employee_no):
    """The agent finished another call (not one the simulator carries) and
    is doing its after-call work."""
    ext = f"earlier-{employee_no}"
    call_id = lx.commands.handle(m.OfferCall(external_id=ext, dialed_number="95588")).aggregate_id
    lx.commands.handle(m.QueueCall(call_id=call_id, queue="general"))
    lx.commands.handle(m.AlertAgent(call_id=call_id, employee_no=employee_no, leg_id=f"{ext}-leg"))
    lx.commands.handle(m.AnswerCall(call_id=call_id))
    lx.commands.handle(m.EndCall(call_id=call_id, hung_up_by="agent"))
    assert _agent_state(lx, employee_no) == AgentState.WRAP_UP


@pytest.mark.parametrize("colleague_state", ["not_ready", "wrap_up"])
async def test_attended_transfer_by_the_phone_to_a_colleague_who_is_not_ready(
        sqlite_lianxin, colleague_state):
    # The agent's phone calls a colleague who is on a break (or finishing
    # another call) and hands the caller over: nobody routed the call to
    # them, so "ready only" does not apply. The colleague takes the call;
    # it ends as answered, not abandoned in a queue.
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        first = call.agent_id
        other = "1002" if first == agent_id_for("1001") else "1001"
        if colleague_state == "not_ready":
            lx.commands.handle(m.MakeNotReady(employee_no=other, reason="meal"))
        else:
            _put_in_wrap_up(lx, other)
        assert _agent_state(lx, other).value == colleague_state
        start = lx.app.max_position()
        leg = call.leg_id
        s.sim.endpoint_hold(leg)
        await s.call_state(ch, "held")
        second, colleague = s.sim.phone_dial(leg, other)
        await s.until(lambda: colleague in s.sim.core.channels
                      and s.sim.core.channels[colleague].bridge, what="colleague answered")
        seat = s.sim.refer_attended(leg, second)
        after = await s.until(lambda: s.call(ch).agent_id == agent_id_for(other)
                              and s.call(ch).state.value == "connected" and s.call(ch),
                              what="colleague took the call")
        assert after.leg_id == seat
        assert _agent_state(lx, other) == AgentState.ON_CALL
        assert lx.app.repository.get(first).state == AgentState.WRAP_UP
        assert not [cmd for cmd, _ in s.app.rejected
                    if getattr(cmd, "call_id", None) == call.id]
        s.sim.hangup(ch)  # the caller hangs up while talking with the colleague
        ended = await s.call_state(ch, "ended", "abandoned")
        assert ended.state.value == "ended" and ended.abandon_stage is None
        assert ended.hung_up_by == "caller"
        assert ended.legs[seat]["answered_at"] is not None
        assert "Call.Abandoned" not in kinds(lx, start)
        assert _agent_state(lx, other) == AgentState.WRAP_UP


async def test_blind_transfer_to_an_agent_over_http(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        first = call.agent_id
        other = "1002" if first == agent_id_for("1001") else "1001"
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "agent", "target": other},
                            headers={"Idempotency-Key": "ta-1"})
        assert r.status_code == 200, r.text
        assert (await http.post(f"/telephony/calls/{call.id}/transfer",
                                json={"target_type": "agent", "target": other},
                                headers={"Idempotency-Key": "ta-1"})).status_code == 200
        after = await s.until(lambda: s.call(ch).agent_id == agent_id_for(other)
                              and s.call(ch).state.value == "connected" and s.call(ch),
                              timeout=15, what="answered by the colleague")
        # the caller talks with the colleague, in the call's bridge
        await s.until(lambda: _in_bridge(s, f"call-{ch}", after.leg_id)
                      and _in_bridge(s, f"call-{ch}", ch), what="caller and colleague bridged")
        assert call.leg_id not in s.sim.channel_ids()  # the first agent's leg is released
        evs = [e for e in events_since(lx, start) if type(e).__qualname__.startswith("Call.")]
        assert names(evs)[:3] == ["Call.Transferred", "Call.AgentAlerted", "Call.Answered"]
        assert (evs[0].kind, evs[0].target_type, evs[0].target) == ("blind", "agent", other)
        assert after.transfers == 1
        assert lx.app.repository.get(first).state == AgentState.WRAP_UP
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_blind_transfer_to_an_outside_number_over_http(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "external", "target": "057188886666"})
        assert r.status_code == 200, r.text
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "transfer"
        evs = [e for e in events_since(lx, start) if type(e).__qualname__.startswith("Call.")]
        kinds_ = names(evs)
        assert kinds_[:2] == ["Call.Transferred", "Call.Ended"]
        assert (evs[0].kind, evs[0].target_type, evs[0].target) == ("blind", "external", "")
        assert evs[0].pii == {"target": "057188886666"}  # a number: personal data
        assert evs[1].cause == "transferred out"
        # Asterisk's dialplan takes the caller on to the number; the agent is free
        cont = _continued(s, ch)
        assert cont == {"context": "transfer-target", "extension": "057188886666",
                        "priority": "1"}
        await s.until(lambda: ch in s.sim.core.channels and s.sim.core.channels[ch].app is None,
                      what="caller left Stasis for the dialplan")
        assert call.leg_id not in s.sim.channel_ids()
        await s.until(lambda: f"call-{ch}" not in s.sim.core.bridges, what="bridge gone")
        assert lx.app.repository.get(call.agent_id).state == AgentState.WRAP_UP
        assert s.call(ch).state.value == "ended"  # nothing more recorded after it left
        s.sim.hangup(ch)


def _continued(s, ch):
    found = [r[2] for r in s.sim.requests
             if r[0] == "POST" and r[1].endswith(f"/channels/{ch}/continue")]
    return found[0] if len(found) == 1 else found
