"""The command bus: runs handlers, saves what they changed, and commits
commands that arrive together in one transaction.

Why batching: SQLite fsyncs every commit and PostgreSQL serialises writers on
a table lock, so one commit per command caps a busy center at the disk's
commit rate. Commands that arrive while a commit is in progress are queued;
the next thread to take the write lock runs the whole queue against one unit
of work and commits it once ("flat combining"). Every caller still returns
only after its own events are durable: an acknowledged command is never lost.

A handler that raises leaves no trace: the batch is re-run without it. A
batch that meets a conflict (another process wrote the same aggregate) is
re-run one command at a time with fresh state, retried a few times.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.application import CallCenter
from commands.errors import AlreadyApplied, ConcurrencyConflict
from domain.base import LianxinAggregate
from domain.errors import NotFound

A = TypeVar("A", bound=LianxinAggregate)

MAX_BATCH = 512
CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class Outcome:
    """What a command did. ``position`` is the notification-log position its
    events are complete up to: pass it to a query to read your own writes."""

    aggregate_id: UUID | None
    position: int
    new_events: int
    duplicate: bool = False
    result: Any = None


class UnitOfWork:
    """Aggregates a handler read or created, kept for one save."""

    def __init__(self, app: CallCenter, ctx: Any = None) -> None:
        self.app = app
        self.ctx = ctx
        self._seen: dict[UUID, LianxinAggregate] = {}

    def get(self, cls: type[A], aggregate_id: UUID, *, what: str | None = None) -> A:
        agg = self._seen.get(aggregate_id)
        if agg is None:
            try:
                agg = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                raise NotFound(f"{what or cls.__name__} {aggregate_id} not found",
                               id=str(aggregate_id)) from None
            self._seen[aggregate_id] = agg
        if not isinstance(agg, cls):
            raise NotFound(f"{aggregate_id} is not a {cls.__name__}", id=str(aggregate_id))
        return agg  # type: ignore[return-value]

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            return self.get(cls, aggregate_id)
        except NotFound:
            return None

    def add(self, aggregate: LianxinAggregate) -> None:
        self._seen[aggregate.id] = aggregate

    def pending(self) -> list[LianxinAggregate]:
        return [a for a in self._seen.values() if a.pending_events]

    def pending_count(self) -> int:
        return sum(len(a.pending_events) for a in self._seen.values())


def guard(aggregate: LianxinAggregate, command_id: str | None,
          expected_version: int | None = None) -> None:
    """Idempotency and optimistic concurrency, checked before a handler acts."""
    if aggregate.has_applied(command_id):
        raise AlreadyApplied(aggregate.id)
    if expected_version is not None and aggregate.version != expected_version:
        raise ConcurrencyConflict(
            f"expected version {expected_version}, aggregate is at {aggregate.version}",
            aggregate_id=str(aggregate.id), version=aggregate.version,
        )


Handler = Callable[[UnitOfWork, Any], Any]


@dataclass
class _Request:
    handler: Handler
    command: Any
    done: threading.Event
    outcome: Outcome | None = None
    error: BaseException | None = None
    aggregate_id: UUID | None = None
    result: Any = None
    new_events: int = 0
    duplicate: bool = False


class CommandBus:
    def __init__(self, app: CallCenter, ctx: Any = None, *, batching: bool = True,
                 max_batch: int = MAX_BATCH) -> None:
        self.app = app
        self.ctx = ctx
        self.batching = batching
        self.max_batch = max_batch if batching else 1
        self._queue: deque[_Request] = deque()
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Called with the new head position after every commit (in-process
        projections use it to wake up at once instead of polling)."""
        self._listeners.append(listener)

    # -- public ------------------------------------------------------------
    def execute(self, handler: Handler, command: Any) -> Outcome:
        req = _Request(handler, command, threading.Event())
        with self._queue_lock:
            self._queue.append(req)
        while not req.done.is_set():
            if self._write_lock.acquire(timeout=0.002):
                try:
                    self._drain()
                finally:
                    self._write_lock.release()
            else:
                req.done.wait(0.002)
        if req.error is not None:
            raise req.error
        assert req.outcome is not None
        return req.outcome

    def execute_many(self, pairs: Iterable[tuple[Handler, Any]]) -> list[Outcome | BaseException]:
        """Submit several commands at once (importers, benchmarks): they are
        committed together, each with its own outcome or error."""
        reqs = [_Request(h, c, threading.Event()) for h, c in pairs]
        with self._queue_lock:
            self._queue.extend(reqs)
        while not all(r.done.is_set() for r in reqs):
            with self._write_lock:
                self._drain()
        return [r.error if r.error is not None else r.outcome for r in reqs]  # type: ignore[misc]

    # -- inside the write lock --------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._queue_lock:
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Request]) -> None:
        todo = batch
        while todo:
            uow, ok, failed = self._apply_all(todo)
            if failed is None:
                self._commit(uow, ok)
                return
            # The failed handler may have changed aggregates before raising:
            # drop this unit of work and redo the commands before it (they
            # succeeded and are deterministic), then carry on after it.
            if ok:
                self._run_batch(ok)
            todo = todo[failed + 1:]

    def _apply_all(self, reqs: list[_Request]) -> tuple[UnitOfWork, list[_Request], int | None]:
        uow = UnitOfWork(self.app, self.ctx)
        ok: list[_Request] = []
        for i, req in enumerate(reqs):
            req.duplicate, req.error, req.new_events = False, None, 0
            before = uow.pending_count()
            try:
                self._apply(uow, req)
            except AlreadyApplied as dup:
                req.duplicate, req.aggregate_id = True, dup.aggregate_id  # type: ignore[assignment]
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                req.error = exc
                req.done.set()
                return uow, ok, i
            else:
                req.new_events = uow.pending_count() - before
            ok.append(req)
        return uow, ok, None

    def _apply(self, uow: UnitOfWork, req: _Request) -> None:
        result = req.handler(uow, req.command)
        req.result = result
        req.aggregate_id = getattr(result, "id", result if isinstance(result, UUID) else None)

    def _commit(self, uow: UnitOfWork, reqs: list[_Request]) -> None:
        try:
            position = self._save(uow)
        except IntegrityError:
            for req in reqs:
                self._retry_alone(req)
            return
        for req in reqs:
            req.outcome = Outcome(req.aggregate_id, position, req.new_events, req.duplicate,
                                  _public(req.result))
            req.done.set()

    def _save(self, uow: UnitOfWork) -> int:
        pending = uow.pending()
        if not pending:
            return self.app.max_position()
        recordings = self.app.save(*pending)
        position = max(r.notification.id for r in recordings)
        for listener in self._listeners:
            listener(position)
        return position

    def _retry_alone(self, req: _Request) -> None:
        for attempt in range(CONFLICT_RETRIES):
            uow = UnitOfWork(self.app, self.ctx)
            req.duplicate = False
            try:
                self._apply(uow, req)
                req.new_events = uow.pending_count()
                position = self._save(uow)
            except AlreadyApplied as dup:
                req.outcome = Outcome(dup.aggregate_id, self.app.max_position(), 0, True,  # type: ignore[arg-type]
                                      None)
                break
            except IntegrityError:
                time.sleep(0.001 * (2 ** attempt))
                continue
            except BaseException as exc:  # noqa: BLE001
                req.error = exc
                break
            req.outcome = Outcome(req.aggregate_id, position, req.new_events, False,
                                  _public(req.result))
            break
        else:
            req.error = ConcurrencyConflict("another writer kept changing the same aggregate; try again")
        req.done.set()


def _public(result: Any) -> Any:
    """Handlers return an aggregate or a value; callers get a plain value."""
    if isinstance(result, LianxinAggregate):
        return None
    return result
