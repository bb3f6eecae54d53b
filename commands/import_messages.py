"""Commands only importers send: they replay what another system recorded,
so they state where an aggregate should end up rather than one intention."""

from __future__ import annotations

from dataclasses import dataclass

from commands.messages import Command

AGENT_TARGETS = ("ready", "not_ready", "logged_out")


@dataclass(kw_only=True)
class SyncImportedAgent(Command):
    """Bring an agent to the state an imported log says it was in at
    ``occurred_at``: register it if unknown, log it in, make it ready or not
    ready (with the log's reason), or log it out, using the ordinary agent
    events. Nothing happens when the agent is already there, or when the
    agent's history from this importer already goes past ``occurred_at`` (a
    re-imported file)."""

    employee_no: str
    name: str
    target: str  # ready | not_ready | logged_out
    reason: str = ""
    team: str = ""
    endpoint: str = ""
    source: str = "queue_log:"  # prefix of this importer's command ids
