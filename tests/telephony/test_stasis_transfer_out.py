"""Transfers the agent's PHONE makes to a number outside the center, over
the simulator: Asterisk puts the outside party (or the Local channel dialling
it) in our bridge, in the agent's seat (as in the captured trace
sip_agent_blind_transfer_refer). The call, its bridge and its recording go on
until the caller or the outside party hangs up; then the call ends
(``hung_up_by=transfer``, the cause saying who) and nothing is left behind."""

from __future__ import annotations

import pytest

from domain.agent import AgentState, agent_id_for
from domain.call import CallState
from telephony_adapter.simulator import AnswerAfter
from tests.telephony.conftest import events_since, names
from tests.telephony.test_stasis_control import _in_bridge, connected_call

pytestmark = pytest.mark.timeout(60)

OUTSIDE = "057188886666"  # not in [transfer_targets]: out of the center


def _call_events(lx, start):
    return [e for e in events_since(lx, start) if type(e).__qualname__.startswith("Call.")]


async def _transferred_out(s, lx, ch, call, seat, start):
    bridge = f"call-{ch}"
    after = await s.until(lambda: s.call(ch).transfers == 1 and s.call(ch), what="transferred")
    # the call is not over: the caller talks with the outside party in our bridge
    assert after.is_live and after.state == CallState.OUTSIDE  # not waiting in the IVR
    await s.until(lambda: _in_bridge(s, bridge, seat) and _in_bridge(s, bridge, ch),
                  what="caller and outside party bridged")
    assert s.app.tracker.calls[ch].state == "outside"
    evs = _call_events(lx, start)
    xfer = next(e for e in evs if type(e).__qualname__ == "Call.Transferred")
    assert xfer.target_type == "external" and xfer.target == ""
    assert "Call.Ended" not in names(evs)
    # the first agent is free; the bridge recording runs on
    await s.until(lambda: lx.app.repository.get(call.agent_id).state == AgentState.WRAP_UP,
                  what="agent released")
    assert [r["stopped_at"] for r in after.recordings.values()] == [None]
    return after


async def _all_gone(s, ch, *channels):
    await s.until(lambda: all(c not in s.sim.channel_ids() for c in (ch, *channels)),
                  what="every channel hung up")
    await s.until(lambda: f"call-{ch}" not in s.sim.core.bridges, what="bridge destroyed")
    await s.until(lambda: all(r["stopped_at"] is not None
                              for r in s.call(ch).recordings.values()), what="recording stopped")


async def test_blind_refer_out_lasts_until_the_outside_party_hangs_up(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        start = lx.app.max_position()
        seat = s.sim.refer(call.leg_id, OUTSIDE)
        two = s.sim.core.channels[seat].peer_half
        await _transferred_out(s, lx, ch, call, seat, start)
        s.sim.hangup(two)  # the outside party hangs up; the Local pair goes
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "transfer"
        end = _call_events(lx, start)
        end = [e for e in end if type(e).__qualname__ == "Call.Ended"]
        assert len(end) == 1
        assert end[0].cause == "transferred out; the outside party hung up"
        assert end[0].cause_code == 16
        # the caller is not left alone in silence: hung up, bridge gone
        await _all_gone(s, ch, seat, two)
        assert [k for k in names(_call_events(lx, start)) if "Recording" not in k] == [
            "Call.Transferred", "Call.Ended"]


async def test_a_call_outside_reads_as_outside_and_a_restarted_adapter_ends_it_as_lost(
        sqlite_lianxin):
    from queries.calls import get_call
    from queries.work_orders import fresh

    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        start = lx.app.max_position()
        seat = s.sim.refer(call.leg_id, OUTSIDE)
        await _transferred_out(s, lx, ch, call, seat, start)
        fresh(lx)
        row = get_call(lx, call.id)
        assert row["state"] == "outside"
        await s.stop_adapter()  # the caller stays in Stasis, with the outside party
        await s.start_adapter()
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "system"
        (end,) = [e for e in _call_events(lx, start) if type(e).__qualname__ == "Call.Ended"]
        assert end.cause == ("lost: the telephony adapter restarted while the call was "
                             "transferred out (the outside conversation was lost)")
        assert "Call.Abandoned" not in names(_call_events(lx, start))


async def test_blind_refer_out_ends_when_the_caller_hangs_up(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        start = lx.app.max_position()
        # put on hold through the API first: the caller waits outside the bridge
        r = await http.post(f"/telephony/calls/{call.id}/hold")
        assert r.status_code == 200, r.text
        seat = s.sim.refer(call.leg_id, OUTSIDE)
        two = s.sim.core.channels[seat].peer_half
        # ...and is put back in it with the outside party, the music stopped
        await _transferred_out(s, lx, ch, call, seat, start)
        await s.until(lambda: s.sim.core.channels[ch].moh_class is None, what="music stopped")
        s.sim.hangup(ch)
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "transfer"
        end = [e for e in _call_events(lx, start) if type(e).__qualname__ == "Call.Ended"]
        assert [e.cause for e in end] == ["transferred out; the caller hung up"]
        # the outside party's Local channel is hung up, the bridge destroyed
        await _all_gone(s, ch, seat, two)
        assert s.app.rejected == []


async def test_attended_transfer_by_the_phone_to_an_outside_party(sqlite_lianxin):
    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        s.sim.register_endpoint(f"PJSIP/{OUTSIDE}", AnswerAfter(delay=1))
        start = lx.app.max_position()
        leg = call.leg_id
        s.sim.endpoint_hold(leg)
        await s.call_state(ch, "held")
        second, party = s.sim.phone_dial(leg, OUTSIDE)
        await s.until(lambda: party in s.sim.core.channels and s.sim.core.channels[party].bridge,
                      what="outside party answered")
        seat = s.sim.refer_attended(leg, second)
        after = await _transferred_out(s, lx, ch, call, seat, start)
        xfer = next(e for e in _call_events(lx, start)
                    if type(e).__qualname__ == "Call.Transferred")
        assert xfer.kind == "attended" and xfer.pii == {"target": f"PJSIP/{OUTSIDE}"}
        assert after.agent_id is None
        s.sim.hangup(party)  # the outside party hangs up: their bridge and the link go
        ended = await s.call_state(ch, "ended")
        assert ended.hung_up_by == "transfer"
        end = [e for e in _call_events(lx, start) if type(e).__qualname__ == "Call.Ended"]
        assert [e.cause for e in end] == ["transferred out; the outside party hung up"]
        await _all_gone(s, ch, seat, party)
        assert lx.app.repository.get(agent_id_for("1001")).state == AgentState.WRAP_UP


def test_captured_refer_out_ends_when_asterisk_reports_the_caller_gone(sqlite_lianxin):
    """The real Asterisk 22 capture: REFER to 2000 (not ours), a Local
    channel takes the agent's seat; the call ends only when the caller's
    channel is destroyed (there by the test driver's DELETE)."""
    from datetime import datetime

    from tests.telephony.conftest import staff, trace
    from tests.telephony.test_stasis_traces import replay, the_call

    lx = sqlite_lianxin
    staff(lx, "1001")
    name = "sip_agent_blind_transfer_refer"
    start = lx.app.max_position()
    app = replay(lx, name)
    assert app.rejected == []
    evs = _call_events(lx, start)
    end = evs[-1]
    assert type(end).__qualname__ == "Call.Ended"
    caller = the_call(lx, name).external_id
    gone = next(ev for ev in trace(name)
                if ev["type"] == "ChannelDestroyed" and ev["channel"]["id"] == caller)
    bbt = next(ev for ev in trace(name) if ev["type"] == "BridgeBlindTransfer")
    assert end.occurred_at == datetime.fromisoformat(gone["timestamp"])
    assert evs[-2].occurred_at == datetime.fromisoformat(bbt["timestamp"])
    assert (end.hung_up_by, end.cause, end.cause_code) == (
        "transfer", "transferred out; hung up by the application", 16)
