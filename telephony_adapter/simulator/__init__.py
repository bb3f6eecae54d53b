"""A fake Asterisk speaking ARI (REST + event WebSocket) for tests, the demo and benchmarks.

    async with run_simulator(app="lianxin") as sim:
        client = AriClient(sim.base_url, "lianxin", sim.username, sim.password)
        sim.register_endpoint("PJSIP/1001", AnswerAfter(delay=2))
        call = sim.place_call(caller="13800000000", dialed="95598")
        await sim.press(call, "21")
        sim.hangup(call)
"""

from telephony_adapter.simulator.clock import SimClock
from telephony_adapter.simulator.core import SimError
from telephony_adapter.simulator.endpoints import (
    AnswerAfter,
    Busy,
    HangUpAfter,
    NeverAnswer,
    Unavailable,
)
from telephony_adapter.simulator.server import Simulator, run_simulator

__all__ = ["run_simulator", "Simulator", "SimClock", "SimError", "AnswerAfter", "NeverAnswer",
           "Busy", "HangUpAfter", "Unavailable"]

from telephony_adapter.simulator.load import (  # noqa: E402
    DAILY_PROFILE,
    AgentLoad,
    LoadGenerator,
    LoadStats,
    QueueLoad,
)

__all__ += ["LoadGenerator", "QueueLoad", "AgentLoad", "LoadStats", "DAILY_PROFILE"]
