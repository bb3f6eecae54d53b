"""Command messages: one per user intention. Plain dataclasses, so that the
HTTP layer (FastAPI validates dataclasses), the CLI, the telephony adapter
and the importers all speak the same messages.

Common fields: ``command_id`` is the idempotency key (a retried command with
the same key changes nothing); ``occurred_at`` is the time at the source and
defaults to now; ``expected_version`` pins optimistic concurrency (a mismatch
is a 409 conflict instead of a silent retry); ``actor`` says who asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional
from uuid import UUID


@dataclass(kw_only=True)
class Command:
    command_id: Optional[str] = None
    occurred_at: Optional[datetime] = None
    expected_version: Optional[int] = None
    actor: Optional[str] = None


# -- calls ------------------------------------------------------------------
@dataclass(kw_only=True)
class OfferCall(Command):
    external_id: str
    dialed_number: str
    caller_number: Optional[str] = None
    trunk: str = ""
    direction: str = "inbound"


@dataclass(kw_only=True)
class EnterIvr(Command):
    call_id: UUID
    menu: str


@dataclass(kw_only=True)
class ChooseMenuOption(Command):
    call_id: UUID
    menu: str
    digits: str
    target: str = ""


@dataclass(kw_only=True)
class UseSelfService(Command):
    call_id: UUID
    service: str
    result: str = ""
    reference: Optional[str] = None


@dataclass(kw_only=True)
class QueueCall(Command):
    call_id: UUID
    queue: str
    priority: int = 0
    required_skills: dict[str, int] = field(default_factory=dict)
    # why: None (a plain entry) | "overflow" | "requeue" | "transfer"
    reason: Optional[str] = None
    from_queue: Optional[str] = None  # the queue an overflow moved the call from


@dataclass(kw_only=True)
class AlertAgent(Command):
    """Route a queued call to a ready agent (the ACD's decision)."""

    call_id: UUID
    employee_no: str
    leg_id: Optional[str] = None
    endpoint: Optional[str] = None


@dataclass(kw_only=True)
class ReportRingNoAnswer(Command):
    call_id: UUID
    leg_id: Optional[str] = None
    outcome: str = "no_answer"


@dataclass(kw_only=True)
class AnswerCall(Command):
    call_id: UUID
    leg_id: Optional[str] = None


@dataclass(kw_only=True)
class HoldCall(Command):
    call_id: UUID
    by: str = "agent"


@dataclass(kw_only=True)
class ResumeCall(Command):
    call_id: UUID
    by: str = "agent"


@dataclass(kw_only=True)
class TransferCall(Command):
    call_id: UUID
    kind: str  # blind | attended
    target_type: str  # queue | agent | ivr | external
    target: str
    wrap_up: bool = True
    # attended transfer to the answered consult leg: the colleague on it
    # (``target``, their employee number) takes the call at once
    to_leg_id: Optional[str] = None


@dataclass(kw_only=True)
class AlertConsult(Command):
    """The agent calls a colleague while the caller is connected or held
    (attended transfer): the colleague's phone rings."""

    call_id: UUID
    employee_no: str
    leg_id: Optional[str] = None
    endpoint: Optional[str] = None


@dataclass(kw_only=True)
class AnswerConsult(Command):
    call_id: UUID
    leg_id: Optional[str] = None  # default: the call's live consult leg


@dataclass(kw_only=True)
class ReportConsultMissed(Command):
    call_id: UUID
    leg_id: Optional[str] = None
    outcome: str = "no_answer"  # no_answer | busy | unavailable | rejected | canceled


@dataclass(kw_only=True)
class EndConsult(Command):
    """An answered consultation is over without a transfer."""

    call_id: UUID
    leg_id: Optional[str] = None
    ended_by: str = "colleague"  # colleague | agent | call | system
    wrap_up: bool = True  # the colleague goes to wrap-up, or straight back to ready


@dataclass(kw_only=True)
class AddConferenceParty(Command):
    call_id: UUID
    party: str


@dataclass(kw_only=True)
class RemoveConferenceParty(Command):
    call_id: UUID
    party: str


@dataclass(kw_only=True)
class StartMonitor(Command):
    call_id: UUID
    supervisor_id: str
    mode: str  # listen | whisper | barge


@dataclass(kw_only=True)
class StopMonitor(Command):
    call_id: UUID
    supervisor_id: str


@dataclass(kw_only=True)
class ForceDisconnect(Command):
    call_id: UUID
    supervisor_id: str


@dataclass(kw_only=True)
class StartRecording(Command):
    call_id: UUID
    recording: str
    target: str = ""
    format: str = "wav"


@dataclass(kw_only=True)
class StopRecording(Command):
    call_id: UUID
    recording: str
    cause: str = "stopped"
    duration_s: Optional[float] = None


@dataclass(kw_only=True)
class EndCall(Command):
    call_id: UUID
    hung_up_by: str  # caller | agent | system | supervisor | transfer
    cause: str = "normal"
    cause_code: Optional[int] = None
    wrap_up: bool = True


@dataclass(kw_only=True)
class CompleteWrapUp(Command):
    call_id: UUID
    employee_no: str
    dispositions: list[str] = field(default_factory=list)
    ready: bool = True  # back to ready after wrap-up, or not ready
    not_ready_reason: str = "after_wrap_up"


@dataclass(kw_only=True)
class AnswerSurvey(Command):
    call_id: UUID
    score: int
    question: str = "overall"


# -- agents -----------------------------------------------------------------
@dataclass(kw_only=True)
class RegisterAgent(Command):
    employee_no: str
    name: str
    team: str = ""
    skills: dict[str, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class LogIn(Command):
    employee_no: str
    endpoint: str


@dataclass(kw_only=True)
class LogOut(Command):
    employee_no: str
    reason: str = ""


@dataclass(kw_only=True)
class MakeReady(Command):
    employee_no: str


@dataclass(kw_only=True)
class MakeNotReady(Command):
    employee_no: str
    reason: str


@dataclass(kw_only=True)
class ChangeSkills(Command):
    employee_no: str
    skills: dict[str, int]


# -- work orders ------------------------------------------------------------
@dataclass(kw_only=True)
class OpenWorkOrder(Command):
    type: str
    summary: str
    category: str = ""
    channel: str = "phone"
    call_id: Optional[UUID] = None
    customer: Optional[dict[str, Any]] = None
    location: dict[str, str] = field(default_factory=dict)
    priority: str = "normal"


@dataclass(kw_only=True)
class DispatchWorkOrder(Command):
    work_order_id: UUID
    department: str


@dataclass(kw_only=True)
class AcceptWorkOrder(Command):
    work_order_id: UUID
    department: str


@dataclass(kw_only=True)
class NoteProgress(Command):
    work_order_id: UUID
    note: str


@dataclass(kw_only=True)
class ResolveWorkOrder(Command):
    work_order_id: UUID
    resolution: str
    note: str = ""


@dataclass(kw_only=True)
class RecordCallback(Command):
    work_order_id: UUID
    result: str
    satisfaction: Optional[int] = None
    reason: str = ""


@dataclass(kw_only=True)
class CloseWorkOrder(Command):
    work_order_id: UUID


@dataclass(kw_only=True)
class ReopenWorkOrder(Command):
    work_order_id: UUID
    reason: str
