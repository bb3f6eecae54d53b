"""Loads the work-order policy and the working-day calendar from their TOML
files (the packaged defaults in ``lianxin/config`` unless settings name other
files), so handlers and timers share one parsed copy; and the few rules that
join the policy with an order's own stamped facts."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from domain.calendar import WorkingCalendar
from domain.deadlines import Cadence, Policy
from domain.errors import DomainError, InvalidValue

log = logging.getLogger(__name__)

# How far ahead a promise made today may end: the calendar should list every
# year in that window. 45 days covers the longest default promise (10
# working days over a holiday) and starts warning in mid-November, when the
# State Council publishes the next year's arrangement.
CALENDAR_HORIZON = timedelta(days=45)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "lianxin" / "config"
DEFAULT_POLICY = CONFIG_DIR / "work_order_policy.toml"
DEFAULT_CALENDAR = CONFIG_DIR / "calendar_cn.toml"


@dataclass(frozen=True)
class WorkOrderRules:
    policy: Policy
    calendar: WorkingCalendar


def _read(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidValue(f"{what} file {path} does not exist", field=what) from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidValue(f"{what} file {path} is not valid TOML: {exc}", field=what) from None


@lru_cache(maxsize=16)
def load_rules(policy_path: str = "", calendar_path: str = "",
               timezone: str = "Asia/Shanghai") -> WorkOrderRules:
    ppath = Path(policy_path) if policy_path else DEFAULT_POLICY
    cpath = Path(calendar_path) if calendar_path else DEFAULT_CALENDAR
    policy = _parsed(lambda: Policy.from_mapping(_read(ppath, "policy")), ppath)
    calendar = _parsed(lambda: WorkingCalendar.from_mapping(_read(cpath, "calendar"),
                                                            timezone=timezone), cpath)
    for warning in calendar_warnings(calendar, cpath):
        log.warning("%s", warning)
    return WorkOrderRules(policy, calendar)


def calendar_warnings(calendar: WorkingCalendar, path: Path | str,
                      today: date | None = None) -> list[str]:
    """At start-up: the years a deadline counted from today may run into
    that the calendar file does not list (they would get weekends only)."""
    now = (datetime.combine(today, datetime.min.time(), tzinfo=calendar.tz) if today
           else datetime.now(timezone.utc))
    missing = calendar.missing_years(now, now + CALENDAR_HORIZON)
    return [f"calendar {path} does not list {year}: working-day deadlines in {year} count "
            "weekends only (no holidays, no 调休); append a [years." + str(year) + "] table"
            for year in missing]


def calendar_gaps(calendar: WorkingCalendar, start: datetime, deadlines: dict[str, datetime],
                  units: dict[str, str]) -> dict[str, list[int]]:
    """Per working-day deadline, the unlisted years its count crossed."""
    gaps = {}
    for stage, when in deadlines.items():
        if units.get(stage) == "working_days":
            years = calendar.missing_years(start, when)
            if years:
                gaps[stage] = years
    return gaps


def cadence_for(wo: Any, stage: str, policy: Policy) -> Cadence:
    """How ``stage`` of this order is urged: as stamped with its deadline;
    orders whose deadlines predate the stamp (DeadlinesSet v1) follow the
    current policy."""
    stamped = getattr(wo, "cadence", {}).get(stage)
    if stamped:
        return Cadence.from_dict(stamped)
    return policy.cadence(wo.type, wo.category, wo.priority)


def _parsed(parse: Any, path: Path) -> Any:
    """Names the file in the error, so an administrator knows which to fix."""
    try:
        return parse()
    except DomainError as exc:
        if str(path) in exc.message:
            raise
        raise InvalidValue(f"{path}: {exc.message}", **exc.context) from None


def rules_of(ctx: Any) -> WorkOrderRules:
    """The rules attached to a handler context by the wiring, else the
    packaged defaults (unit tests, scripts that build a bare service)."""
    rules = getattr(ctx, "work_order_rules", None)
    return rules if rules is not None else load_rules()
