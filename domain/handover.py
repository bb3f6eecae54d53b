"""Shift handover (交接班): what the outgoing duty shift hands over, and the
incoming shift's acknowledgement that it read it.

The lists are a snapshot taken when the handover is written (open calls,
open and overdue work orders, pending callbacks): later changes do not
rewrite what was handed over, which is the point of the record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import LianxinAggregate, require_aware, require_text, stable_id
from domain.errors import InvalidValue, InvariantViolation

SNAPSHOT_LISTS = ("open_calls", "open_orders", "overdue_orders", "pending_callbacks")


def handover_id_for(key: str) -> UUID:
    return stable_id("handover", key)


class Handover(LianxinAggregate):
    @event("Created")
    def __init__(self, *, from_shift: str, to_shift: str, snapshot: dict[str, list[str]],
                 pii: dict[str, Any], occurred_at: datetime, command_id: str | None,
                 actor: str | None) -> None:
        self.from_shift = from_shift
        self.to_shift = to_shift
        self.snapshot = {k: list(v) for k, v in snapshot.items()}
        self.created_at = occurred_at
        self.created_by = actor
        self.acknowledged_by: str | None = None
        self.acknowledged_at: datetime | None = None
        self._remember(command_id)

    @classmethod
    def create(cls, *, key: str, from_shift: str, to_shift: str,
               snapshot: dict[str, list[str]], occurred_at: datetime, notes: str = "",
               command_id: str | None = None, actor: str | None = None) -> Handover:
        require_text(from_shift, "from_shift")
        require_text(to_shift, "to_shift")
        if from_shift == to_shift:
            raise InvalidValue("a handover is between two different shifts", field="to_shift")
        unknown = set(snapshot) - set(SNAPSHOT_LISTS)
        if unknown:
            raise InvalidValue(f"unknown snapshot lists {sorted(unknown)}", field="snapshot")
        clean = {k: [str(x) for x in snapshot.get(k, [])] for k in SNAPSHOT_LISTS}
        # Notes are free text written about callers: personal data.
        return cls._create(cls.Created, id=handover_id_for(key), from_shift=from_shift,
                           to_shift=to_shift, snapshot=clean,
                           pii={"notes": notes} if notes else {},
                           occurred_at=require_aware(occurred_at), command_id=command_id,
                           actor=actor)

    def acknowledge(self, by: str, occurred_at: datetime, command_id: str | None = None,
                    actor: str | None = None) -> None:
        """The incoming shift read the handover back (it has no other step)."""
        if self.acknowledged_by is not None:
            raise InvariantViolation(f"already acknowledged by {self.acknowledged_by}")
        require_aware(occurred_at)
        if occurred_at < self.created_at:
            raise InvalidValue("acknowledged before it was written", field="occurred_at")
        self._acknowledged(by=require_text(by, "by"), occurred_at=occurred_at,
                           command_id=command_id, actor=actor)

    @event("Acknowledged")
    def _acknowledged(self, by: str, occurred_at: datetime, command_id: str | None,
                      actor: str | None) -> None:
        self.acknowledged_by = by
        self.acknowledged_at = occurred_at
        self._remember(command_id)
