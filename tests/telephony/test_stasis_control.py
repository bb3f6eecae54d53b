"""Agent and supervisor actions over HTTP, acting on live calls in the
simulator: transfer (blind, attended, by the phone's REFER), conference,
listen and barge, hold, force hang-up, and their refusals."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from domain.agent import AgentState, agent_id_for
from lianxin.http import create_app
from telephony_adapter.simulator import AnswerAfter
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
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_attended_transfer_consults_then_hands_over(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        first = call.agent_id
        other = "1002" if first == agent_id_for("1001") else "1001"
        start = lx.app.max_position()
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        assert r.status_code == 200, r.text
        early = await http.post(f"/telephony/calls/{call.id}/consult/complete")
        assert early.status_code == 409  # the colleague has not answered yet
        consult = r.json()["channel"]
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consult up")
        r = await http.post(f"/telephony/calls/{call.id}/consult/complete")
        assert r.status_code == 200, r.text
        after = await s.call_state(ch, "connected")
        assert after.agent_id == agent_id_for(other)
        assert [k for k in kinds(lx, start) if "Recording" not in k] == [
            "Call.Held", "Call.Transferred", "Call.AgentAlerted", "Call.Answered"]
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


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
        assert s.call(ch).state.value == "held"
        r = await http.post(f"/telephony/calls/{call.id}/consult/cancel")
        assert r.status_code == 200, r.text
        back = await s.call_state(ch, "connected")
        assert back.agent_id == call.agent_id
        # the colleague is routable again: they take the next caller
        nxt = s.sim.place_call(caller="2")
        await s.call_state(nxt, "ivr")
        await s.sim.press(nxt, "0")
        taken = await s.call_state(nxt, "connected", timeout=15)
        assert taken.agent_id == agent_id_for(other)
        for c in (ch, nxt):
            s.sim.hangup(c)
            await s.call_state(c, "ended")
