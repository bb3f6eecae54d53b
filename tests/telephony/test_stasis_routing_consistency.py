"""Routing follows the agents' records: an agent whose record says ready is
offered callers, and one who is not is never rung by the ACD. Each test is a
way the two once drifted apart for good (found in review)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import httpx
import pytest

from commands import messages as m
from domain.agent import AgentState, agent_id_for
from lianxin.http import create_app
from tests.telephony.conftest import staff
from tests.telephony.stack import stack
from tests.telephony.test_stasis_control import connected_call
from tests.telephony.test_stasis_e2e import _to_agent
from telephony_adapter.simulator import AnswerAfter, NeverAnswer
from telephony_adapter.stasis.config import load

pytestmark = pytest.mark.timeout(90)


def _record(lx, emp: str):
    return lx.app.repository.get(agent_id_for(emp))


def _other(call, *agents: str) -> str:
    return next(a for a in agents if agent_id_for(a) != call.agent_id)


def _rung(s, emp: str) -> list:
    return [r for r in s.sim.requests if r[0] == "POST" and r[1].endswith("/channels")
            and str(r[2].get("appArgs", "")).startswith(f"agent,{emp},")]


async def test_a_blind_transfer_to_an_agent_on_a_break_is_refused_and_the_caller_stays(
        sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = _other(call, "1001", "1002")
        lx.commands.handle(m.MakeNotReady(employee_no=other, reason="break"))
        await s.until(lambda: other not in s.app.flow.acd.ready_agents(), what="on a break")
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "agent", "target": other})
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "not ready" in r.json()["detail"]
        await asyncio.sleep(0.3)
        assert s.call(ch).state.value == "connected" and s.call(ch).agent_id == call.agent_id
        assert not _rung(s, other)
        r = await http.post(f"/telephony/calls/{call.id}/transfer",
                            json={"target_type": "agent", "target": "7777"})
        assert r.status_code == 404, r.text


@contextlib.asynccontextmanager
async def _phone_transfer_stack(lx, extension: str, target: str):
    cfg = load()
    cfg = replace(cfg, transfer_targets={**cfg.transfer_targets, extension: f"agent:{target}"})
    async with stack(lx, config=cfg) as s:
        for emp in ("1001", "1002", "1003"):
            s.sim.register_endpoint(f"PJSIP/{emp}", AnswerAfter(delay=1))
        yield s


async def test_a_phone_transfer_to_an_agent_on_a_break_goes_to_a_ready_agent(sqlite_lianxin):
    # Before, the phone on a break was rung anyway, the store refused the
    # ring and the answer, and the colleague ended up talking to a caller the
    # records showed queued, while routing counted them as ready.
    lx = sqlite_lianxin
    staff(lx, "1001")
    staff(lx, "1002")
    lx.commands.handle(m.MakeNotReady(employee_no="1002", reason="break"))
    async with _phone_transfer_stack(lx, "8002", "1002") as s:
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        call = await s.call_state(ch, "connected", timeout=15)
        assert call.agent_id == agent_id_for("1001")
        staff(lx, "1003")
        await s.until(lambda: "1003" in s.app.flow.acd.ready_agents(), what="1003 routed")
        s.sim.refer(call.leg_id, "8002")
        call = await s.until(lambda: s.call(ch).agent_id == agent_id_for("1003")
                             and s.call(ch).state.value == "connected" and s.call(ch),
                             timeout=20, what="answered by the ready agent")
        assert not _rung(s, "1002") and not s.app.rejected
        assert _record(lx, "1002").state == AgentState.NOT_READY
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def _transfer_by_phone_to_1002(lx, s, *, answer_after: float) -> str:
    """1001 answers a caller, 1002 logs in ready, 1001's phone transfers the
    caller to 8002 (agent 1002). Answers the caller's channel."""
    s.sim.register_endpoint("PJSIP/1002", AnswerAfter(delay=answer_after))
    ch = s.sim.place_call()
    await _to_agent(s, ch)
    call = await s.call_state(ch, "connected", timeout=15)
    staff(lx, "1002")
    await s.until(lambda: "1002" in s.app.flow.acd.ready_agents(), what="1002 routed")
    s.sim.refer(call.leg_id, "8002")
    return ch


async def test_a_phone_transfer_to_a_ready_agent_rings_them_and_no_one_else(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with _phone_transfer_stack(lx, "8002", "1002") as s:
        ch = await _transfer_by_phone_to_1002(lx, s, answer_after=1)
        await s.until(lambda: s.call(ch).agent_id == agent_id_for("1002")
                      and s.call(ch).state.value == "connected", timeout=20, what="1002 answered")
        assert len(_rung(s, "1002")) == 1 and not s.app.rejected
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


class _LateOriginate:
    """The agent's POST /channels reaches Asterisk after the caller's release
    (another connection of the HTTP pool carried the DELETE first)."""

    def __init__(self, rest, before_post):
        self.rest, self.before_post = rest, before_post

    def __getattr__(self, name):
        return getattr(self.rest, name)

    async def request(self, method, path, *, params=None, json=None):
        if (method == "POST" and path == "/channels"
                and str((params or {}).get("appArgs", "")).startswith("agent,")):
            await self.before_post(params)
        return await self.rest.request(method, path, params=params, json=json)


async def test_a_phone_dialled_for_a_caller_who_left_meanwhile_is_hung_up(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    lx.commands.handle(m.MakeNotReady(employee_no="1001", reason="break"))
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=100))
        flow = s.app.flow
        first = s.sim.place_call(caller="1")
        held = []

        async def caller_leaves_first(params):
            if not held and params["appArgs"].endswith("," + first):
                held.append(params["channelId"])
                s.sim.hangup(first)
                await s.until(lambda: first not in flow.plans, what="caller released")

        flow.rest = _LateOriginate(flow.rest, caller_leaves_first)
        await _to_agent(s, first)
        await s.call_state(first, "queued")
        lx.commands.handle(m.MakeReady(employee_no="1001"))  # the ticker rings them
        await s.call_state(first, "abandoned")
        await s.until(lambda: held and held[0] not in s.sim.channel_ids(), what="leg hung up")
        await s.until(lambda: "1001" in flow.acd.ready_agents(), what="1001 routed again")
        s.sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=1))
        second = s.sim.place_call(caller="2")
        await _to_agent(s, second)
        call = await s.call_state(second, "connected", timeout=20)
        assert call.agent_id == agent_id_for("1001") and not s.app.rejected
        s.sim.hangup(second)
        await s.call_state(second, "ended")


async def test_a_colleague_consulted_when_the_connection_dropped_is_routed_again(
        sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        other = _other(call, "1001", "1002")
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        assert r.status_code == 200, r.text
        consult = r.json()["channel"]
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consulting")
        await s.sim.drop_websockets()
        s.sim.hangup(ch)  # while nobody listens: no "consult ended" will come
        await s.until(lambda: s.app.stats["reconnects"] >= 1, what="reconnected")
        await s.call_state(ch, "ended")
        await s.until(lambda: _record(lx, other).state == AgentState.READY, what="record ready")
        await s.until(lambda: other in s.app.flow.acd.ready_agents(), what="routed again")
        assert other not in s.app.flow.consulting


async def test_an_agent_rung_for_a_caller_the_records_had_moved_on_is_routed_again(
        sqlite_lianxin):
    # The agent's phone blind-transfers the caller to a queue during an API
    # consultation: the store refuses the transfer (a consult leg is live)
    # and then every ring routing starts for that caller. The ACD dropped
    # each agent so rung, and no record of theirs ever changed.
    lx = sqlite_lianxin
    async with connected_call(lx, "1001", "1002") as (s, http, ch, call):
        staff(lx, "1003", skills={"repair": 3})
        s.sim.register_endpoint("PJSIP/1003", NeverAnswer())
        other = _other(call, "1001", "1002")
        r = await http.post(f"/telephony/calls/{call.id}/consult", json={"employee_no": other})
        consult = r.json()["channel"]
        await s.until(lambda: s.app.tracker.calls[ch].legs[consult].answered, what="consulting")
        await s.until(lambda: "1003" in s.app.flow.acd.ready_agents(), what="1003 routed")
        s.sim.refer(call.leg_id, "2001")  # 2001 is the repair queue
        await s.until(lambda: s.app.flow.acd.ringing_for("1003"), what="1003 rung")
        # the ring runs out (15 s); routing may ring 1003 again for this
        # caller at once, so wait for the store's refusal of the miss
        await s.until(lambda: any(type(c).__name__ == "ReportRingNoAnswer"
                                  for c, _ in s.app.rejected), timeout=25,
                      what="1003's ring over")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended", "abandoned")
        # the store refused that ring (the call was not queued in its eyes):
        # 1003's record never left ready, and routing offers them again
        assert _record(lx, "1003").state == AgentState.READY
        await s.until(lambda: "1003" in s.app.flow.acd.ready_agents(), what="1003 routed again")


class _SilentOriginate(_LateOriginate):
    """Asterisk takes the agent's POST /channels and never reports that
    channel (events lost; or the reply lost after Asterisk acted)."""

    async def request(self, method, path, *, params=None, json=None):
        if (method == "POST" and path == "/channels"
                and str((params or {}).get("appArgs", "")).startswith("agent,1001,")):
            return {"id": params["channelId"], "state": "Down"}
        return await self.rest.request(method, path, params=params, json=json)


async def test_a_ring_asterisk_never_reports_goes_to_the_next_agent(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")  # ready first: rung first
    staff(lx, "1002")
    async with stack(lx) as s:
        s.sim.register_endpoint("PJSIP/1002", AnswerAfter(delay=1))
        s.app.flow.rest = _SilentOriginate(s.app.flow.rest, None)
        ch = s.sim.place_call()
        await _to_agent(s, ch)
        # the ring times out (15 s) plus the grace Asterisk gets to report (30 s)
        call = await s.call_state(ch, "connected", timeout=30)
        assert call.agent_id == agent_id_for("1002")
        rec = _record(lx, "1001")
        assert (rec.state, rec.reason) == (AgentState.NOT_READY, "unreachable")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


async def test_an_agent_rung_by_a_transfer_is_routed_again_when_the_caller_leaves(
        sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx, "1001")
    async with _phone_transfer_stack(lx, "8002", "1002") as s:
        ch = await _transfer_by_phone_to_1002(lx, s, answer_after=60)
        await s.until(lambda: s.app.flow.acd.ringing_for("1002") == ch, what="1002 rung directly")
        assert "1002" not in s.app.flow.acd.ready_agents()  # not offered anyone else meanwhile
        s.sim.hangup(ch)
        await s.call_state(ch, "abandoned", "ended")
        await s.until(lambda: _record(lx, "1002").state == AgentState.READY, what="record ready")
        await s.until(lambda: "1002" in s.app.flow.acd.ready_agents(), what="1002 routed again")
