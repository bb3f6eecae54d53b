"""The two IVR self-service lookups (the Stasis call flow calls exactly these,
see ``telephony_adapter.stasis.selfservice``).

Both are safe to call with anything a caller keys in: an unknown number or
area is an empty answer, never an error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.errors import DomainError
from queries import work_orders as q


def work_order_status(lianxin: Any, number: str) -> str | None:
    """The status word of the order with this number (``open``,
    ``dispatched``, ``accepted``, ``resolved``, ``closed``), or None. An order
    merged into another answers with the status of the one still handled."""
    number = (number or "").strip()
    if not number.isdigit():
        return None
    q.fresh(lianxin)
    try:
        order = q.get_work_order(lianxin, number)
        seen = {order["work_order_id"]}
        while order["status"] == "merged" and order["merged_into"] not in seen:
            seen.add(order["merged_into"])
            order = q.get_work_order(lianxin, order["merged_into"])
    except DomainError:
        return None
    return str(order["status"])


def outage_info(lianxin: Any, area: str, at: datetime | None = None) -> list[dict[str, Any]]:
    """Outages covering ``area`` that are current or still to come at ``at``
    (default now): kind, start, end, reason; empty if none."""
    try:
        q.fresh(lianxin)
        found = q.outages_in_area(lianxin, area, at=at)
    except DomainError:
        return []
    return [{"reference": o["reference"], "kind": o["kind"], "start": o["start"],
             "end": o["end"], "reason": o["reason"], "current": o["current"]} for o in found]
