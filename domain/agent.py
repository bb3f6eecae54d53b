"""An agent's working states: the facts behind the agent board, occupancy
and the ACD's choice of who rings next."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import LianxinAggregate, require_aware, require_text, stable_id
from domain.errors import InvalidValue, InvariantViolation


class AgentState(str, Enum):
    LOGGED_OUT = "logged_out"
    NOT_READY = "not_ready"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


def agent_id_for(employee_no: str) -> UUID:
    return stable_id("agent", employee_no)


def _check_skills(skills: dict[str, int]) -> dict[str, int]:
    if not isinstance(skills, dict):
        raise InvalidValue("skills must map skill name to level", field="skills")
    for name, level in skills.items():
        if not isinstance(name, str) or not name:
            raise InvalidValue("skill names must be non-empty strings", field="skills")
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 10:
            raise InvalidValue(f"level of skill {name} must be an integer 1..10", field="skills")
    return dict(skills)


class Agent(LianxinAggregate):
    class Registered(LianxinAggregate.Created):
        """v2: the agent's name (an employee's personal data) is in
        ``pii["name"]``; the employee number identifies the agent
        everywhere else. v1 ``name`` moves to ``pii`` on read."""

        class_version = 2
        employee_no: str
        team: str
        skills: dict[str, int]
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["pii"] = {"name": state.pop("name", "")}

    @event(Registered)
    def __init__(self, *, employee_no: str, team: str, skills: dict[str, int],
                 pii: dict[str, Any], occurred_at: datetime, command_id: str | None,
                 actor: str | None) -> None:
        self.employee_no = employee_no
        self.name: str = pii.get("name") or ""  # in memory only
        self.team = team
        self.skills = dict(skills)
        self.state = AgentState.LOGGED_OUT
        self.state_since = occurred_at
        self.reason: str | None = None
        self.endpoint: str | None = None
        self.call_id: UUID | None = None
        self.wrap_up_started: datetime | None = None
        self.ready_since: datetime | None = None  # for longest-idle routing
        self._remember(command_id)

    @classmethod
    def register(cls, *, employee_no: str, name: str, team: str, skills: dict[str, int],
                 occurred_at: datetime, command_id: str | None = None,
                 actor: str | None = None) -> Agent:
        require_text(employee_no, "employee_no")
        require_text(name, "name")
        require_aware(occurred_at)
        return cls._create(cls.Registered, id=agent_id_for(employee_no), employee_no=employee_no,
                   team=team or "", skills=_check_skills(skills), pii={"name": name},
                   occurred_at=occurred_at, command_id=command_id, actor=actor)

    def _set_state(self, state: AgentState, occurred_at: datetime) -> None:
        self.state = state
        self.state_since = occurred_at

    @property
    def is_available(self) -> bool:
        return self.state == AgentState.READY

    # -- session -----------------------------------------------------------
    def log_in(self, endpoint: str, occurred_at: datetime, command_id: str | None = None,
               actor: str | None = None) -> None:
        if self.state != AgentState.LOGGED_OUT:
            raise InvariantViolation(f"agent {self.employee_no} is already logged in")
        self._logged_in(endpoint=require_text(endpoint, "endpoint"),
                        occurred_at=require_aware(occurred_at), command_id=command_id,
                        actor=actor)

    @event("LoggedIn")
    def _logged_in(self, endpoint: str, occurred_at: datetime, command_id: str | None,
                   actor: str | None) -> None:
        self.endpoint = endpoint
        self.reason = "login"
        self._set_state(AgentState.NOT_READY, occurred_at)
        self._remember(command_id)

    def log_out(self, occurred_at: datetime, reason: str = "", command_id: str | None = None,
                actor: str | None = None) -> None:
        if self.state == AgentState.LOGGED_OUT:
            raise InvariantViolation(f"agent {self.employee_no} is not logged in")
        if self.state in (AgentState.ON_CALL, AgentState.RINGING):
            raise InvariantViolation(f"agent {self.employee_no} is {self.state.value}; log out after the call")
        self._logged_out(reason=reason or "", occurred_at=require_aware(occurred_at),
                         command_id=command_id, actor=actor)

    @event("LoggedOut")
    def _logged_out(self, reason: str, occurred_at: datetime, command_id: str | None,
                    actor: str | None) -> None:
        self.endpoint = None
        self.reason = reason
        self.ready_since = None
        self._set_state(AgentState.LOGGED_OUT, occurred_at)
        self._remember(command_id)

    def make_ready(self, occurred_at: datetime, command_id: str | None = None,
                   actor: str | None = None) -> None:
        if self.state not in (AgentState.NOT_READY, AgentState.WRAP_UP):
            raise InvariantViolation(f"agent {self.employee_no} is {self.state.value}; cannot become ready")
        self._became_ready(wrap_up_s=self._wrap_up_seconds(require_aware(occurred_at)),
                           occurred_at=occurred_at, command_id=command_id, actor=actor)

    def _wrap_up_seconds(self, occurred_at: datetime) -> float | None:
        if self.wrap_up_started is None:
            return None
        return max(0.0, (occurred_at - self.wrap_up_started).total_seconds())

    @event("BecameReady")
    def _became_ready(self, wrap_up_s: float | None, occurred_at: datetime,
                      command_id: str | None, actor: str | None) -> None:
        self._close_wrap_up(occurred_at)
        self.reason = None
        self.ready_since = occurred_at
        self._set_state(AgentState.READY, occurred_at)
        self._remember(command_id)

    def make_not_ready(self, reason: str, occurred_at: datetime, command_id: str | None = None,
                       actor: str | None = None) -> None:
        """Not ready with a reason code (break, meal, training, ring_no_answer...).
        Refused while a call is ringing or connected: the phone is in use."""
        if self.state in (AgentState.LOGGED_OUT, AgentState.ON_CALL, AgentState.RINGING):
            raise InvariantViolation(f"agent {self.employee_no} is {self.state.value}; cannot go not ready now")
        self._became_not_ready(reason=require_text(reason, "reason"),
                               wrap_up_s=self._wrap_up_seconds(require_aware(occurred_at)),
                               occurred_at=occurred_at, command_id=command_id, actor=actor)

    @event("BecameNotReady")
    def _became_not_ready(self, reason: str, wrap_up_s: float | None, occurred_at: datetime,
                          command_id: str | None, actor: str | None) -> None:
        self._close_wrap_up(occurred_at)
        self.reason = reason
        self.ready_since = None
        self._set_state(AgentState.NOT_READY, occurred_at)
        self._remember(command_id)

    # -- calls ---------------------------------------------------------------
    def ring(self, call_id: UUID, leg_id: str, occurred_at: datetime,
             command_id: str | None = None, actor: str | None = None) -> None:
        if self.state != AgentState.READY:
            raise InvariantViolation(
                f"agent {self.employee_no} is {self.state.value}, not ready: cannot route a call",
                agent_id=str(self.id),
            )
        self._ringing(call_id=call_id, leg_id=leg_id, occurred_at=require_aware(occurred_at),
                      command_id=command_id, actor=actor)

    def ring_for_consult(self, call_id: UUID, leg_id: str, occurred_at: datetime,
                         command_id: str | None = None, actor: str | None = None) -> None:
        """A colleague calls this agent about a caller (an attended transfer,
        through the API or from their own phone). "Ready only" is the ACD's
        rule for routing; nobody routed this call, so an agent who is not
        ready or in wrap-up can be rung too. Not one who is logged out or
        already on the phone. Their wrap-up, if any, ends with the ring."""
        require_aware(occurred_at)
        if self.state not in (AgentState.READY, AgentState.NOT_READY, AgentState.WRAP_UP):
            raise InvariantViolation(
                f"agent {self.employee_no} is {self.state.value}: cannot take a consultation",
                agent_id=str(self.id),
            )
        self._ringing(call_id=call_id, leg_id=leg_id, occurred_at=occurred_at,
                      command_id=command_id, actor=actor)

    @event("Ringing")
    def _ringing(self, call_id: UUID, leg_id: str, occurred_at: datetime,
                 command_id: str | None, actor: str | None) -> None:
        # Stored Ringing events all follow READY (wrap-up already closed):
        # closing it here only matters for a consult ring during wrap-up.
        self._close_wrap_up(occurred_at)
        self.call_id = call_id
        self.ready_since = None
        self._set_state(AgentState.RINGING, occurred_at)
        self._remember(command_id)

    def miss_call(self, call_id: UUID, outcome: str, occurred_at: datetime,
                  command_id: str | None = None, actor: str | None = None) -> None:
        """Ring-no-answer: the agent is put not-ready (reason ``ring_no_answer``)
        so the ACD does not keep offering calls to an empty desk. A caller who
        hangs up while it rings (``canceled``) sends the agent back to ready."""
        if self.state != AgentState.RINGING or self.call_id != call_id:
            raise InvariantViolation(f"agent {self.employee_no} is not ringing for this call")
        self._missed_call(call_id=call_id, outcome=outcome,
                          occurred_at=require_aware(occurred_at), command_id=command_id,
                          actor=actor)

    @event("MissedCall")
    def _missed_call(self, call_id: UUID, outcome: str, occurred_at: datetime,
                     command_id: str | None, actor: str | None) -> None:
        self.call_id = None
        if outcome == "canceled":
            self.reason = None
            self.ready_since = occurred_at
            self._set_state(AgentState.READY, occurred_at)
        else:
            self.reason = "ring_no_answer"
            self._set_state(AgentState.NOT_READY, occurred_at)
        self._remember(command_id)

    def connect(self, call_id: UUID, occurred_at: datetime, command_id: str | None = None,
                actor: str | None = None) -> None:
        if self.state != AgentState.RINGING or self.call_id != call_id:
            raise InvariantViolation(f"agent {self.employee_no} is not ringing for this call")
        self._call_connected(call_id=call_id, occurred_at=require_aware(occurred_at),
                             command_id=command_id, actor=actor)

    @event("CallConnected")
    def _call_connected(self, call_id: UUID, occurred_at: datetime, command_id: str | None,
                        actor: str | None) -> None:
        self._set_state(AgentState.ON_CALL, occurred_at)
        self._remember(command_id)

    def release_call(self, call_id: UUID, occurred_at: datetime, wrap_up: bool = True,
                     command_id: str | None = None, actor: str | None = None) -> None:
        """The agent's leg of the call is over; after-call work starts (its
        duration is measured until the agent is ready or not ready again)."""
        if self.state != AgentState.ON_CALL or self.call_id != call_id:
            raise InvariantViolation(f"agent {self.employee_no} is not on this call")
        self._call_released(call_id=call_id, wrap_up=bool(wrap_up),
                            occurred_at=require_aware(occurred_at), command_id=command_id,
                            actor=actor)

    @event("CallReleased")
    def _call_released(self, call_id: UUID, wrap_up: bool, occurred_at: datetime,
                       command_id: str | None, actor: str | None) -> None:
        self.call_id = None
        if wrap_up:
            self.wrap_up_started = occurred_at
            self._set_state(AgentState.WRAP_UP, occurred_at)
        else:
            self.ready_since = occurred_at
            self._set_state(AgentState.READY, occurred_at)
        self._remember(command_id)

    def _close_wrap_up(self, occurred_at: datetime) -> None:
        self.wrap_up_started = None

    def change_skills(self, skills: dict[str, int], occurred_at: datetime,
                      command_id: str | None = None, actor: str | None = None) -> None:
        self._skills_changed(skills=_check_skills(skills), occurred_at=require_aware(occurred_at),
                             command_id=command_id, actor=actor)

    @event("SkillsChanged")
    def _skills_changed(self, skills: dict[str, int], occurred_at: datetime,
                        command_id: str | None, actor: str | None) -> None:
        self.skills = dict(skills)
        self._remember(command_id)
