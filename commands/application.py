"""CallCenter: the one eventsourcing Application over every aggregate, so
that the notification log is one total order (audit, warehouse and the NATS
relay all read it)."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application

from domain.access_log import AccessLog
from domain.agent import Agent
from domain.call import Call
from domain.handover import Handover
from domain.outage import Outage, OutageArea
from domain.work_order import FaultLocation, WorkOrder


class CallCenter(Application):
    name = "lianxin"
    # Every aggregate type whose events share this log. The event catalogue
    # (docs/events.md, audit bundles) is built from this list.
    aggregate_types = (Call, Agent, WorkOrder, FaultLocation, Outage, OutageArea, Handover,
                       AccessLog)

    def __init__(self, env: dict[str, Any] | None = None) -> None:
        super().__init__(env)

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0
