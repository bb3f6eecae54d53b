"""The agent board."""

from __future__ import annotations

import json
from typing import Any

from domain.errors import NotFound
from queries.read_db import reading

_COLUMNS = ("agent_id, employee_no, name, team, skills, state, reason, since, call_id,"
            " endpoint, version, position")


def _row(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["skills"] = json.loads(d["skills"])
    return d


def list_agents(lianxin: Any, *, team: str | None = None,
                state: str | None = None) -> list[dict[str, Any]]:
    """Every registered agent, by team then employee number."""
    sql = f"SELECT {_COLUMNS} FROM agent_board"
    where, args = [], []
    if team is not None:
        where.append("team=?")
        args.append(team)
    if state is not None:
        where.append("state=?")
        args.append(state)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY team, employee_no"
    with reading(lianxin) as db:
        return [_row(r) for r in db.execute(sql, args)]


def get_agent(lianxin: Any, employee_no: str) -> dict[str, Any]:
    with reading(lianxin) as db:
        row = db.execute(f"SELECT {_COLUMNS} FROM agent_board WHERE employee_no=?",
                         (employee_no,)).fetchone()
    if row is None:
        raise NotFound(f"agent {employee_no} not found", employee_no=employee_no)
    return _row(row)
