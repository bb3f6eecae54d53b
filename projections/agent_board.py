"""Agent board: each agent's state, reason and since when, and the call they
are on. ``agent_transition`` is the one reading of agent events into states;
the wallboard's "agents by state" uses it too, so the two never disagree."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from projections.runner import drop_tables
from projections.timefmt import iso

# Sentinel: "this event does not change the agent's current call".
KEEP = object()


@dataclass(frozen=True)
class AgentTransition:
    state: str | None  # None: the state is unchanged
    reason: Any = KEEP  # str | None, or KEEP
    call_id: Any = KEEP  # str | None, or KEEP


def agent_transition(event: Any) -> AgentTransition | None:
    """What an agent event does to the board, or None if it is not an agent
    state event (skills changes, other aggregates)."""
    kind = type(event).__qualname__
    if not kind.startswith("Agent."):
        return None
    name = kind.split(".", 1)[1]
    if name == "Registered":
        return AgentTransition("logged_out", None, None)
    if name == "LoggedIn":
        return AgentTransition("not_ready", "login", KEEP)
    if name == "LoggedOut":
        return AgentTransition("logged_out", getattr(event, "reason", "") or None, None)
    if name == "BecameReady":
        return AgentTransition("ready", None, KEEP)
    if name == "BecameNotReady":
        return AgentTransition("not_ready", event.reason, KEEP)
    if name == "Ringing":
        return AgentTransition("ringing", None, str(event.call_id))
    if name == "MissedCall":
        if event.outcome == "canceled":
            return AgentTransition("ready", None, None)
        return AgentTransition("not_ready", "ring_no_answer", None)
    if name == "CallConnected":
        return AgentTransition("on_call", None, str(event.call_id))
    if name == "CallReleased":
        return AgentTransition("wrap_up" if event.wrap_up else "ready", None, None)
    return AgentTransition(None)


class AgentBoardProjection:
    name = "agent_board"
    version = 1

    def reset(self, db: sqlite3.Connection) -> None:
        drop_tables(db, ("agent_board",))

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS agent_board ("
            " agent_id TEXT PRIMARY KEY, employee_no TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
            " team TEXT NOT NULL, skills TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,"
            " since TEXT NOT NULL, call_id TEXT, endpoint TEXT, version INTEGER NOT NULL,"
            " position INTEGER NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS agent_board_team ON agent_board(team, state)")

    def apply(self, db: sqlite3.Connection, event: Any, position: int) -> None:
        kind = type(event).__qualname__
        if not kind.startswith("Agent."):
            return
        agent_id = str(event.originator_id)
        version = event.originator_version
        if kind == "Agent.Registered":
            db.execute(
                "INSERT INTO agent_board (agent_id, employee_no, name, team, skills, state,"
                " reason, since, call_id, endpoint, version, position)"
                " VALUES (?,?,?,?,?,'logged_out',NULL,?,NULL,NULL,?,?)",
                (agent_id, event.employee_no, (event.pii or {}).get("name") or "", event.team,
                 json.dumps(event.skills, sort_keys=True), iso(event.occurred_at), version,
                 position))
            return
        sets = ["version=?", "position=?"]
        args: list[Any] = [version, position]
        if kind == "Agent.SkillsChanged":
            sets.append("skills=?")
            args.append(json.dumps(event.skills, sort_keys=True))
        if kind == "Agent.LoggedIn":
            sets.append("endpoint=?")
            args.append(event.endpoint)
        elif kind == "Agent.LoggedOut":
            sets.append("endpoint=NULL")
        change = agent_transition(event)
        if change is not None and change.state is not None:
            sets += ["state=?", "since=?"]
            args += [change.state, iso(event.occurred_at)]
            if change.reason is not KEEP:
                sets.append("reason=?")
                args.append(change.reason)
            if change.call_id is not KEEP:
                sets.append("call_id=?")
                args.append(change.call_id)
        db.execute(f"UPDATE agent_board SET {', '.join(sets)} WHERE agent_id=?",
                   (*args, agent_id))
