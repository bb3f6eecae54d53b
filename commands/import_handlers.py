"""Handlers of the importers' commands (see commands/import_messages.py)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from commands.bus import UnitOfWork
from commands.errors import AlreadyApplied
from commands.handlers import _kw, handles
from commands.import_messages import AGENT_TARGETS, SyncImportedAgent
from domain.agent import Agent, AgentState, agent_id_for
from domain.errors import InvalidValue, InvariantViolation


@dataclass(frozen=True)
class AgentSyncResult:
    id: UUID
    registered: bool
    changed: bool


def _superseded(agent: Agent, cmd: SyncImportedAgent) -> bool:
    """True when this importer already recorded the agent's history past the
    command's time: the command belongs to a file imported before, and
    replaying it would rewind the agent."""
    applied = tuple(agent.applied_commands)
    if not applied or not applied[-1].startswith(cmd.source):
        return False
    return cmd.occurred_at is not None and cmd.occurred_at < agent.state_since


@handles(SyncImportedAgent)
def sync_imported_agent(uow: UnitOfWork, cmd: SyncImportedAgent) -> AgentSyncResult:
    if cmd.target not in AGENT_TARGETS:
        raise InvalidValue(f"target must be one of {list(AGENT_TARGETS)}", field="target")
    kw = _kw(uow, cmd)
    agent = uow.find(Agent, agent_id_for(cmd.employee_no))
    registered = False
    if agent is None:
        agent = Agent.register(employee_no=cmd.employee_no, name=cmd.name, team=cmd.team,
                               skills={}, **kw)
        uow.add(agent)
        registered = True
    else:
        if agent.has_applied(cmd.command_id):
            raise AlreadyApplied(agent.id)
        if _superseded(agent, cmd):
            return AgentSyncResult(agent.id, False, False)
    before = len(agent.pending_events)
    _move(agent, cmd, kw)
    return AgentSyncResult(agent.id, registered, registered or len(agent.pending_events) > before)


def _move(agent: Agent, cmd: SyncImportedAgent, kw: dict) -> None:
    if agent.state in (AgentState.RINGING, AgentState.ON_CALL):
        raise InvariantViolation(f"agent {agent.employee_no} is {agent.state.value}; "
                                 f"cannot become {cmd.target} now", agent_id=str(agent.id))
    if cmd.target == "logged_out":
        if agent.state != AgentState.LOGGED_OUT:
            agent.log_out(reason=cmd.reason or "logoff", **kw)
        return
    if agent.state == AgentState.LOGGED_OUT:
        agent.log_in(cmd.endpoint or f"queue_log/{agent.employee_no}", **kw)
    if cmd.target == "ready":
        if agent.state != AgentState.READY:
            agent.make_ready(**kw)
        return
    reason = cmd.reason or "paused"
    if agent.state != AgentState.NOT_READY or agent.reason != reason:
        agent.make_not_ready(reason, **kw)
