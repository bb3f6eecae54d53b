"""The live wallboard (definitions in projections.wallboard)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from domain.errors import InvalidValue
from projections.wallboard import SqliteWallboardStore, render
from queries.read_db import reading


def wallboard(lianxin: Any, *, at: datetime | None = None,
              threshold_s: int | None = None) -> dict[str, Any]:
    """Per queue: waiting now, longest wait, today's offered / answered /
    abandoned / exited and service level; the waiting calls; each agent's
    state, and agents by state and by team.
    ``at`` (default now) is the instant longest waits are measured to and
    whose local day is "today"; ``threshold_s`` overrides the configured
    service-level threshold. Who is waiting and agents' states are always
    the present ones: the wallboard of a past instant is
    ``queries.point_in_time.wallboard_as_of``."""
    settings = lianxin.settings
    at = at or datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise InvalidValue("at must carry a timezone offset", field="at")
    threshold = settings.service_level_threshold_s if threshold_s is None else threshold_s
    if not isinstance(threshold, int) or threshold < 0:
        raise InvalidValue("threshold_s must be a whole number of seconds >= 0",
                           field="threshold_s")
    with reading(lianxin) as db:
        return render(SqliteWallboardStore(db), at=at, tz=ZoneInfo(settings.timezone),
                      threshold_s=threshold)
