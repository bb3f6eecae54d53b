"""Work orders (工单): what the hotline promised a caller, and how it was kept.

Deadlines, urging, merging and callback tasks (issue: work orders with
deadlines) extend this aggregate with further events; the fields a deadline
needs (type, category, priority, policy version, clocks) are here already.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import LianxinAggregate, require_aware, require_text, stable_id
from domain.errors import InvalidValue, InvariantViolation


class WorkOrderType(str, Enum):
    CONSULTATION = "consultation"
    COMPLAINT = "complaint"
    REPORT = "report"  # 举报
    FAULT_REPAIR = "fault_repair"
    SUGGESTION = "suggestion"
    PRAISE = "praise"


class WorkOrderStatus(str, Enum):
    OPEN = "open"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    CLOSED = "closed"


CHANNELS = {"phone", "web", "app", "sms", "email", "wechat", "letter", "walk_in", "referral"}
PRIORITIES = {"low", "normal", "high", "urgent"}
CALLBACK_RESULTS = {"reached", "no_answer", "busy", "refused"}


def work_order_id_for(key: str) -> UUID:
    return stable_id("work-order", key)


def work_order_number(work_order_id: UUID, opened_at: datetime) -> str:
    """Human-friendly number a caller can key in: date + 8 digits of the id."""
    return f"{opened_at:%Y%m%d}{work_order_id.int % 100_000_000:08d}"


class WorkOrder(LianxinAggregate):
    @event("Opened")
    def __init__(self, *, number: str, type: str, category: str, channel: str,
                 call_id: UUID | None, customer_ref: str, location: dict[str, str],
                 priority: str, pii: dict[str, Any], occurred_at: datetime,
                 command_id: str | None, actor: str | None) -> None:
        self.number = number
        self.type = type
        self.category = category
        self.channel = channel
        self.call_ids: list[UUID] = [call_id] if call_id else []
        self.customer_ref = customer_ref
        self.location = dict(location)
        self.priority = priority
        self.status = WorkOrderStatus.OPEN
        self.opened_at = occurred_at
        self.department: str | None = None
        self.dispatched_at: datetime | None = None
        self.accepted_at: datetime | None = None
        self.resolved_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.resolution: str | None = None
        self.progress_notes = 0
        self.callbacks: list[dict[str, Any]] = []
        self.reopen_count = 0
        self._remember(command_id)

    @classmethod
    def open(cls, *, type: str, category: str, channel: str, summary: str,
             occurred_at: datetime, call_id: UUID | None = None, customer_ref: str = "",
             customer: dict[str, Any] | None = None, location: dict[str, str] | None = None,
             priority: str = "normal", key: str | None = None, command_id: str | None = None,
             actor: str | None = None) -> WorkOrder:
        """``key`` (idempotency key, or the originating call id + a sequence)
        makes the id deterministic so a retried open creates nothing new."""
        try:
            WorkOrderType(type)
        except ValueError:
            raise InvalidValue(
                f"type must be one of {[t.value for t in WorkOrderType]}", field="type"
            ) from None
        if channel not in CHANNELS:
            raise InvalidValue(f"channel must be one of {sorted(CHANNELS)}", field="channel")
        if priority not in PRIORITIES:
            raise InvalidValue(f"priority must be one of {sorted(PRIORITIES)}", field="priority")
        require_text(summary, "summary")
        require_aware(occurred_at)
        location = dict(location or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in location.items()):
            raise InvalidValue("location must map names to strings", field="location")
        from uuid import uuid4

        wo_id = work_order_id_for(key) if key else uuid4()
        # Free text and the customer's identity are personal data: they live in
        # ``pii`` only (see domain.base).
        pii = {"summary": summary, **({"customer": dict(customer)} if customer else {})}
        return cls._create(cls.Opened, id=wo_id, number=work_order_number(wo_id, occurred_at), type=type,
                   category=category or "", channel=channel, call_id=call_id,
                   customer_ref=customer_ref or "", location=location, priority=priority,
                   pii=pii, occurred_at=occurred_at, command_id=command_id, actor=actor)

    @property
    def is_open(self) -> bool:
        return self.status not in (WorkOrderStatus.CLOSED,)

    def dispatch(self, department: str, occurred_at: datetime, command_id: str | None = None,
                 actor: str | None = None) -> None:
        if self.status not in (WorkOrderStatus.OPEN, WorkOrderStatus.DISPATCHED):
            raise InvariantViolation(f"cannot dispatch a work order that is {self.status.value}")
        self._dispatched(department=require_text(department, "department"),
                         occurred_at=require_aware(occurred_at), command_id=command_id,
                         actor=actor)

    @event("Dispatched")
    def _dispatched(self, department: str, occurred_at: datetime, command_id: str | None,
                    actor: str | None) -> None:
        self.department = department
        self.status = WorkOrderStatus.DISPATCHED
        self.dispatched_at = occurred_at
        self.accepted_at = None
        self._remember(command_id)

    def accept(self, department: str, occurred_at: datetime, command_id: str | None = None,
               actor: str | None = None) -> None:
        if self.status != WorkOrderStatus.DISPATCHED:
            raise InvariantViolation(f"cannot accept a work order that is {self.status.value}")
        if department != self.department:
            raise InvariantViolation(
                f"work order is dispatched to {self.department}, not {department}"
            )
        self._accepted(department=department, occurred_at=require_aware(occurred_at),
                       command_id=command_id, actor=actor)

    @event("Accepted")
    def _accepted(self, department: str, occurred_at: datetime, command_id: str | None,
                  actor: str | None) -> None:
        self.status = WorkOrderStatus.ACCEPTED
        self.accepted_at = occurred_at
        self._remember(command_id)

    def note_progress(self, note: str, occurred_at: datetime, command_id: str | None = None,
                      actor: str | None = None) -> None:
        if self.status in (WorkOrderStatus.CLOSED,):
            raise InvariantViolation("cannot note progress on a closed work order")
        self._progress_noted(pii={"note": require_text(note, "note")},
                             occurred_at=require_aware(occurred_at), command_id=command_id,
                             actor=actor)

    @event("ProgressNoted")
    def _progress_noted(self, pii: dict[str, Any], occurred_at: datetime,
                        command_id: str | None, actor: str | None) -> None:
        self.progress_notes += 1
        self._remember(command_id)

    def resolve(self, resolution: str, occurred_at: datetime, note: str = "",
                command_id: str | None = None, actor: str | None = None) -> None:
        if self.status not in (WorkOrderStatus.OPEN, WorkOrderStatus.DISPATCHED,
                               WorkOrderStatus.ACCEPTED):
            raise InvariantViolation(f"cannot resolve a work order that is {self.status.value}")
        self._resolved(resolution=require_text(resolution, "resolution"),
                       pii={"note": note} if note else {},
                       occurred_at=require_aware(occurred_at), command_id=command_id,
                       actor=actor)

    @event("Resolved")
    def _resolved(self, resolution: str, pii: dict[str, Any], occurred_at: datetime,
                  command_id: str | None, actor: str | None) -> None:
        self.status = WorkOrderStatus.RESOLVED
        self.resolved_at = occurred_at
        self.resolution = resolution
        self._remember(command_id)

    def record_callback(self, result: str, occurred_at: datetime,
                        satisfaction: int | None = None, reason: str = "",
                        command_id: str | None = None, actor: str | None = None) -> None:
        if self.status != WorkOrderStatus.RESOLVED and self.status != WorkOrderStatus.CLOSED:
            raise InvariantViolation("a callback follows a resolved work order")
        if result not in CALLBACK_RESULTS:
            raise InvalidValue(f"result must be one of {sorted(CALLBACK_RESULTS)}", field="result")
        if satisfaction is not None and (not isinstance(satisfaction, int) or not 1 <= satisfaction <= 5):
            raise InvalidValue("satisfaction must be 1..5", field="satisfaction")
        if satisfaction is not None and result != "reached":
            raise InvalidValue("satisfaction needs a reached callback", field="satisfaction")
        self._callback_recorded(result=result, satisfaction=satisfaction, reason=reason or "",
                                occurred_at=require_aware(occurred_at), command_id=command_id,
                                actor=actor)

    @event("CallbackRecorded")
    def _callback_recorded(self, result: str, satisfaction: int | None, reason: str,
                           occurred_at: datetime, command_id: str | None,
                           actor: str | None) -> None:
        self.callbacks.append({"at": occurred_at, "result": result, "satisfaction": satisfaction})
        self._remember(command_id)

    def close(self, occurred_at: datetime, command_id: str | None = None,
              actor: str | None = None) -> None:
        if self.status != WorkOrderStatus.RESOLVED:
            raise InvariantViolation(
                f"cannot close a work order that is {self.status.value}: resolve it first"
            )
        self._closed(occurred_at=require_aware(occurred_at), command_id=command_id, actor=actor)

    @event("Closed")
    def _closed(self, occurred_at: datetime, command_id: str | None, actor: str | None) -> None:
        self.status = WorkOrderStatus.CLOSED
        self.closed_at = occurred_at
        self._remember(command_id)

    def reopen(self, reason: str, occurred_at: datetime, command_id: str | None = None,
               actor: str | None = None) -> None:
        if self.status not in (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED):
            raise InvariantViolation(f"cannot reopen a work order that is {self.status.value}")
        self._reopened(reason=require_text(reason, "reason"),
                       occurred_at=require_aware(occurred_at), command_id=command_id,
                       actor=actor)

    @event("Reopened")
    def _reopened(self, reason: str, occurred_at: datetime, command_id: str | None,
                  actor: str | None) -> None:
        # Back to the department that had it; it must accept it again.
        self.status = WorkOrderStatus.DISPATCHED if self.department else WorkOrderStatus.OPEN
        self.resolved_at = None
        self.closed_at = None
        self.reopen_count += 1
        self._remember(command_id)

    def link_call(self, call_id: UUID, occurred_at: datetime, command_id: str | None = None,
                  actor: str | None = None) -> None:
        if call_id in self.call_ids:
            raise InvariantViolation("call already linked")
        self._call_linked(call_id=call_id, occurred_at=require_aware(occurred_at),
                          command_id=command_id, actor=actor)

    @event("CallLinked")
    def _call_linked(self, call_id: UUID, occurred_at: datetime, command_id: str | None,
                     actor: str | None) -> None:
        self.call_ids.append(call_id)
        self._remember(command_id)
