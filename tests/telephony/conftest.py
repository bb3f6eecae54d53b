"""Helpers for the Stasis app's tests: captured traces, agents, event lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from commands import messages as m

# The one copy of the twelve Asterisk 22 captures (with their README).
TRACES = Path(__file__).resolve().parent.parent / "fixtures" / "ari_traces"
TRACE_NAMES = sorted(p.stem for p in TRACES.glob("*.jsonl") if not p.stem.endswith(".rest"))


def trace(name: str) -> list[dict[str, Any]]:
    with (TRACES / f"{name}.jsonl").open() as fh:
        return [json.loads(line)["message"] for line in fh if line.strip()]


def staff(lianxin: Any, *employees: str, skills: dict[str, int] | None = None) -> None:
    """Registered, logged in on PJSIP/<n> and ready."""
    for emp in employees:
        lianxin.commands.handle(m.RegisterAgent(employee_no=emp, name=f"Agent {emp}",
                                                skills=dict(skills or {})))
        lianxin.commands.handle(m.LogIn(employee_no=emp, endpoint=f"PJSIP/{emp}"))
        lianxin.commands.handle(m.MakeReady(employee_no=emp))


def events_since(lianxin: Any, position: int) -> list[Any]:
    app = lianxin.app
    out = []
    while True:
        batch = app.recorder.select_notifications(start=position, limit=500,
                                                  inclusive_of_start=False)
        if not batch:
            return out
        out.extend(app.mapper.to_domain_event(n) for n in batch)
        position = batch[-1].id


def names(events: list[Any], prefix: str = "") -> list[str]:
    return [type(e).__qualname__ for e in events if type(e).__qualname__.startswith(prefix)]
