"""Automatic call distribution: who rings next, and when a waiting caller
overflows, is re-queued or hears their position.

Pure policy with no I/O and no clock of its own: the telephony adapter feeds
it what the events say (a call is waiting, an agent became ready, a ring went
unanswered) and the time, and executes what it answers. Asterisk's ARI cannot
drive ``app_queue``, so this is the queue.

Order of service: queue priority first (a call to a higher-priority queue is
offered an agent before any lower one), then the call's own priority, then
callers put back at the front (ring-no-answer), then the longest waiting.
Agent choice: among ready agents holding every required skill at the required
level, the one idle the longest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from domain.errors import InvalidValue


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    overflow_after_s: float | None = None
    overflow_to: str | None = None
    ring_timeout_s: float = 15.0
    announce_first_s: float = 15.0
    announce_every_s: float = 30.0
    moh_class: str = "default"

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidValue("a queue needs a name", field="name")
        if self.ring_timeout_s <= 0:
            raise InvalidValue(f"queue {self.name}: ring_timeout_s must be positive",
                               field="ring_timeout_s")
        if (self.overflow_after_s is None) != (self.overflow_to is None):
            raise InvalidValue(f"queue {self.name}: overflow_after_s and overflow_to go together",
                               field="overflow_to")
        if self.overflow_to == self.name:
            raise InvalidValue(f"queue {self.name} cannot overflow into itself", field="overflow_to")
        for skill, level in self.skills.items():
            if not isinstance(level, int) or not 0 <= level <= 10:
                raise InvalidValue(f"queue {self.name}: level of {skill} must be 0..10",
                                   field="skills")


@dataclass(frozen=True)
class Assignment:
    """Ring this agent for this call (originate with ``ring_timeout_s``)."""

    call_id: str
    employee_no: str
    endpoint: str
    queue: str
    ring_timeout_s: float
    deadline: datetime


@dataclass(frozen=True)
class Overflow:
    call_id: str
    from_queue: str
    to_queue: str


@dataclass(frozen=True)
class Announcement:
    call_id: str
    queue: str
    position: int


@dataclass(frozen=True)
class RingTimeout:
    call_id: str
    employee_no: str


@dataclass
class _Waiting:
    call_id: str
    queue: str
    priority: int
    skills: dict[str, int]
    entered_queue_at: datetime  # for overflow: time in *this* queue
    waiting_since: datetime  # for order of service: the whole wait
    rank: int  # lower first; callers put back at the front get negative ranks
    next_announce_at: datetime


@dataclass
class _Agent:
    employee_no: str
    skills: dict[str, int]
    ready_since: datetime
    endpoint: str


@dataclass
class _Ringing:
    call_id: str
    employee_no: str
    waiting: _Waiting
    deadline: datetime


class Acd:
    def __init__(self, queues: Iterable[QueuePolicy]) -> None:
        self.queues: dict[str, QueuePolicy] = {}
        for q in queues:
            if q.name in self.queues:
                raise InvalidValue(f"queue {q.name} is defined twice", field="queues")
            self.queues[q.name] = q
        for q in self.queues.values():
            if q.overflow_to is not None and q.overflow_to not in self.queues:
                raise InvalidValue(f"queue {q.name} overflows to unknown queue {q.overflow_to}",
                                   field="overflow_to")
        self._waiting: dict[str, _Waiting] = {}
        self._ready: dict[str, _Agent] = {}
        self._ringing: dict[str, _Ringing] = {}
        self._seq = itertools.count(1)
        self._front = itertools.count(-1, -1)

    # -- facts fed in --------------------------------------------------------
    def policy(self, queue: str) -> QueuePolicy:
        try:
            return self.queues[queue]
        except KeyError:
            raise InvalidValue(f"unknown queue {queue}", field="queue") from None

    def enqueue(self, call_id: str, queue: str, now: datetime, *, priority: int = 0,
                skills: Mapping[str, int] | None = None, at_front: bool = False) -> None:
        policy = self.policy(queue)
        previous = self._waiting.get(call_id)
        rank = next(self._front) if at_front else next(self._seq)
        self._waiting[call_id] = _Waiting(
            call_id=call_id, queue=queue, priority=priority,
            skills={**policy.skills, **dict(skills or {})},
            entered_queue_at=now,
            waiting_since=previous.waiting_since if previous else now,
            rank=rank,
            next_announce_at=now + timedelta(seconds=policy.announce_first_s),
        )

    def remove_call(self, call_id: str) -> str | None:
        """The call left (abandoned, answered elsewhere, ended). Answers the
        agent it was ringing, if any: they are out of the pool until the
        adapter reads their state again, and the ring may never have reached
        their record (a caller who hangs up as the phone is dialled), so no
        later event of theirs would bring them back."""
        self._waiting.pop(call_id, None)
        ringing = self._ringing.pop(call_id, None)
        return ringing.employee_no if ringing else None

    def agent_ready(self, employee_no: str, *, skills: Mapping[str, int], ready_since: datetime,
                    endpoint: str) -> None:
        if self.ringing_for(employee_no) is not None:
            return  # already offered a call; their ready state is stale news
        self._ready[employee_no] = _Agent(employee_no, dict(skills), ready_since, endpoint)

    def agent_unavailable(self, employee_no: str) -> None:
        self._ready.pop(employee_no, None)

    def answered(self, call_id: str) -> None:
        self._ringing.pop(call_id, None)
        self._waiting.pop(call_id, None)

    def ring_no_answer(self, call_id: str, now: datetime) -> None:
        """The alerted agent did not take the call: the caller goes back to the
        front of their queue (keeping their wait), the agent stays out of the
        pool until they make themselves ready again."""
        ringing = self._ringing.pop(call_id, None)
        if ringing is None:
            return
        self._ready.pop(ringing.employee_no, None)
        w = ringing.waiting
        w.rank = next(self._front)
        self._waiting[call_id] = w

    # -- decisions -----------------------------------------------------------
    def _service_order(self) -> list[_Waiting]:
        # front-of-queue callers (negative rank) before the others; the most
        # recently put back first, as each took the head of the line
        return sorted(self._waiting.values(),
                      key=lambda w: (-self.queues[w.queue].priority, -w.priority,
                                     0 if w.rank < 0 else 1, w.rank if w.rank < 0 else 0,
                                     w.waiting_since, w.rank))

    @staticmethod
    def qualifies(agent_skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
        return all(agent_skills.get(skill, 0) >= level for skill, level in required.items()
                   if level > 0)

    def assign(self, now: datetime) -> list[Assignment]:
        out: list[Assignment] = []
        for w in self._service_order():
            candidates = [a for a in self._ready.values() if self.qualifies(a.skills, w.skills)]
            if not candidates:
                continue
            agent = min(candidates, key=lambda a: (a.ready_since, a.employee_no))
            policy = self.queues[w.queue]
            deadline = now + timedelta(seconds=policy.ring_timeout_s)
            del self._ready[agent.employee_no]
            del self._waiting[w.call_id]
            self._ringing[w.call_id] = _Ringing(w.call_id, agent.employee_no, w, deadline)
            out.append(Assignment(w.call_id, agent.employee_no, agent.endpoint, w.queue,
                                  policy.ring_timeout_s, deadline))
        return out

    def ring_direct(self, call_id: str, employee_no: str, queue: str, now: datetime,
                    endpoint: str) -> Assignment:
        """A caller transferred straight to this agent: rung as routing rings
        (out of the pool, the ring followed), and on no answer back at the
        front of ``queue``."""
        self.enqueue(call_id, queue, now, at_front=True)  # where a miss puts them
        w = self._waiting.pop(call_id)
        self._ready.pop(employee_no, None)
        policy = self.queues[queue]
        deadline = now + timedelta(seconds=policy.ring_timeout_s)
        self._ringing[call_id] = _Ringing(call_id, employee_no, w, deadline)
        return Assignment(call_id, employee_no, endpoint, queue, policy.ring_timeout_s, deadline)

    def overflows(self, now: datetime) -> list[Overflow]:
        out: list[Overflow] = []
        for w in list(self._waiting.values()):
            policy = self.queues[w.queue]
            if policy.overflow_to is None or policy.overflow_after_s is None:
                continue
            if (now - w.entered_queue_at).total_seconds() >= policy.overflow_after_s:
                out.append(Overflow(w.call_id, w.queue, policy.overflow_to))
                target = self.queues[policy.overflow_to]
                w.queue = target.name
                w.skills = {**target.skills}
                w.entered_queue_at = now
        return out

    def ring_timeouts(self, now: datetime) -> list[RingTimeout]:
        return [RingTimeout(r.call_id, r.employee_no) for r in self._ringing.values()
                if r.deadline <= now]

    def position(self, call_id: str) -> int | None:
        w = self._waiting.get(call_id)
        if w is None:
            return None
        same = [x for x in self._service_order() if x.queue == w.queue]
        return 1 + [x.call_id for x in same].index(call_id)

    def announcements(self, now: datetime) -> list[Announcement]:
        out: list[Announcement] = []
        for w in self._waiting.values():
            if w.next_announce_at <= now:
                policy = self.queues[w.queue]
                out.append(Announcement(w.call_id, w.queue, self.position(w.call_id) or 1))
                w.next_announce_at = now + timedelta(seconds=policy.announce_every_s)
        return out

    def next_deadline(self) -> datetime | None:
        """When something next falls due (announcement, overflow, ring
        timeout), so the adapter can sleep until then."""
        times: list[datetime] = [r.deadline for r in self._ringing.values()]
        for w in self._waiting.values():
            times.append(w.next_announce_at)
            policy = self.queues[w.queue]
            if policy.overflow_after_s is not None:
                times.append(w.entered_queue_at + timedelta(seconds=policy.overflow_after_s))
        return min(times, default=None)

    # -- views ---------------------------------------------------------------
    def waiting(self, queue: str | None = None) -> list[str]:
        return [w.call_id for w in self._service_order() if queue is None or w.queue == queue]

    def ringing_agent(self, call_id: str) -> str | None:
        r = self._ringing.get(call_id)
        return r.employee_no if r else None

    def ringing_for(self, employee_no: str) -> str | None:
        for r in self._ringing.values():
            if r.employee_no == employee_no:
                return r.call_id
        return None

    def ready_agents(self) -> list[str]:
        return sorted(self._ready, key=lambda e: (self._ready[e].ready_since, e))

    def queue_of(self, call_id: str) -> str | None:
        w = self._waiting.get(call_id) or (self._ringing[call_id].waiting
                                            if call_id in self._ringing else None)
        return w.queue if w else None
