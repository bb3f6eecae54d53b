"""A busy stretch of a day through the Stasis app, with impatient callers:
routing must keep offering callers to every agent whose record says ready."""

from __future__ import annotations

import asyncio

import pytest

from domain.agent import AgentState, agent_id_for
from tests.telephony.conftest import staff
from tests.telephony.stack import stack
from telephony_adapter.simulator.load import AgentLoad, LoadGenerator, QueueLoad

pytestmark = pytest.mark.timeout(120)

AGENTS = ("1001", "1002", "1003", "1004")


async def test_ready_agents_keep_being_offered_callers_through_a_busy_hour(sqlite_lianxin):
    # The demo lost agents one by one: a caller who hung up just as their
    # agent's phone was dialled took that agent out of routing for good.
    # Callers here give up after 12 s on average while phones take 2-5 s to
    # answer, so many hang up during a ring.
    lx = sqlite_lianxin
    staff(lx, *AGENTS)
    async with stack(lx, speed=120.0, auto_ready_after_s=3) as s:
        load = LoadGenerator(
            s.sim, [QueueLoad("95598", peak_calls_per_hour=900, ivr_digits="0",
                              patience_mean=12, talk_median=20, agent_hangs_up_first=0.0)],
            [AgentLoad(f"PJSIP/{emp}", ring_delay=3.5, ring_jitter=1.5, wrap_up=1.0)
             for emp in AGENTS],
            profile=[1.0] * 24, seed=11)
        half = 20 * 60
        first = await asyncio.wait_for(load.run(half), 90)
        connected_first = first.connected
        await s.until(lambda: not s.app.flow.plans, timeout=20, what="every call over")
        # a quiet moment: every agent is ready again, in the records and in routing
        await s.until(lambda: all(lx.app.repository.get(agent_id_for(e)).state
                                  == AgentState.READY for e in AGENTS),
                      timeout=20, what="agents ready again")
        await s.until(lambda: sorted(s.app.flow.acd.ready_agents()) == sorted(AGENTS),
                      timeout=5, what="routing offers every ready agent")
        second = await asyncio.wait_for(load.run(half), 90)
        await load.stop()
    assert first.abandoned >= 10  # impatient enough to hang up during rings
    assert connected_first >= 10
    # the second stretch is served as well as the first was
    assert second.connected - connected_first >= connected_first // 2
