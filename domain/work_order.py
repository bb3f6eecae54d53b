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

from domain.base import LianxinAggregate, pseudonymise, require_aware, require_text, stable_id
from domain.deadlines import Cadence
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
    MERGED = "merged"  # folded into another order (a duplicate report); may be split out again


CHANNELS = {"phone", "web", "app", "sms", "email", "wechat", "letter", "walk_in", "referral"}
PRIORITIES = {"low", "normal", "high", "urgent"}
CALLBACK_RESULTS = {"reached", "no_answer", "busy", "refused"}


def work_order_id_for(key: str) -> UUID:
    return stable_id("work-order", key)


def work_order_number(work_order_id: UUID, opened_at: datetime) -> str:
    """Human-friendly number a caller can key in: date + 8 digits of the id."""
    return f"{opened_at:%Y%m%d}{work_order_id.int % 100_000_000:08d}"


# Location kinds that name a piece of the grid or a district (a transformer,
# a feeder, an area code): operational, matched and counted in the clear.
# Every other kind, an address above all, says where a customer is: personal
# data, stored in ``pii`` and matched on a keyed pseudonym (``location_refs``).
# Adding a kind here is a data-protection decision: review it as one.
INFRASTRUCTURE_KINDS = frozenset({"transformer", "feeder", "area"})


def normalise_place(value: str) -> str:
    """Case and spacing do not make another place: "8  Pine Rd" = "8 pine rd"."""
    return " ".join(value.lower().split())


def split_location(location: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(infrastructure kinds, personal kinds) of a location."""
    operational = {k: v for k, v in location.items() if k in INFRASTRUCTURE_KINDS}
    personal = {k: v for k, v in location.items() if k not in INFRASTRUCTURE_KINDS}
    return operational, personal


def location_refs(location: dict[str, str], pseudonym_key: str) -> dict[str, str]:
    """Keyed pseudonyms of the personal kinds of a location: per kind, the
    HMAC of its normalised ``kind:value`` (see ``domain.base.pseudonymise``),
    so that two reports of one address match without the address being
    stored outside ``pii``."""
    refs = {}
    for kind, value in location.items():
        if kind in INFRASTRUCTURE_KINDS or not isinstance(value, str):
            continue
        if normalise_place(value):
            refs[kind] = pseudonymise(f"{kind}:{normalise_place(value)}", pseudonym_key)
    return refs


def _check_refs(location: dict[str, str], refs: dict[str, str] | None) -> dict[str, str]:
    refs = dict(refs or {})
    for kind, ref in refs.items():
        if kind in INFRASTRUCTURE_KINDS or kind not in location or not isinstance(ref, str):
            raise InvalidValue(f"location_refs.{kind} must be the pseudonym of a personal "
                               "kind of the location", field="location_refs")
    return refs


def _upcast_location_v1(state: dict[str, Any]) -> None:
    """v1 -> v2 of an event that kept the whole location operational: the
    personal kinds move to ``pii["location"]``. Their pseudonyms were never
    recorded and cannot be computed here (no key): ``location_refs`` is
    empty. The clear text stays in the stored v1 bytes (see docs/architecture.md)."""
    operational, personal = split_location(dict(state.get("location") or {}))
    state["location"] = operational
    state["location_refs"] = {}
    if personal:
        state["pii"] = {**(state.get("pii") or {}), "location": personal}


class WorkOrder(LianxinAggregate):
    class Opened(LianxinAggregate.Created):
        """v2: ``location`` holds the infrastructure kinds only
        (``INFRASTRUCTURE_KINDS``: transformer, feeder, area); every other
        kind (an address) is in ``pii["location"]`` and its keyed pseudonym
        in ``location_refs`` (kind -> HMAC of the normalised "kind:value"),
        which duplicate reports are matched on. v1 events kept the whole
        location in ``location``; on read its personal kinds move to ``pii``
        (with no pseudonym: none was recorded)."""

        class_version = 2
        number: str
        type: str
        category: str
        channel: str
        call_id: UUID | None
        customer_ref: str
        location: dict[str, str]
        location_refs: dict[str, str]
        priority: str
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_location_v1(state)

    @event(Opened)
    def __init__(self, *, number: str, type: str, category: str, channel: str,
                 call_id: UUID | None, customer_ref: str, location: dict[str, str],
                 location_refs: dict[str, str], priority: str, pii: dict[str, Any],
                 occurred_at: datetime, command_id: str | None, actor: str | None) -> None:
        self.number = number
        self.type = type
        self.category = category
        self.channel = channel
        self.call_ids: list[UUID] = [call_id] if call_id else []
        self.customer_ref = customer_ref
        # The whole location, in memory only (handlers need it to split and
        # merge). Snapshots are not enabled: one would store it outside pii.
        self.location = {**location, **(pii.get("location") or {})}
        self.location_refs = dict(location_refs)
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
        self.opened_by = actor
        self._init_follow_through()
        self._remember(command_id)

    @classmethod
    def open(cls, *, type: str, category: str, channel: str, summary: str,
             occurred_at: datetime, call_id: UUID | None = None, customer_ref: str = "",
             customer: dict[str, Any] | None = None, location: dict[str, str] | None = None,
             priority: str = "normal", key: str | None = None, command_id: str | None = None,
             actor: str | None = None,
             location_refs: dict[str, str] | None = None) -> WorkOrder:
        """``key`` (idempotency key, or the originating call id + a sequence)
        makes the id deterministic so a retried open creates nothing new.
        ``location_refs``: the pseudonyms of the location's personal kinds
        (``location_refs(location, key)``), computed by the handler, which
        holds the installation's key."""
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

        refs = _check_refs(location, location_refs)
        wo_id = work_order_id_for(key) if key else uuid4()
        # Free text, the customer's identity and where they are (an address)
        # are personal data: they live in ``pii`` only (see domain.base).
        operational, personal = split_location(location)
        pii = {"summary": summary, **({"customer": dict(customer)} if customer else {}),
               **({"location": personal} if personal else {})}
        return cls._create(cls.Opened, id=wo_id, number=work_order_number(wo_id, occurred_at), type=type,
                   category=category or "", channel=channel, call_id=call_id,
                   customer_ref=customer_ref or "", location=operational, location_refs=refs,
                   priority=priority, pii=pii, occurred_at=occurred_at, command_id=command_id,
                   actor=actor)

    @property
    def is_open(self) -> bool:
        return self.status not in (WorkOrderStatus.CLOSED, WorkOrderStatus.MERGED)

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
        if self.status in (WorkOrderStatus.CLOSED, WorkOrderStatus.MERGED):
            raise InvariantViolation(f"cannot note progress on a {self.status.value} work order")
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
        require_text(resolution, "resolution")
        require_aware(occurred_at)
        if self.is_paused:
            # Resolution ends the wait for the customer: recorded as the end
            # of the pause, so a reopened order's clock runs again.
            self._end_pause(occurred_at, actor)
        self._resolved(resolution=resolution,
                       pii={"note": note} if note else {},
                       occurred_at=require_aware(occurred_at), command_id=command_id,
                       actor=actor)

    @event("Resolved")
    def _resolved(self, resolution: str, pii: dict[str, Any], occurred_at: datetime,
                  command_id: str | None, actor: str | None) -> None:
        self.status = WorkOrderStatus.RESOLVED
        self.resolved_at = occurred_at
        self.resolution = resolution
        # Histories stored before resolving ended a pause have no
        # ClockResumed here: no clock runs on a resolved order either way.
        self.paused_at = None
        self._remember(command_id)

    def record_callback(self, result: str, occurred_at: datetime,
                        satisfaction: int | None = None, reason: str = "",
                        command_id: str | None = None, actor: str | None = None) -> None:
        """Kept for existing callers: an attempt with no retry policy."""
        self.attempt_callback(result, occurred_at, satisfaction=satisfaction, reason=reason,
                              command_id=command_id, actor=actor)

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
        if self.callback_task and self.callback_task["state"] == "pending":
            self.callback_task["state"] = "reopened"
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

    # -- deadlines, urging, escalation (issue 5) -----------------------------
    # The policy and the calendar live outside the aggregate; handlers compute
    # the deadlines and the aggregate records them, so replaying an old order
    # never consults today's policy.
    def _init_follow_through(self) -> None:
        self.policy_version: str | None = None
        self.deadlines: dict[str, datetime] = {}
        self.deadline_units: dict[str, str] = {}
        self.deadline_set_at: dict[str, datetime] = {}
        self.cadence: dict[str, dict[str, Any]] = {}  # per stage, as stamped (Cadence.as_dict)
        self.urgings: dict[str, int] = {}  # due moments accounted for, per stage
        self.last_urge_due: dict[str, datetime] = {}
        self.escalations: dict[str, int] = {}  # level reached by the current deadline
        self.last_urged_at: datetime | None = None
        self.escalation_level = 0
        self.paused_at: datetime | None = None
        self.paused_seconds = 0.0
        self.pauses: list[tuple[datetime, datetime]] = []  # (paused at, resumed at)
        self.links: dict[str, dict[str, Any]] = {}
        self.merged_into: UUID | None = None
        self.split_from: UUID | None = None
        self.referral: dict[str, str] | None = None
        self.referrals_out: list[dict[str, str]] = []
        self.replies = 0
        self.callback_task: dict[str, Any] | None = None

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    def active_stages(self) -> tuple[str, ...]:
        """Stages whose deadline is still in play (not yet met)."""
        if self.status in (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED,
                           WorkOrderStatus.MERGED):
            return ()
        stages = []
        if self.status == WorkOrderStatus.OPEN:
            stages.append("dispatch")
        if self.status == WorkOrderStatus.DISPATCHED:
            stages.append("accept")
        stages.append("resolve")
        return tuple(s for s in stages if s in self.deadlines)

    def set_deadlines(self, deadlines: dict[str, datetime], units: dict[str, str], reason: str,
                      policy_version: str, occurred_at: datetime,
                      urging: dict[str, dict[str, Any]] | None = None,
                      calendar_incomplete: bool = False, command_id: str | None = None,
                      actor: str | None = None) -> None:
        """``units`` says how each deadline was counted (``working_days``
        clocks keep working time when paused) and ``urging`` how each is
        urged and escalated (``Cadence.as_dict``), so a resumed clock and the
        timers follow the promise as it was made, not today's policy.
        ``calendar_incomplete``: a working-day deadline was counted over a
        year the calendar file does not list (weekends only)."""
        for stage, when in deadlines.items():
            require_aware(when, f"deadlines.{stage}")
        self._deadlines_set(deadlines=dict(deadlines), units=dict(units),
                            reason=require_text(reason, "reason"),
                            policy_version=require_text(policy_version, "policy_version"),
                            urging={s: dict(c) for s, c in (urging or {}).items()},
                            calendar_incomplete=bool(calendar_incomplete),
                            occurred_at=require_aware(occurred_at), command_id=command_id,
                            actor=actor)

    class DeadlinesSet(LianxinAggregate.Event):
        """Deadlines computed for some stages. v2 adds, per stage, the urging
        cadence stamped with the promise (``urging``: lead, interval,
        escalate_after, escalate_to) and whether the working-day calendar
        lacked a year the count crossed (``calendar_incomplete``). v1 events
        carry no cadence: such orders are urged by the current policy."""

        class_version = 2
        deadlines: dict[str, datetime]
        units: dict[str, str]
        reason: str
        policy_version: str
        urging: dict[str, dict[str, Any]]
        calendar_incomplete: bool
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(urging={}, calendar_incomplete=False)

    @event(DeadlinesSet)
    def _deadlines_set(self, deadlines: dict[str, datetime], units: dict[str, str], reason: str,
                       policy_version: str, urging: dict[str, dict[str, Any]],
                       calendar_incomplete: bool, occurred_at: datetime,
                       command_id: str | None, actor: str | None) -> None:
        self.deadline_units.update(units)
        self.cadence.update(urging)
        for stage, when in deadlines.items():
            if self.deadlines.get(stage) != when:
                # A new promise starts its own urging count and escalation.
                self.urgings[stage] = 0
                self.last_urge_due.pop(stage, None)
                self.escalations[stage] = 0
            self.deadlines[stage] = when
            self.deadline_set_at[stage] = occurred_at
        self.policy_version = policy_version
        self._remember(command_id)

    def urge(self, stage: str, seq: int, due_at: datetime, department: str, cadence: Cadence,
             occurred_at: datetime, first_seq: int | None = None,
             first_due_at: datetime | None = None, command_id: str | None = None,
             actor: str | None = None) -> None:
        """Urging for the due moments ``first_seq``..``seq`` of the stage's
        deadline (one moment unless the timer caught up on missed ones).
        Every ``cadence.escalate_after`` moments raise the escalation one
        level up ``cadence.escalate_to`` (lowest first), never beyond its top."""
        first_seq = seq if first_seq is None else first_seq
        if seq < first_seq:
            raise InvalidValue("an urging covers at least one due moment", field="seq")
        if not isinstance(cadence, Cadence):
            raise InvalidValue("cadence must be a Cadence", field="cadence")
        if isinstance(cadence.escalate_after, bool) or not isinstance(cadence.escalate_after, int) \
                or cadence.escalate_after < 1:
            raise InvalidValue("escalate_after must be a positive integer", field="escalate_after")
        due_at = require_aware(due_at)
        first_due_at = require_aware(first_due_at or due_at, "first_due_at")
        department = require_text(department, "department")
        occurred_at = require_aware(occurred_at)
        if stage not in self.active_stages():
            raise InvariantViolation(f"the {stage} deadline is no longer in play")
        if self.is_paused:
            raise InvariantViolation("the clock is paused: no urging")
        expected = self.urgings.get(stage, 0) + 1
        if first_seq != expected:
            raise InvariantViolation(
                f"urging {first_seq} of {stage} is out of turn (next is {expected})")
        deadline = self.deadlines[stage]
        self._urged(stage=stage, seq=seq, deadline=deadline, due_at=due_at,
                    department=department, missed=seq - first_seq, first_due_at=first_due_at,
                    occurred_at=occurred_at, command_id=command_id, actor=actor)
        level = cadence.level_after(seq)
        if level > self.escalations.get(stage, 0):
            self._escalated(stage=stage, deadline=deadline, level=level,
                            to=cadence.target(level), after_urgings=seq,
                            occurred_at=occurred_at, command_id=None, actor=actor)

    class Urged(LianxinAggregate.Event):
        """Urging of one deadline. ``seq`` is the ordinal of the latest due
        moment it stands for, ``due_at`` when that moment was due. v2 adds
        ``missed``: how many earlier moments (from ``first_due_at``) fell due
        while no timer ran and are merged into this one urging. v1 urgings
        each stood for one moment."""

        class_version = 2
        stage: str
        seq: int
        deadline: datetime
        due_at: datetime
        department: str
        missed: int
        first_due_at: datetime
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(missed=0, first_due_at=state["due_at"])

    @event(Urged)
    def _urged(self, stage: str, seq: int, deadline: datetime, due_at: datetime,
               department: str, missed: int, first_due_at: datetime, occurred_at: datetime,
               command_id: str | None, actor: str | None) -> None:
        self.urgings[stage] = seq
        self.last_urge_due[stage] = due_at
        self.last_urged_at = occurred_at
        self._remember(command_id)

    @event("Escalated")
    def _escalated(self, stage: str, deadline: datetime, level: int, to: str,
                   after_urgings: int, occurred_at: datetime, command_id: str | None,
                   actor: str | None) -> None:
        self.escalation_level = max(self.escalation_level, level)
        if self.deadlines.get(stage) == deadline:
            self.escalations[stage] = max(self.escalations.get(stage, 0), level)
        self._remember(command_id)

    def pause_clock(self, reason: str, occurred_at: datetime, command_id: str | None = None,
                    actor: str | None = None) -> None:
        if self.status not in (WorkOrderStatus.OPEN, WorkOrderStatus.DISPATCHED,
                               WorkOrderStatus.ACCEPTED):
            raise InvariantViolation(f"no clock runs on a work order that is {self.status.value}")
        if self.is_paused:
            raise InvariantViolation("the clock is already paused")
        self._clock_paused(reason=require_text(reason, "reason"),
                           occurred_at=require_aware(occurred_at), command_id=command_id,
                           actor=actor)

    @event("ClockPaused")
    def _clock_paused(self, reason: str, occurred_at: datetime, command_id: str | None,
                      actor: str | None) -> None:
        self.paused_at = occurred_at
        self._remember(command_id)

    def resume_clock(self, occurred_at: datetime, command_id: str | None = None,
                     actor: str | None = None) -> float:
        if not self.is_paused:
            raise InvariantViolation("the clock is not paused")
        assert self.paused_at is not None
        require_aware(occurred_at)
        if occurred_at < self.paused_at:
            raise InvalidValue("a clock cannot resume before it was paused", field="occurred_at")
        return self._end_pause(occurred_at, actor, command_id)

    def _end_pause(self, occurred_at: datetime, actor: str | None,
                   command_id: str | None = None) -> float:
        assert self.paused_at is not None
        paused_s = max(0.0, (occurred_at - self.paused_at).total_seconds())
        self._clock_resumed(paused_seconds=paused_s, occurred_at=occurred_at,
                            command_id=command_id, actor=actor)
        return paused_s

    @event("ClockResumed")
    def _clock_resumed(self, paused_seconds: float, occurred_at: datetime,
                       command_id: str | None, actor: str | None) -> None:
        if self.paused_at is not None:
            # The timers skip urging moments that fell inside a pause.
            self.pauses.append((self.paused_at, occurred_at))
        self.paused_at = None
        self.paused_seconds += paused_seconds
        self._remember(command_id)

    # -- duplicate reports: merge and split ---------------------------------
    def link_caller(self, link_id: str, occurred_at: datetime, call_id: UUID | None = None,
                    customer_ref: str = "", location: dict[str, str] | None = None,
                    summary: str = "", customer: dict[str, Any] | None = None,
                    source_work_order_id: UUID | None = None, command_id: str | None = None,
                    actor: str | None = None,
                    location_refs: dict[str, str] | None = None) -> None:
        """Another caller reported the same fault: linked, not dispatched again.
        The location is stored as in ``open`` (personal kinds in ``pii``)."""
        if not self.is_open or self.status == WorkOrderStatus.RESOLVED:
            raise InvariantViolation(f"cannot merge into a work order that is {self.status.value}")
        if link_id in self.links:
            raise InvariantViolation(f"{link_id} is already linked")
        location = dict(location or {})
        refs = _check_refs(location, location_refs)
        operational, personal = split_location(location)
        pii = {"summary": summary, **({"customer": dict(customer)} if customer else {}),
               **({"location": personal} if personal else {})}
        self._caller_linked(link_id=require_text(link_id, "link_id"), call_id=call_id,
                            customer_ref=customer_ref, location=operational, location_refs=refs,
                            source_work_order_id=source_work_order_id, pii=pii,
                            occurred_at=require_aware(occurred_at), command_id=command_id,
                            actor=actor)

    class CallerLinked(LianxinAggregate.Event):
        """A duplicate report linked to this order. v2 stores the location as
        ``Opened`` v2 does: infrastructure kinds in ``location``, the others
        in ``pii["location"]`` with their pseudonyms in ``location_refs``; v1
        events are moved likewise on read (no pseudonyms)."""

        class_version = 2
        link_id: str
        call_id: UUID | None
        customer_ref: str
        location: dict[str, str]
        location_refs: dict[str, str]
        source_work_order_id: UUID | None
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_location_v1(state)

    @event(CallerLinked)
    def _caller_linked(self, link_id: str, call_id: UUID | None, customer_ref: str,
                       location: dict[str, str], location_refs: dict[str, str],
                       source_work_order_id: UUID | None, pii: dict[str, Any],
                       occurred_at: datetime, command_id: str | None,
                       actor: str | None) -> None:
        self.links[link_id] = {"call_id": call_id, "customer_ref": customer_ref,
                               "location": {**location, **(pii.get("location") or {})},
                               "location_refs": dict(location_refs), "at": occurred_at,
                               "source_work_order_id": source_work_order_id, "split_to": None,
                               "pii": pii}
        if call_id and call_id not in self.call_ids:
            self.call_ids.append(call_id)
        self._remember(command_id)

    def split(self, link_id: str, new_work_order_id: UUID, occurred_at: datetime,
              command_id: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Undo a wrong merge: the linked report becomes its own order."""
        link = self.links.get(link_id)
        if link is None:
            raise InvariantViolation(f"{link_id} is not linked to this work order")
        if link["split_to"] is not None:
            raise InvariantViolation(f"{link_id} was already split off")
        self._split(link_id=link_id, new_work_order_id=new_work_order_id,
                    occurred_at=require_aware(occurred_at), command_id=command_id, actor=actor)
        return link

    @event("Split")
    def _split(self, link_id: str, new_work_order_id: UUID, occurred_at: datetime,
               command_id: str | None, actor: str | None) -> None:
        link = self.links[link_id]
        link["split_to"] = new_work_order_id
        if link["call_id"] in self.call_ids:
            self.call_ids.remove(link["call_id"])
        self._remember(command_id)

    def note_split_from(self, source_id: UUID, link_id: str, occurred_at: datetime,
                        command_id: str | None = None, actor: str | None = None) -> None:
        self._split_from(source_work_order_id=source_id, link_id=link_id,
                         occurred_at=require_aware(occurred_at), command_id=command_id,
                         actor=actor)

    @event("SplitFrom")
    def _split_from(self, source_work_order_id: UUID, link_id: str, occurred_at: datetime,
                    command_id: str | None, actor: str | None) -> None:
        self.split_from = source_work_order_id
        if self.status == WorkOrderStatus.MERGED:
            # A merged order split out again carries on where it stood.
            self.status = (WorkOrderStatus.DISPATCHED if self.department
                           else WorkOrderStatus.OPEN)
            self.merged_into = None
        self._remember(command_id)

    def merge_into(self, target_id: UUID, occurred_at: datetime, command_id: str | None = None,
                   actor: str | None = None) -> None:
        """An order found to duplicate another after it was opened."""
        if target_id == self.id:
            raise InvariantViolation("a work order cannot be merged into itself")
        if self.status not in (WorkOrderStatus.OPEN, WorkOrderStatus.DISPATCHED,
                               WorkOrderStatus.ACCEPTED):
            raise InvariantViolation(f"cannot merge a work order that is {self.status.value}")
        self._merged_into(target_id=target_id, occurred_at=require_aware(occurred_at),
                          command_id=command_id, actor=actor)

    @event("MergedInto")
    def _merged_into(self, target_id: UUID, occurred_at: datetime, command_id: str | None,
                     actor: str | None) -> None:
        self.status = WorkOrderStatus.MERGED
        self.merged_into = target_id
        self._remember(command_id)

    # -- referrals with public services (12345 / 110 / 119) -------------------
    def receive_referral(self, partner: str, reference: str, occurred_at: datetime,
                         command_id: str | None = None, actor: str | None = None) -> None:
        _partner(partner)
        if self.referral is not None:
            raise InvariantViolation("the work order already records its referral")
        self._referral_received(partner=partner, reference=require_text(reference, "reference"),
                                occurred_at=require_aware(occurred_at), command_id=command_id,
                                actor=actor)

    @event("ReferralReceived")
    def _referral_received(self, partner: str, reference: str, occurred_at: datetime,
                           command_id: str | None, actor: str | None) -> None:
        self.referral = {"partner": partner, "reference": reference}
        self._remember(command_id)

    def refer_out(self, partner: str, reference: str, occurred_at: datetime,
                  command_id: str | None = None, actor: str | None = None) -> None:
        _partner(partner)
        if not self.is_open:
            raise InvariantViolation(f"cannot refer a work order that is {self.status.value}")
        self._referred_out(partner=partner, reference=require_text(reference, "reference"),
                           occurred_at=require_aware(occurred_at), command_id=command_id,
                           actor=actor)

    @event("ReferredOut")
    def _referred_out(self, partner: str, reference: str, occurred_at: datetime,
                      command_id: str | None, actor: str | None) -> None:
        self.referrals_out.append({"partner": partner, "reference": reference})
        self._remember(command_id)

    def send_reply(self, partner: str, text: str, occurred_at: datetime,
                   command_id: str | None = None, actor: str | None = None) -> None:
        """The result reported back to the partner that referred the order."""
        known = ([self.referral] if self.referral else []) + self.referrals_out
        match = [r for r in known if r["partner"] == partner]
        if not match:
            raise InvariantViolation(f"no referral with {partner} on this work order")
        self._reply_sent(partner=partner, reference=match[0]["reference"],
                         pii={"text": require_text(text, "text")},
                         occurred_at=require_aware(occurred_at), command_id=command_id,
                         actor=actor)

    @event("ReplySent")
    def _reply_sent(self, partner: str, reference: str, pii: dict[str, Any],
                    occurred_at: datetime, command_id: str | None, actor: str | None) -> None:
        self.replies += 1
        self._remember(command_id)

    # -- callbacks (回访) ------------------------------------------------------
    def schedule_callback(self, due_at: datetime, give_up_at: datetime, retry_after: str,
                          max_attempts: int, assignee: str, team: str, policy_version: str,
                          occurred_at: datetime, calendar_incomplete: bool = False,
                          command_id: str | None = None, actor: str | None = None) -> None:
        if self.status != WorkOrderStatus.RESOLVED:
            raise InvariantViolation("a callback task follows a resolution")
        if self.callback_task and self.callback_task["state"] == "pending":
            raise InvariantViolation("a callback task is already pending")
        task = (self.callback_task["task"] + 1) if self.callback_task else 1
        self._callback_task_scheduled(
            task=task, due_at=require_aware(due_at, "due_at"),
            give_up_at=require_aware(give_up_at, "give_up_at"),
            retry_after=retry_after, max_attempts=max_attempts,
            assignee=assignee or "", team=team or "", policy_version=policy_version,
            calendar_incomplete=bool(calendar_incomplete),
            occurred_at=require_aware(occurred_at), command_id=command_id, actor=actor)

    class CallbackTaskScheduled(LianxinAggregate.Event):
        """A callback task. v2 adds ``calendar_incomplete``: its working-day
        moments were counted over a year the calendar file does not list."""

        class_version = 2
        task: int
        due_at: datetime
        give_up_at: datetime
        retry_after: str
        max_attempts: int
        assignee: str
        team: str
        policy_version: str
        calendar_incomplete: bool
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(calendar_incomplete=False)

    @event(CallbackTaskScheduled)
    def _callback_task_scheduled(self, task: int, due_at: datetime, give_up_at: datetime,
                                 retry_after: str, max_attempts: int, assignee: str,
                                 team: str, policy_version: str, calendar_incomplete: bool,
                                 occurred_at: datetime, command_id: str | None,
                                 actor: str | None) -> None:
        self.callback_task = {"task": task, "due_at": due_at, "next_due_at": due_at,
                              "give_up_at": give_up_at, "attempts": 0, "state": "pending",
                              "max_attempts": max_attempts, "assignee": assignee, "team": team,
                              "scheduled_at": occurred_at}
        self._remember(command_id)

    def attempt_callback(self, result: str, occurred_at: datetime,
                         satisfaction: int | None = None, reason: str = "",
                         next_due_at: datetime | None = None, command_id: str | None = None,
                         actor: str | None = None) -> str:
        """Records one attempt; returns what became of the task: ``reached``,
        ``refused``, ``retry`` or ``gave_up`` (or ``untracked`` without a task)."""
        if self.status not in (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED):
            raise InvariantViolation("a callback follows a resolved work order")
        if result not in CALLBACK_RESULTS:
            raise InvalidValue(f"result must be one of {sorted(CALLBACK_RESULTS)}", field="result")
        if satisfaction is not None and (isinstance(satisfaction, bool)
                                         or not isinstance(satisfaction, int)
                                         or not 1 <= satisfaction <= 5):
            raise InvalidValue("satisfaction must be 1..5", field="satisfaction")
        if satisfaction is not None and result != "reached":
            raise InvalidValue("satisfaction needs a reached callback", field="satisfaction")
        require_aware(occurred_at)
        task = self.callback_task
        if task is not None and task["state"] != "pending":
            raise InvariantViolation(f"the callback task is {task['state']}")
        if task is None:
            outcome, attempt, task_no = "untracked", len(self.callbacks) + 1, 0
            next_due_at = None
        else:
            attempt, task_no = task["attempts"] + 1, task["task"]
            if result == "reached":
                outcome, next_due_at = "reached", None
            elif result == "refused":
                outcome, next_due_at = "refused", None
            elif attempt >= task["max_attempts"] or occurred_at >= task["give_up_at"]:
                outcome, next_due_at = "gave_up", None
            else:
                outcome = "retry"
                next_due_at = min(next_due_at or task["give_up_at"], task["give_up_at"])
        self._callback_recorded(result=result, satisfaction=satisfaction, reason=reason or "",
                                task=task_no, attempt=attempt, outcome=outcome,
                                next_due_at=next_due_at, occurred_at=occurred_at,
                                command_id=command_id, actor=actor)
        return outcome

    class CallbackRecorded(LianxinAggregate.Event):
        """One callback attempt. v2 adds the callback task it belongs to, the
        attempt number, what became of the task (``outcome``) and when the
        next attempt is due. v1 events (before callback tasks) are attempts
        outside any task: task 0, outcome ``untracked``."""

        class_version = 2
        result: str
        satisfaction: int | None
        reason: str
        task: int
        attempt: int | None
        outcome: str
        next_due_at: datetime | None
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(task=0, attempt=None, outcome="untracked", next_due_at=None)

    @event(CallbackRecorded)
    def _callback_recorded(self, result: str, satisfaction: int | None, reason: str, task: int,
                           attempt: int | None, outcome: str, next_due_at: datetime | None,
                           occurred_at: datetime, command_id: str | None,
                           actor: str | None) -> None:
        self.callbacks.append({"at": occurred_at, "result": result, "satisfaction": satisfaction,
                               "task": task, "attempt": attempt, "outcome": outcome})
        if task and self.callback_task is not None and task == self.callback_task["task"]:
            self.callback_task["attempts"] = attempt
            self.callback_task["next_due_at"] = next_due_at
            if outcome != "retry":
                self.callback_task["state"] = outcome
        self._remember(command_id)

    def reassign_callback(self, assignee: str, occurred_at: datetime, team: str | None = None,
                          command_id: str | None = None, actor: str | None = None) -> None:
        """Hand the pending callback to another agent (and team): the first
        contact may be off shift, or the team lead balances the worklist."""
        t = self.callback_task
        if t is None or t["state"] != "pending":
            raise InvariantViolation("no callback task is pending")
        assignee = require_text(assignee, "assignee")
        team = t["team"] if team is None else require_text(team, "team")
        if (assignee, team) == (t["assignee"], t["team"]):
            raise InvariantViolation(f"the callback is already assigned to {assignee} ({team})")
        self._callback_reassigned(task=t["task"], assignee=assignee, team=team,
                                  previous_assignee=t["assignee"], previous_team=t["team"],
                                  occurred_at=require_aware(occurred_at), command_id=command_id,
                                  actor=actor)

    @event("CallbackReassigned")
    def _callback_reassigned(self, task: int, assignee: str, team: str, previous_assignee: str,
                             previous_team: str, occurred_at: datetime, command_id: str | None,
                             actor: str | None) -> None:
        assert self.callback_task is not None
        self.callback_task["assignee"] = assignee
        self.callback_task["team"] = team
        self._remember(command_id)

    def give_up_callback(self, task: int, occurred_at: datetime, command_id: str | None = None,
                         actor: str | None = None) -> None:
        """The retry window closed without reaching the customer."""
        t = self.callback_task
        if t is None or t["task"] != task or t["state"] != "pending":
            raise InvariantViolation(f"callback task {task} is not pending")
        if occurred_at < t["give_up_at"]:
            raise InvariantViolation("the callback retry window is still open")
        self._callback_gave_up(task=task, attempts=t["attempts"], give_up_at=t["give_up_at"],
                               occurred_at=require_aware(occurred_at), command_id=command_id,
                               actor=actor)

    @event("CallbackGaveUp")
    def _callback_gave_up(self, task: int, attempts: int, give_up_at: datetime,
                          occurred_at: datetime, command_id: str | None,
                          actor: str | None) -> None:
        assert self.callback_task is not None
        self.callback_task["state"] = "gave_up"
        self.callback_task["next_due_at"] = None
        self._remember(command_id)


PARTNERS = {"12345", "110", "119", "120", "122"}


def _partner(partner: str) -> str:
    if partner not in PARTNERS:
        raise InvalidValue(f"partner must be one of {sorted(PARTNERS)}", field="partner")
    return partner


def location_keys(location: dict[str, str], kinds: tuple[str, ...]) -> list[str]:
    """Normalised "kind:value" keys an outage is matched on (outage areas are
    published notices, matched in the clear and never stored from here)."""
    keys = []
    for kind in kinds:
        value = normalise_place(location.get(kind) or "")
        if value:
            keys.append(f"{kind}:{value}")
    return keys


def fault_location_keys(location: dict[str, str], refs: dict[str, str],
                        kinds: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """Per merge kind of the location: the key of its ``FaultLocation`` and,
    for a personal kind, the v1 key it had before pseudonyms (or None).

    An infrastructure kind keeps its clear key ("feeder:f12"), as in v1. A
    personal kind (an address) is keyed "kind#<pseudonym>" (``refs``), so
    neither the key nor the id derived from it holds the address; its v1
    key ("address:8 pine rd") is only computed, to find a FaultLocation
    recorded before pseudonyms (see ``FaultLocation``), never stored."""
    keys: list[tuple[str, str | None]] = []
    for kind in kinds:
        raw = location.get(kind)
        value = normalise_place(raw) if isinstance(raw, str) else ""
        if kind in INFRASTRUCTURE_KINDS:
            if value:
                keys.append((f"{kind}:{value}", None))
        elif refs.get(kind):
            keys.append((f"{kind}#{refs[kind]}", f"{kind}:{value}" if value else None))
    return keys


class FaultLocation(LianxinAggregate):
    """The latest fault order for one place (a transformer, a feeder, an
    address). Handlers read it in the same unit of work as the new report, so
    two simultaneous reports of one fault cannot both be dispatched: the
    second conflicts, is retried, and merges.

    Its id is ``fault_location_id(key)``. For an address the key is the
    pseudonym "address#<HMAC>" (``fault_location_keys``). Places recorded
    before that (Created v1) have the id of their clear key: they still load
    (the key moves to ``pii`` on read) and handlers still look them up by
    the clear key of a new report, but never write to them again: the next
    order at that address starts a pseudonymous FaultLocation, which is
    looked up first."""

    class Created(LianxinAggregate.Created):
        """v2: ``key`` is "kind:value" for an infrastructure kind and
        "kind#<pseudonym>" for a personal one (an address). v1 keys were all
        "kind:value": a v1 key of a personal kind moves to ``pii["key"]`` on
        read and ``key`` becomes "kind#" (its pseudonym was never recorded);
        that place keeps the id derived from its clear key."""

        class_version = 2
        key: str
        work_order_id: UUID
        opened_at: datetime
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            key = state.get("key") or ""
            kind, sep, _ = key.partition(":")
            if sep and kind not in INFRASTRUCTURE_KINDS:
                state["key"] = f"{kind}#"
                state["pii"] = {"key": key}
            else:
                state["pii"] = {}

    @event(Created)
    def __init__(self, *, key: str, work_order_id: UUID, opened_at: datetime,
                 pii: dict[str, Any], occurred_at: datetime, command_id: str | None,
                 actor: str | None) -> None:
        self.key = key
        self.work_order_id = work_order_id
        self.opened_at = opened_at
        self._remember(command_id)

    @classmethod
    def start(cls, key: str, work_order_id: UUID, opened_at: datetime,
              actor: str | None = None) -> FaultLocation:
        """``key`` from ``fault_location_keys``: never a clear address."""
        kind, sep, _ = key.partition(":")
        if sep and kind not in INFRASTRUCTURE_KINDS:
            raise InvalidValue(f"a {kind} is personal data: key its place by its pseudonym",
                               field="key")
        return cls._create(cls.Created, id=fault_location_id(key), key=key,
                           work_order_id=work_order_id, opened_at=opened_at, pii={},
                           occurred_at=opened_at, command_id=None, actor=actor)

    def note_order(self, work_order_id: UUID, opened_at: datetime,
                   actor: str | None = None) -> None:
        if work_order_id == self.work_order_id:
            return
        self._order_noted(work_order_id=work_order_id, opened_at=opened_at,
                          occurred_at=opened_at, command_id=None, actor=actor)

    @event("OrderNoted")
    def _order_noted(self, work_order_id: UUID, opened_at: datetime, occurred_at: datetime,
                     command_id: str | None, actor: str | None) -> None:
        self.work_order_id = work_order_id
        self.opened_at = opened_at


def fault_location_id(key: str) -> UUID:
    return stable_id("fault-location", key)
