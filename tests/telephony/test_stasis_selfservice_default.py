"""The Stasis app's IVR self-service answers from the core it runs on, by
default: never a desk without a core (every caller would hear "service
unavailable")."""

from __future__ import annotations

import pytest

from queries import self_service
from telephony_adapter.stasis.app import StasisApp
from telephony_adapter.stasis.config import load
from telephony_adapter.stasis.fake_rest import RecordingRest
from telephony_adapter.stasis.selfservice import SelfServiceDesk
from tests.telephony.conftest import events_since
from tests.telephony.stack import stack

pytestmark = pytest.mark.timeout(60)


def test_given_the_core_the_flow_uses_its_real_lookups(sqlite_lianxin):
    lx = sqlite_lianxin
    for app in (StasisApp(lx, RecordingRest(), load()),
                StasisApp(lx.commands, RecordingRest(), load(), lianxin=lx)):
        desk = app.flow.self_service
        assert isinstance(desk, SelfServiceDesk) and desk.lianxin is lx
        assert desk.lookups == {"work_order_status": self_service.work_order_status,
                                "outage_info": self_service.outage_info}
        assert app.service is lx.commands


def test_a_call_flow_without_its_core_refuses_to_start(sqlite_lianxin):
    lx = sqlite_lianxin
    with pytest.raises(ValueError, match="core it runs on"):
        StasisApp(lx.commands, RecordingRest(), load())
    # observe mode (trace replays) needs no self-service; an explicit desk is kept
    assert StasisApp(lx.commands, RecordingRest(), load(), control=False).flow is None
    desk = SelfServiceDesk(lx, lookups={"outage_info": lambda lianxin, area: []})
    assert StasisApp(lx.commands, RecordingRest(), load(), self_service=desk).flow.self_service is desk


async def test_a_caller_keying_a_number_gets_an_answer_from_the_core(sqlite_lianxin):
    lx = sqlite_lianxin
    lx.read_models()  # the core's read models, as `lianxin telephony run` has them
    start = lx.app.max_position()
    async with stack(lx) as s:  # no self_service given: the default
        ch = s.sim.place_call()
        await s.call_state(ch, "ivr")
        await s.sim.press(ch, "21")  # self-service menu, work-order status
        await s.sim.sleep(1)
        await s.sim.press(ch, "2026#")
        await s.until(lambda: s.call(ch).self_service == ["work_order_status"], what="lookup")
        await s.until(lambda: any("work-order-not-found" in str(r) for r in s.sim.requests),
                      what="answer played")
        s.sim.hangup(ch)
        await s.call_state(ch, "ended", "abandoned")
    used = [e for e in events_since(lx, start) if type(e).__qualname__ == "Call.SelfServiceUsed"]
    # the lookup ran on the core's read models: no such order, not "unavailable"
    assert [(u.reference, u.result) for u in used] == [("2026", "not_found")]
    assert not any("service-unavailable" in str(r) for r in s.sim.requests)
