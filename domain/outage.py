"""Outage notices (停电信息): planned and temporary outages with the area they
cover, when, and why.

Customers query them by self-service, and a fault call from a covered area
during an outage is answered as information instead of opening a repair
order. A notice published less than the required days ahead (7 by default,
from the policy) is flagged when it is published: that is a service-promise
breach the center reports on, whatever happens later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import LianxinAggregate, require_aware, require_text, stable_id
from domain.errors import InvalidValue, InvariantViolation

KINDS = {"planned", "temporary"}


def outage_id_for(reference: str) -> UUID:
    return stable_id("outage", reference)


def outage_area_id(key: str) -> UUID:
    return stable_id("outage-area", key)


def area_key(area: str) -> str:
    """"feeder:F12" -> "feeder:f12"; a bare name is an ``area:`` key."""
    text = require_text(area, "areas")
    kind, sep, value = text.partition(":")
    if not sep:
        kind, value = "area", text
    kind, value = kind.strip().lower(), " ".join(value.lower().split())
    if not kind or not value:
        raise InvalidValue(f"area {area!r} must be 'kind:value' or a name", field="areas")
    return f"{kind}:{value}"


class Outage(LianxinAggregate):
    @event("Published")
    def __init__(self, *, reference: str, kind: str, areas: list[str], start: datetime,
                 end: datetime, reason: str, notice_days: int, short_notice: bool,
                 occurred_at: datetime, command_id: str | None, actor: str | None) -> None:
        self.reference = reference
        self.kind = kind
        self.areas = list(areas)
        self.start = start
        self.end = end
        self.reason = reason
        self.published_at = occurred_at
        self.short_notice = short_notice
        self.cancelled_at: datetime | None = None
        self.enquiries = 0
        self._remember(command_id)

    @classmethod
    def publish(cls, *, reference: str, kind: str, areas: list[str], start: datetime,
                end: datetime, reason: str, occurred_at: datetime, notice_days: int = 7,
                command_id: str | None = None, actor: str | None = None) -> Outage:
        require_text(reference, "reference")
        if kind not in KINDS:
            raise InvalidValue(f"kind must be one of {sorted(KINDS)}", field="kind")
        if not isinstance(areas, list) or not areas:
            raise InvalidValue("an outage covers at least one area", field="areas")
        keys = sorted({area_key(a) for a in areas})
        require_aware(start, "start")
        require_aware(end, "end")
        require_aware(occurred_at)
        if end <= start:
            raise InvalidValue("an outage ends after it starts", field="end")
        short = start - occurred_at < timedelta(days=notice_days)
        return cls._create(cls.Published, id=outage_id_for(reference), reference=reference,
                           kind=kind, areas=keys, start=start, end=end,
                           reason=require_text(reason, "reason"), notice_days=notice_days,
                           short_notice=short, occurred_at=occurred_at, command_id=command_id,
                           actor=actor)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def covers(self, key: str, at: datetime) -> bool:
        return not self.cancelled and self.start <= at < self.end and key in self.areas

    def revise(self, start: datetime, end: datetime, reason: str, occurred_at: datetime,
               command_id: str | None = None, actor: str | None = None) -> None:
        """A changed window (the repair ran late); the area stays the same."""
        if self.cancelled:
            raise InvariantViolation("a cancelled outage cannot be revised")
        require_aware(start, "start")
        require_aware(end, "end")
        if end <= start:
            raise InvalidValue("an outage ends after it starts", field="end")
        self._revised(start=start, end=end, reason=require_text(reason, "reason"),
                      occurred_at=require_aware(occurred_at), command_id=command_id,
                      actor=actor)

    @event("Revised")
    def _revised(self, start: datetime, end: datetime, reason: str, occurred_at: datetime,
                 command_id: str | None, actor: str | None) -> None:
        self.start, self.end, self.reason = start, end, reason
        self._remember(command_id)

    def cancel(self, reason: str, occurred_at: datetime, command_id: str | None = None,
               actor: str | None = None) -> None:
        if self.cancelled:
            raise InvariantViolation("the outage is already cancelled")
        self._cancelled(reason=require_text(reason, "reason"),
                        occurred_at=require_aware(occurred_at), command_id=command_id,
                        actor=actor)

    @event("Cancelled")
    def _cancelled(self, reason: str, occurred_at: datetime, command_id: str | None,
                   actor: str | None) -> None:
        self.cancelled_at = occurred_at
        self._remember(command_id)


    def answer_enquiry(self, area: str, occurred_at: datetime, call_id: UUID | None = None,
                       work_order_type: str = "", channel: str = "", customer_ref: str = "",
                       pii: dict[str, Any] | None = None, command_id: str | None = None,
                       actor: str | None = None) -> None:
        """A fault report answered from this notice instead of opening a
        repair order. Recorded here, not on the call, so the answers given
        from one notice can be counted and audited (the call's id links them)."""
        require_aware(occurred_at)
        if not self.covers(area, occurred_at):
            raise InvariantViolation(f"outage {self.reference} does not cover {area} then")
        self._enquiry_answered(area=area, call_id=call_id, work_order_type=work_order_type,
                               channel=channel, customer_ref=customer_ref, pii=dict(pii or {}),
                               occurred_at=occurred_at, command_id=command_id, actor=actor)

    @event("EnquiryAnswered")
    def _enquiry_answered(self, area: str, call_id: UUID | None, work_order_type: str,
                          channel: str, customer_ref: str, pii: dict[str, Any],
                          occurred_at: datetime, command_id: str | None,
                          actor: str | None) -> None:
        self.enquiries += 1
        self._remember(command_id)


class OutageArea(LianxinAggregate):
    """The outages ever published for one area key, so that a fault report
    finds the outages covering its location in the same unit of work (no
    read-model lag between publishing a notice and answering calls by it)."""

    @event("Created")
    def __init__(self, *, key: str, outage_id: UUID, occurred_at: datetime,
                 command_id: str | None, actor: str | None) -> None:
        self.key = key
        self.outage_ids: list[UUID] = [outage_id]

    @classmethod
    def start(cls, key: str, outage_id: UUID, occurred_at: datetime,
              actor: str | None = None) -> OutageArea:
        return cls._create(cls.Created, id=outage_area_id(key), key=key, outage_id=outage_id,
                           occurred_at=occurred_at, command_id=None, actor=actor)

    def add(self, outage_id: UUID, occurred_at: datetime, actor: str | None = None) -> None:
        if outage_id not in self.outage_ids:
            self._added(outage_id=outage_id, occurred_at=occurred_at, command_id=None,
                        actor=actor)

    @event("OutageAdded")
    def _added(self, outage_id: UUID, occurred_at: datetime, command_id: str | None,
               actor: str | None) -> None:
        self.outage_ids.append(outage_id)
