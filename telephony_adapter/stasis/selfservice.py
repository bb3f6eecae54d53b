"""IVR self-service answers: work-order status by number, outage information
by area. The lookups are the work-orders area's queries
(``queries.self_service``); this module turns their answers into what the
caller hears (Asterisk sound names) and what the call records."""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Answer:
    result: str  # recorded on the call (SelfServiceUsed.result)
    sounds: tuple[str, ...]  # played to the caller


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def work_order_answer(found: Any) -> Answer:
    if not found:
        return Answer("not_found", ("custom/work-order-not-found",))
    status = str(_field(found, "status") or _field(found, "state") or found)
    return Answer(status, ("custom/work-order-status", f"custom/status-{status}"))


def outage_answer(found: Any) -> Answer:
    items = found if isinstance(found, (list, tuple)) else ([found] if found else [])
    if not items:
        return Answer("no_outage", ("custom/no-outage-in-area",))
    kinds = sorted({str(_field(i, "kind") or _field(i, "type") or "outage") for i in items})
    return Answer(f"{len(items)} outage(s): {', '.join(kinds)}",
                  ("custom/outages-in-area", f"digits:{len(items)}",
                   *(f"custom/outage-{k}" for k in kinds)))


class SelfServiceDesk:
    """Calls ``queries.self_service`` if that module exists; ``lookups`` lets
    tests and the demo provide the two functions directly."""

    def __init__(self, lianxin: Any = None,
                 lookups: dict[str, Callable[[Any, str], Any]] | None = None) -> None:
        self.lianxin = lianxin
        self.lookups = dict(lookups or {})
        if not self.lookups:
            try:
                mod = importlib.import_module("queries.self_service")
            except ImportError:
                mod = None
            if mod is not None:
                for name in ("work_order_status", "outage_info"):
                    fn = getattr(mod, name, None)
                    if fn is not None:
                        self.lookups[name] = fn

    async def __call__(self, service: str, reference: str) -> Answer:
        fn = self.lookups.get(service)
        if fn is None:
            return Answer("unavailable", ("custom/service-unavailable",))
        try:
            found = await asyncio.to_thread(fn, self.lianxin, reference)
        except Exception as exc:  # noqa: BLE001 - the caller hears "unavailable", not silence
            return Answer(f"unavailable: {type(exc).__name__}", ("custom/service-unavailable",))
        if service == "work_order_status":
            return work_order_answer(found)
        return outage_answer(found)
