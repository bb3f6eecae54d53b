"""CallCenter: the one eventsourcing Application over every aggregate, so
that the notification log is one total order (audit, warehouse and the NATS
relay all read it)."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application

from domain.agent import Agent
from domain.call import Call
from domain.work_order import WorkOrder


class CallCenter(Application):
    name = "lianxin"
    aggregate_types = (Call, Agent, WorkOrder)

    def __init__(self, env: dict[str, Any] | None = None) -> None:
        super().__init__(env)

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0
