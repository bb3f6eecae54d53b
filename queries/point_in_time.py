"""State as of any past instant, reconstructed from the stored events.

"As of t" means: the events whose source time (``occurred_at``) is at or
before t. For one aggregate that is the longest prefix of its events (in
version order) that occurred by t: a late event recorded after a later one is
not replayed out of order, because the aggregate's own rules assume its
order. Personal data (``pii``) is left out of the events before they are
folded, so neither it nor values the aggregate copies out of it appear.
The wallboard folds every event of the log that occurred by t, in log
order, with the live wallboard's own fold (projections.wallboard), so "the
wallboard as of t" is, by construction, what the live wallboard showed at t
once it had seen those events.

No snapshots are used: every answer is a fold from the first event.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.errors import InvalidValue, NotFound
from queries.audit_trail import chain_source
from queries.replay import plain, stored_events


def _require_aware(at: datetime) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidValue("the instant must carry a timezone offset", field="at")
    return at


def aggregate_as_of(lianxin: Any, aggregate_id: UUID, at: datetime, *,
                    kind: type | None = None, what: str = "aggregate") -> dict[str, Any]:
    _require_aware(at)
    events = stored_events(lianxin.app, aggregate_id)
    if not events:
        raise NotFound(f"{what} {aggregate_id} not found", id=str(aggregate_id))
    aggregate, position = None, 0
    for pos, event in events:
        if event.occurred_at > at:
            break
        aggregate = _without_pii(event).mutate(aggregate)
        position = pos
    if aggregate is None:
        raise NotFound(f"{what} {aggregate_id} did not exist yet at {at.isoformat()}",
                       id=str(aggregate_id))
    if kind is not None and not isinstance(aggregate, kind):
        raise NotFound(f"{aggregate_id} is not a {what}", id=str(aggregate_id))
    state = {k: plain(v) for k, v in sorted(vars(aggregate).items())
             if not k.startswith("_") and k != "pii"}
    return {"id": str(aggregate_id), "type": type(aggregate).__name__, "as_of": at.isoformat(),
            "version": aggregate.version, "position": position,
            "later_events": len(events) - aggregate.version, "state": state}


def _without_pii(event: Any) -> Any:
    """The event with its personal data left out. Dropping the ``pii``
    attribute from the folded state is not enough: aggregates copy values
    out of it into memory (a dialed customer number, an agent's name, an
    address), and a past state must not show them either."""
    if not getattr(event, "pii", None):
        return event
    return dataclasses.replace(event, pii={})


def call_as_of(lianxin: Any, call_id: UUID, at: datetime) -> dict[str, Any]:
    from domain.call import Call

    return aggregate_as_of(lianxin, call_id, at, kind=Call, what="call")


def agent_as_of(lianxin: Any, employee_no: str, at: datetime) -> dict[str, Any]:
    from domain.agent import Agent, agent_id_for

    return aggregate_as_of(lianxin, agent_id_for(employee_no), at, kind=Agent,
                           what=f"agent {employee_no}")


def work_order_as_of(lianxin: Any, work_order_id: UUID, at: datetime) -> dict[str, Any]:
    from domain.work_order import WorkOrder

    return aggregate_as_of(lianxin, work_order_id, at, kind=WorkOrder, what="work order")


def _decode_all(lianxin: Any, records: list[tuple[int, Any, int, str, bytes]]) -> list[Any]:
    from eventsourcing.persistence import StoredEvent

    mapper = lianxin.app.mapper
    out = []
    for _pos, oid, version, topic, state in records:
        oid = oid if isinstance(oid, UUID) else UUID(str(oid))
        out.append(mapper.to_domain_event(StoredEvent(oid, version, topic, state)))
    return out


def events_as_of(lianxin: Any, at: datetime, after: int = 0) -> list[Any]:
    """Every event after position ``after`` that occurred by ``at``, in log
    order (found through the chain table's source-time index)."""
    from commands.event_store import occurred_us

    _require_aware(at)
    src = chain_source(lianxin)
    try:
        positions = src.positions_between_times(None, occurred_us(at.isoformat()) + 1, after)
        records = src.records_at(positions) if positions else []
    finally:
        src.close()
    return _decode_all(lianxin, records)


def wallboard_as_of(lianxin: Any, at: datetime, *, threshold_s: int | None = None,
                    use_snapshots: bool = True) -> dict[str, Any]:
    """The live wallboard's fold and picture over the events that occurred by
    ``at``; starts from a snapshot when one qualifies (same answer, less work:
    see queries/wallboard_snapshots.py)."""
    from zoneinfo import ZoneInfo

    from commands.event_store import occurred_us
    from projections.wallboard import MemoryWallboardStore, fold, render
    from queries import wallboard_snapshots

    _require_aware(at)
    settings = lianxin.settings
    threshold = (getattr(settings, "service_level_threshold_s", 20)
                 if threshold_s is None else threshold_s)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        raise InvalidValue("threshold_s must be a whole number of seconds >= 0",
                           field="threshold_s")
    at_us = occurred_us(at.isoformat())
    assert at_us is not None
    src = chain_source(lianxin)
    try:
        snapshot = wallboard_snapshots.usable(lianxin, at_us, src) if use_snapshots else None
        after, store = snapshot if snapshot is not None else (0, MemoryWallboardStore())
        positions = src.positions_between_times(None, at_us + 1, after)
        records = src.records_at(positions) if positions else []
    finally:
        src.close()
    tz = ZoneInfo(settings.timezone)
    for event in _decode_all(lianxin, records):
        fold(store, event, tz)
    return render(store, at=at, tz=tz, threshold_s=threshold)


def parse_instant(text: str, field: str = "timestamp") -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidValue(f"{text!r} is not an ISO-8601 instant", field=field) from None
    return _require_aware(when) if when.tzinfo else _fail_naive(text, field)


def _fail_naive(text: str, field: str) -> datetime:
    raise InvalidValue(f"{text!r} must carry a timezone offset, e.g. +08:00", field=field)
