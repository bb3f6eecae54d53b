"""Who read a conversation's recording or timeline, a past state, when, and why.

Regulators ask who listened to a customer's call, so every read of a
recording, a replay timeline or a past state (of a call, an agent, a work
order, the center's wallboard) is itself an event, in the same hash-chained
log as the call. One AccessLog per subject (a call, an agent, a work order,
the center), so "who read this call" is one aggregate to load. The reader's stated reason is free text and may
name the customer: it lives in ``pii`` only (see domain.base).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import LianxinAggregate, require_aware, require_text, stable_id
from domain.errors import InvalidValue

SUBJECT_KINDS = {"call", "agent", "work_order", "center"}
# What can be read: the replay timeline, one recording, a past state, an
# export, and the list of accesses itself (its reasons may name the customer).
RESOURCE_KINDS = {"timeline", "recording", "state", "export", "accesses"}


def access_log_id_for(subject_kind: str, subject_id: str) -> UUID:
    return stable_id("access-log", f"{subject_kind}:{subject_id}")


class AccessLog(LianxinAggregate):
    @event("Opened")
    def __init__(self, *, subject_kind: str, subject_id: str, occurred_at: datetime,
                 command_id: str | None, actor: str | None) -> None:
        self.subject_kind = subject_kind
        self.subject_id = subject_id
        self.opened_at = occurred_at
        self.accesses: list[dict[str, Any]] = []
        self._remember(command_id)

    @classmethod
    def open(cls, *, subject_kind: str, subject_id: str, occurred_at: datetime,
             command_id: str | None = None, actor: str | None = None) -> AccessLog:
        if subject_kind not in SUBJECT_KINDS:
            raise InvalidValue(f"subject_kind must be one of {sorted(SUBJECT_KINDS)}",
                               field="subject_kind")
        require_text(subject_id, "subject_id")
        require_aware(occurred_at)
        return cls._create(cls.Opened, id=access_log_id_for(subject_kind, subject_id),
                           subject_kind=subject_kind, subject_id=subject_id,
                           occurred_at=occurred_at, command_id=None, actor=actor)

    def record(self, *, resource_kind: str, resource: str, reason: str, occurred_at: datetime,
               command_id: str | None = None, actor: str | None = None) -> None:
        if resource_kind not in RESOURCE_KINDS:
            raise InvalidValue(f"resource_kind must be one of {sorted(RESOURCE_KINDS)}",
                               field="resource_kind")
        if not isinstance(actor, str) or not actor.strip():
            raise InvalidValue("who is reading must be named (X-Actor)", field="actor")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidValue("a reason for reading is required", field="reason")
        self._accessed(resource_kind=resource_kind, resource=resource or "",
                       pii={"reason": reason.strip()}, occurred_at=require_aware(occurred_at),
                       command_id=command_id, actor=actor.strip())

    @event("Accessed")
    def _accessed(self, resource_kind: str, resource: str, pii: dict[str, Any],
                  occurred_at: datetime, command_id: str | None, actor: str | None) -> None:
        # The reason stays in the event's pii only: not copied into state.
        self.accesses.append({"at": occurred_at, "actor": actor, "resource_kind": resource_kind,
                              "resource": resource})
        self._remember(command_id)
