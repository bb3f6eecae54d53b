"""Synthetic call-center load on the simulator: callers arrive, wait, talk and hang up.

Arrivals per queue are a non-homogeneous Poisson process (the hourly rate follows a daily
profile; sampled by thinning). Each caller has an exponentially distributed patience: if no
agent is bridged with them by then, they hang up (an abandon, wherever they are: IVR or
queue). A connected caller talks for a log-normal time and hangs up, unless the agent hangs
up first (then the caller answers the satisfaction survey if one is played). Agents are
phones that ring for a random delay before answering and stay busy for a wrap-up time
after each call. Everything is in simulated seconds, so ``speed`` compresses a day.

The adapter under test decides everything else (IVR, routing, bridging): the generator only
plays the people at the ends of the line.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from typing import Optional, Sequence

from telephony_adapter.simulator.endpoints import AnswerAfter
from telephony_adapter.simulator.server import Simulator

# Share of the daily peak rate per hour of the day (0-23): a hotline with a morning and an
# afternoon peak and a quiet night.
DAILY_PROFILE: tuple[float, ...] = (
    0.05, 0.03, 0.02, 0.02, 0.03, 0.06, 0.15, 0.35, 0.70, 0.95, 1.00, 0.90,
    0.65, 0.70, 0.90, 0.95, 0.85, 0.70, 0.50, 0.40, 0.30, 0.20, 0.12, 0.08,
)


@dataclass(frozen=True)
class QueueLoad:
    dialed: str                      # the number callers dial (the Stasis app routes on it)
    peak_calls_per_hour: float
    ivr_digits: str = ""             # what callers key once the greeting starts
    patience_mean: float = 120.0     # seconds before an unserved caller gives up
    talk_median: float = 180.0       # log-normal talk time
    talk_sigma: float = 0.6
    agent_hangs_up_first: float = 0.3
    survey_answer_rate: float = 0.6


@dataclass(frozen=True)
class AgentLoad:
    endpoint: str                    # e.g. PJSIP/1001
    ring_delay: float = 3.0
    ring_jitter: float = 2.0
    wrap_up: float = 20.0            # the phone answers busy this long after a call


@dataclass
class LoadStats:
    placed: int = 0
    connected: int = 0
    abandoned: int = 0
    completed_by_caller: int = 0
    completed_by_agent: int = 0
    survey_answers: int = 0
    ended_elsewhere: int = 0         # the adapter or Asterisk ended the call first
    per_queue: dict[str, int] = field(default_factory=dict)
    per_hour: dict[int, int] = field(default_factory=dict)  # arrivals by hour of the day


class LoadGenerator:
    def __init__(self, sim: Simulator, queues: Sequence[QueueLoad],
                 agents: Sequence[AgentLoad] = (), *, profile: Sequence[float] = DAILY_PROFILE,
                 seed: int = 1, start_hour: float = 0.0) -> None:
        if len(profile) != 24:
            raise ValueError("the daily profile needs 24 hourly weights")
        self.sim = sim
        self.queues = list(queues)
        self.agents = list(agents)
        self.profile = list(profile)
        self.seed = seed
        self.rng = random.Random(seed)
        self.start_hour = start_hour
        self.stats = LoadStats()
        self._callers: set[asyncio.Task] = set()
        for agent in self.agents:
            sim.register_endpoint(agent.endpoint, AnswerAfter(agent.ring_delay, agent.ring_jitter))
        sim.core.listeners.append(self._on_event)

    def rate_per_second(self, queue: QueueLoad, elapsed: float) -> float:
        hour = int((self.start_hour + elapsed / 3600.0) % 24)
        return queue.peak_calls_per_hour * self.profile[hour] / 3600.0

    async def run(self, duration: float) -> LoadStats:
        """Generate arrivals for ``duration`` simulated seconds, then wait for callers."""
        await asyncio.gather(*(self._arrivals(q, duration) for q in self.queues))
        if self._callers:
            await asyncio.gather(*self._callers, return_exceptions=True)
        return self.stats

    async def stop(self) -> None:
        for task in list(self._callers):
            task.cancel()
        await asyncio.gather(*self._callers, return_exceptions=True)
        if self._on_event in self.sim.core.listeners:
            self.sim.core.listeners.remove(self._on_event)

    async def _arrivals(self, queue: QueueLoad, duration: float) -> None:
        peak = queue.peak_calls_per_hour * max(self.profile) / 3600.0
        if peak <= 0:
            return
        # Arrivals draw from their own generator: the same seed gives the same arrivals
        # whatever the callers' timing did to the shared one.
        rng = random.Random(f"{self.seed}:{queue.dialed}")
        t = 0.0
        origin = self.sim.clock.elapsed()
        while True:
            t += rng.expovariate(peak)
            if t >= duration:
                return
            # Sleep to an absolute time: relative sleeps would drift at high speed factors.
            await self.sim.clock.sleep(t - (self.sim.clock.elapsed() - origin))
            # Thinning: keep an arrival with probability rate(t) / peak rate.
            if rng.random() <= self.rate_per_second(queue, t) / peak:
                hour = int((self.start_hour + t / 3600.0) % 24)
                self.stats.per_hour[hour] = self.stats.per_hour.get(hour, 0) + 1
                task = asyncio.get_running_loop().create_task(self._caller(queue))
                self._callers.add(task)
                task.add_done_callback(self._callers.discard)

    # --- one caller ------------------------------------------------------------------------

    def _on_event(self, event: dict) -> None:
        # Wrap-up: a phone whose call just ended stays busy for a while (not after a ring
        # that was never answered: there was no call to wrap up).
        if event["type"] == "ChannelDestroyed" and event["channel"]["state"] == "Up":
            name = event["channel"]["name"]
            for agent in self.agents:
                if name.startswith(agent.endpoint + "-"):
                    until = self.sim.clock.elapsed() + agent.wrap_up
                    self.sim.core.endpoint_busy_until[agent.endpoint] = until

    def _agent_peer(self, channel_id: str) -> Optional[str]:
        core = self.sim.core
        ch = core.channels.get(channel_id)
        if ch is None or ch.bridge is None:
            return None
        bridge = core.bridges.get(ch.bridge)
        if bridge is None or bridge.bridge_type != "mixing":
            return None
        for cid in bridge.channels:
            other = core.channels.get(cid)
            if other is not None and other.kind in ("agent", "local") and cid != channel_id:
                return cid
        return None

    async def _wait(self, predicate, timeout: float) -> bool:
        """Wait up to ``timeout`` simulated seconds for ``predicate()``."""
        deadline = self.sim.clock.elapsed() + timeout
        while not predicate():
            left = deadline - self.sim.clock.elapsed()
            if left <= 0:
                return False
            await self.sim.core.changed(self.sim.clock.real(min(left, 5.0)))
        return True

    async def _caller(self, queue: QueueLoad) -> None:
        sim, core, stats = self.sim, self.sim.core, self.stats
        number = "13" + "".join(str(self.rng.randrange(10)) for _ in range(9))
        call = sim.place_call(caller=number, dialed=queue.dialed)
        stats.placed += 1
        stats.per_queue[queue.dialed] = stats.per_queue.get(queue.dialed, 0) + 1
        patience = self.rng.expovariate(1.0 / queue.patience_mean)
        deadline = sim.clock.elapsed() + patience

        def alive() -> bool:
            return call in core.channels

        if queue.ivr_digits:
            greeted = await self._wait(lambda: not alive() or bool(core.channels[call].playbacks)
                                       or core.channels[call].bridge is not None,
                                       min(patience, 10.0))
            if greeted and alive() and core.channels[call].bridge is None:
                await sim.clock.sleep(self.rng.uniform(0.5, 2.0))
                await sim.press(call, queue.ivr_digits)
        left = max(0.0, deadline - sim.clock.elapsed())
        served = await self._wait(lambda: not alive() or self._agent_peer(call) is not None, left)
        if not alive():
            stats.ended_elsewhere += 1
            return
        if not served:
            stats.abandoned += 1
            sim.hangup(call)
            return
        stats.connected += 1
        agent = self._agent_peer(call)
        talk = self.rng.lognormvariate(math.log(queue.talk_median), queue.talk_sigma)
        await sim.clock.sleep(talk)
        if not alive():
            stats.ended_elsewhere += 1
            return
        if agent and agent in core.channels and self.rng.random() < queue.agent_hangs_up_first:
            stats.completed_by_agent += 1
            sim.hangup(agent)
            # The adapter may play a survey: answer it with a mark 1-5, then hang up.
            prompted = await self._wait(lambda: not alive() or bool(core.channels[call].playbacks),
                                        8.0)
            if prompted and alive() and self.rng.random() < queue.survey_answer_rate:
                await sim.clock.sleep(self.rng.uniform(1.0, 3.0))
                if alive():
                    sim.core.press(call, str(self.rng.randint(1, 5)))
                    stats.survey_answers += 1
                    await sim.clock.sleep(3.0)
            if alive():
                sim.hangup(call)
            return
        stats.completed_by_caller += 1
        sim.hangup(call)
