"""The command bus: runs handlers, saves what they changed, and commits
commands that arrive together in one transaction.

Why batching: SQLite fsyncs every commit and PostgreSQL serialises writers on
a table lock, so one commit per command caps a busy center at the disk's
commit rate. Commands that arrive while a commit is in progress queue up; one
thread at a time is the *leader* and runs everything queued against one unit
of work, committing it once ("flat combining"). A lone caller leads itself;
under load a drainer thread leads (see ``_submit``). Every caller returns
only after its own events are durable: an acknowledged command is never lost.
Blocking callers use ``execute``/``execute_many``; event loops use
``execute_async`` (or ``submit`` for a concurrent future).

Why a write cache of live aggregates: reloading (a query) and deep-copying
(the library's guard against a half-applied command) an agent that has
hundreds of remembered command ids cost more than the rest of a command put
together. The bus keeps the committed state of the aggregates it wrote and
hands them to handlers without a copy, which is safe because:

* only the leader touches the cache;
* a handler that fails with a domain error has, by the domain's rule, changed
  nothing (checked: no new event, no version change, and the error was not
  raised from inside an event's ``mutate``), so the batch carries on;
* any other failure evicts every aggregate of the unit of work and the batch
  is re-run from the store without the failed command;
* another process may have written an aggregate since it was cached. A stale
  aggregate can only cause (a) events with versions that already exist, which
  the store refuses (IntegrityError): the batch's aggregates are evicted and
  the batch is re-run once on fresh state, then each command alone; or (b) a
  domain error that fresh state would not give: on a domain error the bus asks
  the store whether the aggregates are behind, and if so re-runs on fresh state.

A handler that raises leaves no trace; a command that keeps meeting another
writer's changes is reported as a ConcurrencyConflict, never half-applied.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Callable, Iterable, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import IntegrityError

from commands.application import CallCenter
from commands.errors import AlreadyApplied, ConcurrencyConflict
from domain.base import LianxinAggregate
from domain.errors import DomainError, NotFound

A = TypeVar("A", bound=LianxinAggregate)
log = logging.getLogger(__name__)

MAX_BATCH = 512
CONFLICT_RETRIES = 5
DEFAULT_CACHE_SIZE = 10_000
DRAINER_IDLE_S = 2.0


@dataclass(frozen=True)
class Outcome:
    """What a command did. ``position`` is the notification-log position its
    events are complete up to: pass it to a query to read your own writes."""

    aggregate_id: UUID | None
    position: int
    new_events: int
    duplicate: bool = False
    result: Any = None


class _WriteCache:
    """Committed state of recently written aggregates (LRU). Leader only."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[UUID, LianxinAggregate] = OrderedDict()

    def get(self, aggregate_id: UUID) -> LianxinAggregate | None:
        agg = self._items.get(aggregate_id)
        if agg is not None:
            self._items.move_to_end(aggregate_id)
        return agg

    def put_all(self, aggregates: Iterable[LianxinAggregate]) -> None:
        if self.maxsize <= 0:
            return
        items = self._items
        for agg in aggregates:
            items[agg.id] = agg
            items.move_to_end(agg.id)
        while len(items) > self.maxsize:
            items.popitem(last=False)

    def evict(self, ids: Iterable[UUID]) -> None:
        for i in ids:
            self._items.pop(i, None)

    def clear(self) -> None:
        self._items.clear()


class UnitOfWork:
    """Aggregates the handlers of one batch read or created, kept for one save.

    It also notes what each command touched (and how far each aggregate had
    got before), so that a failed command can be told apart from the rest."""

    def __init__(self, app: CallCenter, ctx: Any = None, cache: _WriteCache | None = None) -> None:
        self.app = app
        self.ctx = ctx
        self._cache = cache
        self._seen: dict[UUID, LianxinAggregate] = {}
        self._from_cache: set[UUID] = set()
        self._touched: dict[UUID, tuple[LianxinAggregate, int, int]] = {}
        # Read from the store for the whole batch in one query (see prefetch).
        self._prefetched: dict[UUID, LianxinAggregate] = {}
        self._absent: set[UUID] = set()

    def get(self, cls: type[A], aggregate_id: UUID, *, what: str | None = None,
            _finding: bool = False) -> A:
        agg = self._seen.get(aggregate_id)
        if agg is None:
            agg = self._cache.get(aggregate_id) if self._cache is not None else None
            if agg is not None:
                self._from_cache.add(aggregate_id)
            else:
                agg = self._prefetched.pop(aggregate_id, None)
                if agg is None:
                    if _finding and aggregate_id in self._absent:
                        # Absent when the batch began (the usual answer for a
                        # new call's offer). Should another writer create it
                        # before we commit, the store refuses our creation
                        # and the batch is re-run on fresh state. ``get``
                        # still asks the store: a wrong NotFound would be an
                        # error reported to a client.
                        raise NotFound(f"{what or cls.__name__} {aggregate_id} not found",
                                       id=str(aggregate_id))
                    try:
                        agg = self.app.repository.get(aggregate_id)
                    except AggregateNotFoundError:
                        raise NotFound(f"{what or cls.__name__} {aggregate_id} not found",
                                       id=str(aggregate_id)) from None
            self._seen[aggregate_id] = agg
        self._touch(agg)
        if not isinstance(agg, cls):
            raise NotFound(f"{aggregate_id} is not a {cls.__name__}", id=str(aggregate_id))
        return agg  # type: ignore[return-value]

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            return self.get(cls, aggregate_id, _finding=True)
        except NotFound:
            return None

    def add(self, aggregate: LianxinAggregate) -> None:
        self._seen[aggregate.id] = aggregate
        # A new aggregate had nothing before this command.
        self._touched[aggregate.id] = (aggregate, 0, 0)

    def pending(self) -> list[LianxinAggregate]:
        return [a for a in self._seen.values() if a.pending_events]

    def pending_count(self) -> int:
        return sum(len(a.pending_events) for a in self._seen.values())

    # -- per command -------------------------------------------------------
    def _touch(self, agg: LianxinAggregate) -> None:
        if agg.id not in self._touched:
            self._touched[agg.id] = (agg, agg.version, len(agg.pending_events))

    def _begin_command(self) -> None:
        self._touched = {}

    def _new_events(self) -> int:
        """Events the current command added."""
        return sum(len(agg.pending_events) - n for agg, _, n in self._touched.values())

    def _unchanged(self) -> bool:
        """The current command left every aggregate it touched as it was."""
        return all(agg.version == v and len(agg.pending_events) == n
                   for agg, v, n in self._touched.values())

    def _stale(self) -> list[UUID]:
        """Cached aggregates the current command read that another writer
        has moved on since (asked of the store: only on the error path)."""
        stale = []
        for agg, _, _ in self._touched.values():
            if agg.id not in self._from_cache:
                continue
            committed = agg.version - len(agg.pending_events)
            if self.app.recorder.select_events(agg.id, gt=committed, limit=1):
                stale.append(agg.id)
        return stale


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


class _Request:
    __slots__ = ("handler", "command", "wake", "future", "loop", "afut", "done", "outcome", "error",
                 "aggregate_id", "result", "new_events", "duplicate")

    def __init__(self, handler: Handler, command: Any) -> None:
        self.handler = handler
        self.command = command
        self.wake: _Wake | None = None  # only the request a caller sleeps on
        self.future: Future[Outcome] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # with afut: an asyncio caller
        self.afut: asyncio.Future[Outcome] | None = None
        self.done = False
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.aggregate_id: UUID | None = None
        self.result: Any = None
        self.new_events = 0
        self.duplicate = False

    def reset(self) -> None:
        self.error, self.aggregate_id, self.result = None, None, None
        self.new_events, self.duplicate = 0, False


class _Rerun(Exception):
    """The unit of work must be dropped and the batch run again from the store."""

    def __init__(self, failed: _Request | None) -> None:
        super().__init__()
        self.failed = failed


class CommandBus:
    def __init__(self, app: CallCenter, ctx: Any = None, *, batching: bool = True,
                 max_batch: int = MAX_BATCH, cache_size: int | None = None) -> None:
        self.app = app
        self.ctx = ctx
        self.batching = batching
        self.max_batch = max_batch if batching else 1
        if cache_size is None:
            cache_size = int(app.env.get("AGGREGATE_CACHE_MAXSIZE") or DEFAULT_CACHE_SIZE)
        self._cache = _WriteCache(cache_size)
        self._queue: deque[_Request] = deque()
        self._lock = threading.Lock()
        self._leading = False
        self._drainer_wake = threading.Condition(self._lock)
        self._drainer_turn = False
        self._drainer_alive = False
        self._listeners: list[Callable[[int], None]] = []
        # Only when the application does not customise save() (its hooks
        # _record/_take_snapshots/_notify are still called).
        self._plain_save = (type(app).save is Application.save
                            and type(app).notify is Application.notify)
        # ... and when nothing listens to the library's Recording objects
        # either, the events go straight to the recorder (see _save_collected).
        self._lean_record = (self._plain_save and type(app)._record is Application._record
                             and type(app)._notify is Application._notify
                             and app.snapshots is None)
        self._prefetch = _Prefetch.for_app(app)
        # Plain counters for benchmarks and health pages.
        self.commits = 0
        self.committed_commands = 0
        self.conflicts = 0

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Called with the new head position after every commit (in-process
        projections use it to wake up at once instead of polling)."""
        self._listeners.append(listener)

    @property
    def queued(self) -> int:
        """Commands waiting for the current batch to finish."""
        return len(self._queue)

    # -- public ------------------------------------------------------------
    def execute(self, handler: Handler, command: Any) -> Outcome:
        req = _Request(handler, command)
        self._submit([req])
        if req.error is not None:
            raise req.error
        assert req.outcome is not None
        return req.outcome

    def execute_many(self, pairs: Iterable[tuple[Handler, Any]]) -> list[Outcome | BaseException]:
        """Submit several commands at once (importers, benchmarks, a burst of
        telephony events): they are committed together, in order, each with
        its own outcome or error."""
        reqs = [_Request(h, c) for h, c in pairs]
        if reqs:
            self._submit(reqs)
        return [r.error if r.error is not None else r.outcome for r in reqs]  # type: ignore[misc]

    def submit(self, handler: Handler, command: Any) -> Future[Outcome]:
        """Queue a command without blocking: the future resolves once its
        events are durable (or fails with the command's error). For event
        loops: thousands of calls in flight without a thread each."""
        req = _Request(handler, command)
        req.future = Future()
        with self._lock:
            self._queue.append(req)
            if not self._leading:
                self._leading = True
                self._hand_over()
        return req.future

    async def execute_async(self, handler: Handler, command: Any) -> Outcome:
        """``execute`` for asyncio callers: the loop keeps running while the
        drainer thread commits. The results of a batch reach each loop in one
        call (one wake-up of the loop per batch, not one per command)."""
        loop = asyncio.get_running_loop()
        req = _Request(handler, command)
        req.loop, req.afut = loop, loop.create_future()
        with self._lock:
            self._queue.append(req)
            if not self._leading:
                self._leading = True
                self._hand_over()
        return await req.afut

    # -- leadership --------------------------------------------------------
    # One leader at a time runs batches. A blocking caller who finds nobody
    # leading leads itself (no thread hop: a lone caller pays nothing for
    # batching). When its own command is done and others are queued, it hands
    # over to the drainer thread, which leads until the queue is empty:
    # handing over to another caller instead would put a thread wake-up (and
    # a wait for the GIL) between every two batches.
    def _submit(self, reqs: list[_Request]) -> None:
        if getattr(_tls, "leading", False):
            # It would wait for the batch it is part of.
            raise RuntimeError("a command cannot be executed from inside a handler "
                               "or an on_commit listener")
        mine = reqs[-1]  # requests run in order: when the last is done, all are
        with self._lock:
            lead = not self._leading
            if not lead:
                mine.wake = _Wake()
            self._queue.extend(reqs)
            self._leading = True
        if lead:
            self._lead_until(mine)
        while not mine.done:
            mine.wake.wait()

    def _lead_until(self, mine: _Request | None) -> None:
        """Run batches until ``mine`` is done (a caller) or the queue is empty
        (the drainer); then hand over or step down."""
        _tls.leading = True
        try:
            self._lead_loop(mine)
        finally:
            _tls.leading = False

    def _lead_loop(self, mine: _Request | None) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._leading = False
                    return
                if mine is not None and mine.done:
                    self._hand_over()
                    return
                n = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
            # A submitted command whose caller gave up before it started is
            # dropped; once started, cancelling no longer stops it.
            batch = [r for r in batch
                     if (r.future is None or r.future.set_running_or_notify_cancel())
                     and (r.afut is None or not r.afut.cancelled())]
            try:
                self._run_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - nobody may be left hanging
                # The store failed (not a handler): what was not committed
                # is reported to its caller, who may retry (idempotent).
                for r in batch:
                    if not r.done:
                        r.error = exc
                        self._finish(r)
            finally:
                self._deliver_to_loops(batch)

    def _hand_over(self) -> None:
        """Give leadership to the drainer thread (called holding the lock)."""
        self._drainer_turn = True
        if self._drainer_alive:
            self._drainer_wake.notify()
        else:
            self._drainer_alive = True
            threading.Thread(target=self._drainer, name="command-bus-drainer",
                             daemon=True).start()

    def _drainer(self) -> None:
        while True:
            with self._lock:
                while not self._drainer_turn:
                    # Idle for a while: stop; the next hand-over starts anew.
                    if not self._drainer_wake.wait(DRAINER_IDLE_S) and not self._drainer_turn:
                        self._drainer_alive = False
                        return
                self._drainer_turn = False
            self._lead_until(None)

    def _deliver_to_loops(self, batch: list[_Request]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for r in batch:
            if r.loop is not None:
                by_loop.setdefault(r.loop, []).append(r)
        for loop, reqs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_in_loop, reqs)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _finish(self, req: _Request) -> None:
        req.done = True
        if req.wake is not None:
            req.wake.set()
        elif req.future is not None:
            if req.error is not None:
                req.future.set_exception(req.error)
            else:
                req.future.set_result(req.outcome)  # type: ignore[arg-type]

    # -- inside leadership -------------------------------------------------
    def _run_batch(self, batch: list[_Request], *, after_conflict: bool = False) -> None:
        todo = batch
        while todo:
            uow = UnitOfWork(self.app, self.ctx, self._cache)
            if len(todo) > 1 and self._prefetch is not None:
                self._prefetch.load(uow, todo)
            try:
                ok = self._apply_all(uow, todo)
            except _Rerun as rerun:
                self._cache.evict(uow._seen)
                todo = [r for r in todo if r is not rerun.failed and not r.done]
                continue
            self._commit(uow, ok, after_conflict=after_conflict)
            return

    def _apply_all(self, uow: UnitOfWork, reqs: list[_Request]) -> list[_Request]:
        ok: list[_Request] = []
        for req in reqs:
            req.reset()
            uow._begin_command()
            try:
                result = req.handler(uow, req.command)
            except AlreadyApplied as dup:
                req.duplicate, req.aggregate_id = True, dup.aggregate_id  # type: ignore[assignment]
                if not uow._unchanged():  # a handler that changed things before noticing
                    req.outcome = Outcome(dup.aggregate_id, self.app.max_position(), 0, True)  # type: ignore[arg-type]
                    self._finish(req)
                    raise _Rerun(req) from None
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                clean = (isinstance(exc, DomainError) and uow._unchanged()
                         and not _raised_while_applying(exc.__traceback__))
                if clean and uow._stale():
                    # Stale cached state may be why it failed: run again on
                    # fresh state (the failure will be reported if it recurs).
                    raise _Rerun(None) from None
                req.error = exc
                self._finish(req)
                if not clean:
                    raise _Rerun(req) from None
                continue
            else:
                req.result = result
                req.aggregate_id = getattr(result, "id", result if isinstance(result, UUID) else None)
                req.new_events = uow._new_events()
            ok.append(req)
        return ok

    def _commit(self, uow: UnitOfWork, reqs: list[_Request], *,
                after_conflict: bool = False) -> None:
        try:
            position = self._save(uow)
        except IntegrityError:
            # Another writer got there first. The batch's aggregates are
            # reloaded and the batch re-run once as a whole (one stale
            # aggregate should not cost every command its own commit); if it
            # conflicts again, each command is retried alone.
            self.conflicts += 1
            self._cache.evict(uow._seen)
            if not after_conflict:
                self._run_batch(reqs, after_conflict=True)
                return
            for req in reqs:
                self._retry_alone(req)
            return
        except BaseException:
            self._cache.evict(uow._seen)
            raise
        self._cache.put_all(uow._seen.values())
        self.committed_commands += len(reqs)
        for req in reqs:
            req.outcome = Outcome(req.aggregate_id, position, req.new_events, req.duplicate,
                                  _public(req.result))
            self._finish(req)

    def _save(self, uow: UnitOfWork) -> int:
        pending = uow.pending()
        if not pending:
            return self.app.max_position()
        if self._lean_record:
            position = self._record_lean(pending)
        else:
            if self._plain_save:
                recordings = self._save_collected(pending)
            else:
                recordings = self.app.save(*pending)
            position = max(r.notification.id for r in recordings)
        self.commits += 1
        for listener in self._listeners:
            try:
                listener(position)
            except Exception:  # noqa: BLE001 - the commit stands; a listener's bug is logged
                log.exception("on_commit listener %r failed", listener)
        return position

    def _save_collected(self, pending: list[LianxinAggregate]) -> list[Any]:
        """What ``Application.save`` does, minus its per-object runtime
        Protocol checks (tens of microseconds each on Python 3.11, a quarter
        of a busy batch): the bus knows it holds aggregates."""
        pe: ProcessingEvent[UUID] = ProcessingEvent()
        events = pe.events
        for agg in pending:
            events.extend(agg.collect_events())
            pe.aggregates[agg.id] = agg
        recordings = self.app._record(pe)
        self.app._take_snapshots(pe)
        self.app._notify(recordings)
        return recordings

    def _record_lean(self, pending: list[LianxinAggregate]) -> int:
        """What ``_save_collected`` does when the application keeps the
        library's ``_record`` and ``_notify`` and takes no snapshots: the same
        stored events in the same transaction, without building a
        ``Recording`` and a ``Notification`` per event that nobody reads
        (a few µs of a busy batch's ~50 per event). Returns the head."""
        events: list[Any] = []
        for agg in pending:
            events.extend(agg.collect_events())
        app = self.app
        ids = app.recorder.insert_events(list(map(app.mapper.to_stored_event, events)))
        if not ids or len(ids) != len(events):
            raise RuntimeError("the recorder did not report the new events' positions")
        repository = app.repository
        if repository.cache and not repository.fastforward:
            for agg in pending:
                repository.cache.put(agg.id, agg)
        return max(ids)

    def _retry_alone(self, req: _Request) -> None:
        """Re-run one command on fresh state until it commits, is refused, or
        the other writer keeps winning."""
        for attempt in range(CONFLICT_RETRIES):
            uow = UnitOfWork(self.app, self.ctx, None)  # fresh from the store
            req.reset()
            uow._begin_command()
            try:
                req.result = req.handler(uow, req.command)
                req.aggregate_id = getattr(req.result, "id",
                                           req.result if isinstance(req.result, UUID) else None)
                req.new_events = uow._new_events()
                position = self._save(uow)
            except AlreadyApplied as dup:
                req.outcome = Outcome(dup.aggregate_id, self.app.max_position(), 0, True,  # type: ignore[arg-type]
                                      None)
                break
            except IntegrityError:
                self.conflicts += 1
                time.sleep(0.001 * (2 ** attempt))
                continue
            except BaseException as exc:  # noqa: BLE001
                req.error = exc
                break
            self._cache.put_all(uow._seen.values())
            self.committed_commands += 1
            req.outcome = Outcome(req.aggregate_id, position, req.new_events, False,
                                  _public(req.result))
            break
        else:
            req.error = ConcurrencyConflict("another writer kept changing the same aggregate; try again")
        self._finish(req)


class _Prefetch:
    """Loads, in one query per batch, the aggregates a batch's commands name
    that the write cache does not hold: a new call's offer would otherwise
    cost a round trip of its own to learn that the call does not exist yet,
    and on PostgreSQL those round trips were a quarter of a busy batch.

    The ids are guessed from the commands' fields (``call_id``,
    ``work_order_id``, ``employee_no``, an offer's ``external_id``); a wrong
    guess only costs a row or two, a missed one falls back to the repository.
    Used only with the library's SQLite/PostgreSQL recorders (or subclasses)
    and without snapshots, where "all the aggregate's events" is the state."""

    def __init__(self, app: CallCenter, select: Callable[[list[UUID]], list[Any]]) -> None:
        self.app = app
        self.select = select

    @classmethod
    def for_app(cls, app: CallCenter) -> _Prefetch | None:
        if app.snapshots is not None:
            return None
        rec = app.recorder
        try:
            from eventsourcing.sqlite import SQLiteApplicationRecorder
        except ImportError:  # pragma: no cover
            SQLiteApplicationRecorder = None  # type: ignore[assignment,misc]
        try:
            from eventsourcing.postgres import PostgresApplicationRecorder
        except ImportError:  # pragma: no cover - psycopg not installed
            PostgresApplicationRecorder = None  # type: ignore[assignment,misc]
        if getattr(getattr(rec, "datastore", None), "originator_id_type", None) != "uuid":
            return None
        if SQLiteApplicationRecorder is not None and isinstance(rec, SQLiteApplicationRecorder):
            return cls(app, _sqlite_select(rec))
        if PostgresApplicationRecorder is not None and isinstance(rec, PostgresApplicationRecorder):
            return cls(app, _postgres_select(rec))
        return None

    def load(self, uow: UnitOfWork, reqs: list[_Request]) -> None:
        cache = uow._cache
        wanted: set[UUID] = set()
        for r in reqs:
            for i in _named_ids(r.command):
                if cache is None or cache.get(i) is None:
                    wanted.add(i)
        if len(wanted) < 2:
            return  # one id: the repository's own query is as good
        try:
            rows = self.select(sorted(wanted))
        except Exception:  # noqa: BLE001 - an optimisation: fall back to one query each
            log.warning("batch prefetch failed; loading aggregates one by one", exc_info=True)
            return
        events: dict[UUID, list[Any]] = {}
        to_domain = self.app.mapper.to_domain_event
        for stored in rows:
            events.setdefault(stored.originator_id, []).append(to_domain(stored))
        for i in wanted:
            evs = events.get(i)
            if evs is None:
                uow._absent.add(i)
                continue
            agg = None
            for e in evs:
                agg = e.mutate(agg)
            if agg is not None:
                uow._prefetched[i] = agg


def _named_ids(cmd: Any) -> list[UUID]:
    ids = []
    for field in ("call_id", "work_order_id"):
        v = getattr(cmd, field, None)
        if isinstance(v, UUID):
            ids.append(v)
    no = getattr(cmd, "employee_no", None)
    if isinstance(no, str) and no:
        ids.append(_agent_id(no))
    ext = getattr(cmd, "external_id", None)
    if isinstance(ext, str) and ext and type(cmd).__name__ == "OfferCall":
        ids.append(_call_id(ext))
    return ids


# uuid5 (a SHA-1 and a UUID) for every command of every batch was ~3% of a
# busy batch's CPU; a center has a few thousand agents, so their ids are
# memoised. Call ids are seen once per call (its offer): not worth a memo.
@lru_cache(maxsize=16_384)
def _agent_id(employee_no: str) -> UUID:
    from domain.agent import agent_id_for

    return agent_id_for(employee_no)


def _call_id(external_id: str) -> UUID:
    from domain.call import call_id_for

    return call_id_for(external_id)


def _sqlite_select(rec: Any) -> Callable[[list[UUID]], list[Any]]:
    from eventsourcing.persistence import StoredEvent

    table = rec.events_table_name

    def select(ids: list[UUID]) -> list[Any]:
        out: list[Any] = []
        for k in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[k:k + 500]
            sql = (f"SELECT originator_id, originator_version, topic, state FROM {table} "
                   f"WHERE originator_id IN ({','.join('?' * len(chunk))}) "
                   "ORDER BY originator_id, originator_version")
            with rec.datastore.transaction(commit=False) as c:
                c.execute(sql, [i.hex for i in chunk])
                out += [StoredEvent(originator_id=UUID(r[0]), originator_version=r[1],
                                    topic=r[2], state=r[3]) for r in c.fetchall()]
        return out

    return select


def _postgres_select(rec: Any) -> Callable[[list[UUID]], list[Any]]:
    from eventsourcing.persistence import StoredEvent
    from psycopg.sql import SQL, Identifier

    statement = SQL(
        "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
        "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
    ).format(schema=Identifier(rec.datastore.schema), table=Identifier(rec.events_table_name))

    def select(ids: list[UUID]) -> list[Any]:
        with rec.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (ids,), prepare=True)
            return [StoredEvent(originator_id=r["originator_id"],
                                originator_version=r["originator_version"],
                                topic=r["topic"], state=bytes(r["state"]))
                    for r in curs.fetchall()]

    return select


_tls = threading.local()


def _resolve_in_loop(reqs: list[_Request]) -> None:
    for r in reqs:
        fut = r.afut
        if fut is None or fut.done():  # cancelled meanwhile
            continue
        if r.error is not None:
            fut.set_exception(r.error)
        else:
            fut.set_result(r.outcome)  # type: ignore[arg-type]


class _Wake:
    """A one-shot wake-up: a bare lock taken at birth and released by
    ``set()``. Cheaper than ``threading.Event`` (no Condition) on the path
    every waiting caller takes."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # already set
            pass

    def wait(self) -> None:
        self._lock.acquire()
        self._lock.release()


_MUTATE_CODE = CanMutateAggregate.mutate.__code__


def _raised_while_applying(tb: TracebackType | None) -> bool:
    """Did the exception pass through an event's mutate()? Then an aggregate
    may be half-changed even though its version is not."""
    while tb is not None:
        if tb.tb_frame.f_code is _MUTATE_CODE:
            return True
        tb = tb.tb_next
    return False


def _public(result: Any) -> Any:
    """Handlers return an aggregate or a value; callers get a plain value."""
    if isinstance(result, LianxinAggregate):
        return None
    return result
