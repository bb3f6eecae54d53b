"""How read models store instants: UTC ISO-8601 with microseconds, so that
text order is time order and SQL ``MIN``/``ORDER BY`` work on them."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)

