"""Loads the work-order policy and the working-day calendar from their TOML
files (the packaged defaults in ``lianxin/config`` unless settings name other
files), so handlers and timers share one parsed copy."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from domain.calendar import WorkingCalendar
from domain.deadlines import Policy
from domain.errors import DomainError, InvalidValue

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
    return WorkOrderRules(policy, calendar)


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
