"""Errors the write side raises besides domain errors."""

from domain.errors import DomainError


class ConcurrencyConflict(DomainError):
    """Another writer changed the aggregate (HTTP 409). Retried by the bus
    where that is safe; surfaced when the client pinned ``expected_version``."""

    code = "concurrency-conflict"


class AlreadyApplied(Exception):
    """Raised inside a handler when its command id was applied before: the
    bus turns it into a duplicate outcome, not an error."""

    def __init__(self, aggregate_id: object) -> None:
        super().__init__(str(aggregate_id))
        self.aggregate_id = aggregate_id
