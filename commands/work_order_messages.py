"""Commands of the work-order follow-through (issue 5): clocks, urging,
merging, referrals, callbacks, outage notices and shift handover.

The basic lifecycle (open, dispatch, accept, progress, resolve, close,
reopen) keeps its messages in ``commands.messages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional
from uuid import UUID

from commands.messages import Command, OpenWorkOrder, RecordCallback


@dataclass(kw_only=True)
class ReceiveReferral(OpenWorkOrder):
    """An order handed to us by a linked public service (12345, 110, 119)."""

    partner: str
    reference: str
    channel: str = "referral"


@dataclass(kw_only=True)
class ReferWorkOrder(Command):
    """Hand an order (or part of it) to a linked public service."""

    work_order_id: UUID
    partner: str
    reference: str


@dataclass(kw_only=True)
class SendReply(Command):
    """Report the result back to the partner of a referral."""

    work_order_id: UUID
    partner: str
    text: str


@dataclass(kw_only=True)
class PauseClock(Command):
    """Stop the deadline clock (waiting for the customer)."""

    work_order_id: UUID
    reason: str


@dataclass(kw_only=True)
class ResumeClock(Command):
    work_order_id: UUID


@dataclass(kw_only=True)
class UrgeWorkOrder(Command):
    """Fired by the timers: the urging of the ``stage`` deadline for its due
    moments ``first_seq``..``seq`` (``first_due_at``..``due_at``); one moment
    unless the timer is catching up after downtime. Its command id is derived
    from the order, stage, deadline and ``first_seq``, so a re-fire after a
    restart, or a second timer, changes nothing."""

    work_order_id: UUID
    stage: str
    seq: int
    due_at: datetime
    deadline: Optional[datetime] = None  # the promise being urged; stale if it moved
    first_seq: Optional[int] = None  # default: seq (a single moment)
    first_due_at: Optional[datetime] = None  # default: due_at


@dataclass(kw_only=True)
class GiveUpCallback(Command):
    """Fired by the timers when a callback's retry window closes."""

    work_order_id: UUID
    task: int


@dataclass(kw_only=True)
class ReassignCallback(Command):
    """Give the pending callback task to another agent (``team``: keep the
    task's team unless given)."""

    work_order_id: UUID
    assignee: str
    team: Optional[str] = None


@dataclass(kw_only=True)
class RecordCallbackAttempt(RecordCallback):
    """One callback attempt; a reached customer who is not satisfied may have
    the order reopened in the same command."""

    reopen: bool = False
    reopen_reason: str = ""


@dataclass(kw_only=True)
class SplitWorkOrder(Command):
    """Undo a wrong merge: ``link_id`` (from the order's links) becomes its own
    order again."""

    work_order_id: UUID
    link_id: str


@dataclass(kw_only=True)
class MergeWorkOrder(Command):
    """Fold an order found to be a duplicate into another one."""

    work_order_id: UUID
    into: UUID


@dataclass(kw_only=True)
class PublishOutage(Command):
    reference: str
    kind: str  # planned | temporary
    areas: list[str]
    start: datetime
    end: datetime
    reason: str


@dataclass(kw_only=True)
class ReviseOutage(Command):
    reference: str
    start: datetime
    end: datetime
    reason: str


@dataclass(kw_only=True)
class CancelOutage(Command):
    reference: str
    reason: str


@dataclass(kw_only=True)
class CreateHandover(Command):
    """The snapshot lists are filled by the adapter from the read models at
    the moment of the handover (``queries.work_orders.handover_snapshot``);
    the HTTP route takes none of them from the client (see SNAPSHOT_LISTS)."""

    from_shift: str
    to_shift: str
    notes: str = ""
    open_calls: list[str] = field(default_factory=list)
    open_orders: list[str] = field(default_factory=list)
    overdue_orders: list[str] = field(default_factory=list)
    pending_callbacks: list[str] = field(default_factory=list)
    key: Optional[str] = None


@dataclass(kw_only=True)
class AcknowledgeHandover(Command):
    handover_id: UUID
    by: str
