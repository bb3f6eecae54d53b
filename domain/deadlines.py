"""Work-order policy and deadline arithmetic.

The policy (``lianxin/config/work_order_policy.toml``) says, per work-order
type and optionally category and priority, how soon an order must be
dispatched, accepted and resolved; how urging, escalation, callbacks and
duplicate merging behave. Its ``version`` is stamped on every deadline event:
the promise made to a caller is the one computed when the order was opened
or dispatched, whatever the policy says later.

Durations are written ``"5 minutes"``, ``"2 hours"``, ``"3 days"`` (calendar)
or ``"5 working_days"``. Working-day durations end at the end of the N-th
working day (see ``domain.calendar``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from domain.calendar import WorkingCalendar
from domain.errors import InvalidValue

UNITS = {
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "m": "minutes",
    "hour": "hours", "hours": "hours", "h": "hours",
    "day": "days", "days": "days", "d": "days",
    "working_day": "working_days", "working_days": "working_days", "wd": "working_days",
}
_DURATION = re.compile(r"^\s*(\d+)\s*([a-z_]+)\s*$")

# The stages an order's clock can promise, in the order they happen.
STAGES = ("dispatch", "accept", "resolve")


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # minutes | hours | days | working_days

    @classmethod
    def parse(cls, text: Any, field_name: str = "duration") -> Duration:
        if isinstance(text, Duration):
            return text
        match = _DURATION.match(str(text).lower())
        if not match or match.group(2) not in UNITS:
            raise InvalidValue(
                f"{field_name}: {text!r} is not a duration like '5 minutes', '2 hours', "
                "'3 days' or '5 working_days'", field=field_name)
        return cls(int(match.group(1)), UNITS[match.group(2)])

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"

    @property
    def uses_calendar(self) -> bool:
        return self.unit == "working_days"

    def after(self, start: datetime, calendar: WorkingCalendar) -> datetime:
        if self.unit == "minutes":
            return start + timedelta(minutes=self.amount)
        if self.unit == "hours":
            return start + timedelta(hours=self.amount)
        if self.unit == "days":
            return start + timedelta(days=self.amount)
        # Reported in the caller's offset (UTC in, UTC out): the instant is the same.
        return calendar.add_working_days(start, self.amount).astimezone(start.tzinfo)

    @property
    def approx(self) -> timedelta:
        """A plain length, for intervals that repeat (urging every 4 hours)."""
        if self.unit == "minutes":
            return timedelta(minutes=self.amount)
        if self.unit == "hours":
            return timedelta(hours=self.amount)
        return timedelta(days=self.amount)


@dataclass(frozen=True)
class Rule:
    type: str
    category: str | None = None
    priority: str | None = None
    dispatch: Duration | None = None
    accept: Duration | None = None
    resolve: Duration | None = None
    urge_lead: Duration | None = None
    urge_interval: Duration | None = None

    def specificity(self) -> int:
        return (self.category is not None) * 2 + (self.priority is not None)

    def matches(self, type: str, category: str, priority: str) -> bool:
        return (self.type == type and self.category in (None, category)
                and self.priority in (None, priority))


@dataclass(frozen=True)
class UrgingPolicy:
    lead: Duration = Duration(1, "hours")
    interval: Duration = Duration(4, "hours")
    escalate_after: int = 3
    # The escalation chain, lowest level first: level n goes to the n-th
    # entry; the last one is the top level, beyond which nothing escalates.
    escalate_to: tuple[str, ...] = ("supervisor",)
    dispatch_desk: str = "dispatch"


@dataclass(frozen=True)
class Cadence:
    """How one order's deadlines are urged and escalated. Stamped on the
    order with its deadlines (``DeadlinesSet.urging``), so the follow-through
    of a promise does not change when the policy file does."""

    lead: Duration
    interval: Duration
    escalate_after: int
    escalate_to: tuple[str, ...]

    @property
    def top_level(self) -> int:
        return len(self.escalate_to)

    def level_after(self, urgings: int) -> int:
        """The escalation level ``urgings`` due moments call for (capped)."""
        return min(urgings // self.escalate_after, self.top_level)

    def target(self, level: int) -> str:
        return self.escalate_to[level - 1]

    def as_dict(self) -> dict[str, Any]:
        return {"lead": str(self.lead), "interval": str(self.interval),
                "escalate_after": self.escalate_after, "escalate_to": list(self.escalate_to)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cadence:
        return cls(Duration.parse(d["lead"]), Duration.parse(d["interval"]),
                   int(d["escalate_after"]), tuple(d["escalate_to"]))


@dataclass(frozen=True)
class CallbackPolicy:
    types: frozenset[str] = frozenset()
    due: Duration = Duration(1, "working_days")
    retry_window: Duration = Duration(3, "working_days")
    retry_after: Duration = Duration(1, "working_days")
    max_attempts: int = 3
    team: str = "callback"


@dataclass(frozen=True)
class MergePolicy:
    types: frozenset[str] = frozenset({"fault_repair"})
    keys: tuple[str, ...] = ("transformer", "feeder", "address")
    window: Duration = Duration(24, "hours")


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[Rule, ...] = ()
    urging: UrgingPolicy = UrgingPolicy()
    callback: CallbackPolicy = CallbackPolicy()
    merge: MergePolicy = MergePolicy()
    outage_notice_days: int = 7
    outage_types: frozenset[str] = frozenset({"fault_repair"})
    due_soon: Duration = Duration(2, "hours")
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        version = data.get("version")
        if not isinstance(version, str) or not version.strip():
            raise InvalidValue("the policy needs a non-empty version", field="version")
        rules = []
        for i, r in enumerate(data.get("rule", []) or []):
            where = f"rule[{i}]"
            if "type" not in r:
                raise InvalidValue(f"{where} needs a type", field=where)
            rules.append(Rule(
                type=str(r["type"]), category=r.get("category"), priority=r.get("priority"),
                **{k: Duration.parse(r[k], f"{where}.{k}")
                   for k in ("dispatch", "accept", "resolve", "urge_lead", "urge_interval")
                   if k in r}))
        u = data.get("urging", {}) or {}
        urging = UrgingPolicy(
            lead=Duration.parse(u.get("lead", "1 hours"), "urging.lead"),
            interval=Duration.parse(u.get("interval", "4 hours"), "urging.interval"),
            escalate_after=_positive(u.get("escalate_after", 3), "urging.escalate_after"),
            escalate_to=_chain(u.get("escalate_to", ["supervisor"]), "urging.escalate_to"),
            dispatch_desk=str(u.get("dispatch_desk", "dispatch")))
        c = data.get("callback", {}) or {}
        callback = CallbackPolicy(
            types=frozenset(c.get("types", [])),
            due=Duration.parse(c.get("due", "1 working_days"), "callback.due"),
            retry_window=Duration.parse(c.get("retry_window", "3 working_days"),
                                        "callback.retry_window"),
            retry_after=Duration.parse(c.get("retry_after", "1 working_days"),
                                       "callback.retry_after"),
            max_attempts=_positive(c.get("max_attempts", 3), "callback.max_attempts"),
            team=str(c.get("team", "callback")))
        mg = data.get("merge", {}) or {}
        merge = MergePolicy(
            types=frozenset(mg.get("types", ["fault_repair"])),
            keys=tuple(mg.get("keys", ["transformer", "feeder", "address"])),
            window=Duration.parse(mg.get("window", "24 hours"), "merge.window"))
        o = data.get("outage", {}) or {}
        inbox = data.get("inbox", {}) or {}
        for stage in ("urge_interval",):
            for r in rules:
                d = getattr(r, stage)
                if d is not None and d.amount == 0:
                    raise InvalidValue("an urging interval must be longer than 0", field=stage)
        if urging.interval.amount == 0:
            raise InvalidValue("urging.interval must be longer than 0", field="urging.interval")
        return cls(version=version.strip(), rules=tuple(rules), urging=urging,
                   callback=callback, merge=merge,
                   outage_notice_days=_positive(o.get("notice_days", 7), "outage.notice_days"),
                   outage_types=frozenset(o.get("answer_as_information", ["fault_repair"])),
                   due_soon=Duration.parse(inbox.get("due_soon", "2 hours"), "inbox.due_soon"))

    def rule_for(self, type: str, category: str = "", priority: str = "normal") -> Rule | None:
        candidates = [r for r in self.rules if r.matches(type, category, priority)]
        return max(candidates, key=Rule.specificity, default=None)

    def deadlines(self, type: str, category: str, priority: str, stages: tuple[str, ...],
                  start: datetime, calendar: WorkingCalendar) -> dict[str, datetime]:
        """The deadlines of ``stages`` counted from ``start``."""
        rule = self.rule_for(type, category, priority)
        if rule is None:
            return {}
        out = {}
        for stage in stages:
            d: Duration | None = getattr(rule, stage)
            if d is not None:
                out[stage] = d.after(start, calendar)
        return out

    def units(self, type: str, category: str, priority: str,
              stages: tuple[str, ...]) -> dict[str, str]:
        rule = self.rule_for(type, category, priority)
        if rule is None:
            return {}
        return {s: getattr(rule, s).unit for s in stages if getattr(rule, s) is not None}

    def cadence(self, type: str, category: str = "", priority: str = "normal") -> Cadence:
        """The urging cadence a new promise of this kind gets (the rule's
        lead and interval if it has them, else the ``[urging]`` defaults)."""
        rule = self.rule_for(type, category, priority)
        return Cadence(lead=rule.urge_lead if rule and rule.urge_lead else self.urging.lead,
                       interval=(rule.urge_interval if rule and rule.urge_interval
                                 else self.urging.interval),
                       escalate_after=self.urging.escalate_after,
                       escalate_to=self.urging.escalate_to)

    def callback_due(self, type: str, resolved_at: datetime,
                     calendar: WorkingCalendar) -> tuple[datetime, datetime] | None:
        """(first attempt due, give up at) or None if the type gets no callback."""
        if type not in self.callback.types:
            return None
        return (self.callback.due.after(resolved_at, calendar),
                self.callback.retry_window.after(resolved_at, calendar))


# -- urging moments ---------------------------------------------------------
# Derived, not stored: the first urging of a deadline is due ``lead`` before
# it, the next ones every ``interval`` after the last one accounted for. A
# moment that falls while the clock is paused is not due at all: after a
# resume the urging carries on at the first step of that rhythm after the
# resumption, instead of firing everything the pause held back.
Pause = tuple[datetime, datetime]  # (paused at, resumed at)


def _step_out_of_pauses(t: datetime, interval: timedelta, pauses: Sequence[Pause]) -> datetime:
    for start, end in sorted(pauses):
        if start <= t <= end:
            t += interval * ((end - t) // interval + 1)
    return t


def next_urging(deadline: datetime, lead: timedelta, interval: timedelta, urged: int,
                last_due: datetime | None, pauses: Sequence[Pause] = ()) -> datetime:
    """When the next urging of ``deadline`` is due, ``urged`` moments having
    been accounted for already (the latest of them due at ``last_due``)."""
    base = deadline - lead if urged == 0 or last_due is None else last_due + interval
    return _step_out_of_pauses(base, interval, pauses)


@dataclass(frozen=True)
class DueUrging:
    """The moments due by now for one deadline, fired as one urging: after
    downtime the timer records one urging saying how many it stands for,
    not a burst of hundreds."""

    count: int
    first_due_at: datetime
    due_at: datetime  # the latest of them

    @property
    def missed(self) -> int:
        return self.count - 1


def due_urging(deadline: datetime, lead: timedelta, interval: timedelta, urged: int,
               last_due: datetime | None, now: datetime,
               pauses: Sequence[Pause] = ()) -> DueUrging | None:
    first = next_urging(deadline, lead, interval, urged, last_due, pauses)
    if first > now:
        return None
    last_k = (now - first) // interval
    count = last_k + 1
    for start, end in pauses:
        lo, hi = max(start, first), min(end, now)
        if lo <= hi:  # grid points first + k * interval inside the pause
            count -= max(0, (hi - first) // interval - (-((first - lo) // interval)) + 1)
    latest = first + last_k * interval
    for start, end in sorted(pauses, reverse=True):
        if start <= latest <= end:
            latest = first + (-((first - start) // interval) - 1) * interval
    return DueUrging(count, first, latest)


def remaining_after_pause(deadline: datetime, paused_at: datetime, resumed_at: datetime,
                          working: bool, calendar: WorkingCalendar,
                          set_at: datetime | None = None) -> datetime:
    """A paused clock keeps the time that was left when it stopped: the new
    deadline is that much time after the resumption (working time for a
    working-day promise). A deadline set while the clock was already paused
    (an order dispatched during the pause) has not run at all: its time left
    counts from when it was set, not from the pause."""
    stopped = max(paused_at, set_at) if set_at is not None else paused_at
    if deadline <= stopped:
        return deadline  # already overdue when paused: pausing does not forgive it
    if working:
        left = calendar.working_seconds_between(stopped, deadline)
        return calendar.add_working_seconds(resumed_at, left)
    return resumed_at + (deadline - stopped)


def _chain(value: Any, field_name: str) -> tuple[str, ...]:
    """A single name (the old form) is a chain of one level."""
    names = [value] if isinstance(value, str) else value
    if (not isinstance(names, list) or not names
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise InvalidValue(f"{field_name} must be a name or a non-empty list of names",
                           field=field_name)
    return tuple(n.strip() for n in names)


def _positive(value: Any, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidValue(f"{field_name} must be a positive integer", field=field_name)
    return value
