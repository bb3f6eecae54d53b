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
from typing import Any, Mapping

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
    escalate_to: str = "supervisor"
    dispatch_desk: str = "dispatch"


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
            escalate_to=str(u.get("escalate_to", "supervisor")),
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

    def urge_timing(self, type: str, category: str, priority: str) -> tuple[timedelta, timedelta]:
        rule = self.rule_for(type, category, priority)
        lead = (rule.urge_lead if rule and rule.urge_lead else self.urging.lead).approx
        interval = (rule.urge_interval if rule and rule.urge_interval
                    else self.urging.interval).approx
        return lead, interval

    def callback_due(self, type: str, resolved_at: datetime,
                     calendar: WorkingCalendar) -> tuple[datetime, datetime] | None:
        """(first attempt due, give up at) or None if the type gets no callback."""
        if type not in self.callback.types:
            return None
        return (self.callback.due.after(resolved_at, calendar),
                self.callback.retry_window.after(resolved_at, calendar))


def urge_moments(deadline: datetime, lead: timedelta, interval: timedelta,
                 now: datetime) -> list[datetime]:
    """Every urging due at or before ``now`` for one deadline: the first at
    ``deadline - lead``, then one every ``interval``. Derived, not stored:
    the aggregate's urge count says how many of them already fired."""
    first = deadline - lead
    if now < first:
        return []
    count = int((now - first) / interval) + 1
    return [first + k * interval for k in range(count)]


def remaining_after_pause(deadline: datetime, paused_at: datetime, resumed_at: datetime,
                          working: bool, calendar: WorkingCalendar) -> datetime:
    """A paused clock keeps the time that was left when it stopped: the new
    deadline is that much time after the resumption (working time for a
    working-day promise)."""
    if deadline <= paused_at:
        return deadline  # already overdue when paused: pausing does not forgive it
    if working:
        left = calendar.working_seconds_between(paused_at, deadline)
        return calendar.add_working_seconds(resumed_at, left)
    return resumed_at + (deadline - paused_at)


def _positive(value: Any, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidValue(f"{field_name} must be a positive integer", field=field_name)
    return value
