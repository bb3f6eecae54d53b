"""A call's lifecycle: one conversation from offer to survey.

The Call aggregate's id is the conversation id; it runs from the IVR through
queues, agent legs, transfers and conference to wrap-up, survey and the work
orders linked to it. Public methods check invariants and raise domain errors;
the private ``@event`` methods only record what happened (they are replayed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import LianxinAggregate, require_aware, require_text, stable_id
from domain.errors import InvalidValue, InvariantViolation


class CallState(str, Enum):
    OFFERED = "offered"
    IVR = "ivr"
    QUEUED = "queued"
    RINGING = "ringing"  # an agent's phone is alerting
    CONNECTED = "connected"
    HELD = "held"
    # transferred to a number outside the center; the telephony adapter keeps
    # the caller bridged with that party until one of them hangs up
    OUTSIDE = "outside"
    ENDED = "ended"
    ABANDONED = "abandoned"


LIVE_STATES = {CallState.OFFERED, CallState.IVR, CallState.QUEUED, CallState.RINGING,
               CallState.CONNECTED, CallState.HELD, CallState.OUTSIDE}
TERMINAL_STATES = {CallState.ENDED, CallState.ABANDONED}

HANGUP_PARTIES = {"caller", "agent", "system", "supervisor", "transfer"}
TRANSFER_KINDS = {"blind", "attended"}
TRANSFER_TARGETS = {"queue", "agent", "ivr", "external"}
MONITOR_MODES = {"listen", "whisper", "barge"}
SURVEY_SCALE = 5  # post-call keypad survey: 1 (very dissatisfied) .. 5 (very satisfied)
# How far a source time may lag the call's previous event (see _in_order).
CLOCK_SKEW = timedelta(seconds=60)
# Why a call entered a queue (``Queued.reason``): None for a plain entry (the
# IVR, an agent request, an import that does not say), ``overflow`` when a
# queue's overflow rule moved it (``from_queue`` says which), ``requeue`` when
# it was put back in line, ``transfer`` when a transfer sent it there.
QUEUE_REASONS = {"overflow", "requeue", "transfer"}
OVERFLOW_ACTOR = "acd-overflow"  # v1 overflows are told by the actor "acd-overflow:<queue>"
RING_OUTCOMES = {"no_answer", "busy", "unavailable", "rejected", "canceled"}
# Who ended an answered consult leg (without a transfer): the colleague hung
# up, the agent took the caller back, the call itself ended, or the system
# (an adapter that lost the leg).
CONSULT_ENDERS = {"colleague", "agent", "call", "system"}


def call_id_for(external_id: str) -> UUID:
    """Conversation id derived from the telephony id: a retried offer collides."""
    return stable_id("call", external_id)


def _party_to_pii_v1(state: dict[str, Any]) -> None:
    """ConferencePartyJoined/Left v1 -> v2: the party's name moves to pii."""
    state["pii"] = {"party": state.pop("party", None)}
    state["agent_id"] = None


class Call(LianxinAggregate):
    """One conversation. See docs/events.md for the event catalogue."""

    class Offered(LianxinAggregate.Created):
        """v2: an outbound call's dialed number is the customer's: it is in
        ``pii["dialed_number"]``, its pseudonym (as ``caller_hash``, so a
        callback matches the customer's own calls) in ``dialed_hash``, and
        ``dialed_number`` is empty. An inbound call's ``dialed_number`` is the
        center's own number, as in v1 (``dialed_hash`` empty). v1 outbound
        numbers move to ``pii`` on read, with no pseudonym (no key then)."""

        class_version = 2
        external_id: str
        dialed_number: str
        dialed_hash: str
        trunk: str
        direction: str
        caller_hash: str
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["dialed_hash"] = ""
            if state.get("direction") == "outbound":
                state["pii"] = {**(state.get("pii") or {}),
                                "dialed_number": state.get("dialed_number")}
                state["dialed_number"] = ""

    @event(Offered)
    def __init__(
        self,
        *,
        external_id: str,
        dialed_number: str,
        dialed_hash: str,
        trunk: str,
        direction: str,
        caller_hash: str,
        pii: dict[str, Any],
        occurred_at: datetime,
        command_id: str | None,
        actor: str | None,
    ) -> None:
        self.external_id = external_id
        # The number as dialed, in memory only (from ``pii`` when outbound).
        self.dialed_number = dialed_number or pii.get("dialed_number") or ""
        self.dialed_hash = dialed_hash
        self.trunk = trunk
        self.direction = direction
        self.caller_hash = caller_hash
        self.state = CallState.OFFERED
        self.offered_at = occurred_at
        self.last_at = occurred_at
        self.queue: str | None = None
        self.queued_at: datetime | None = None
        self.priority = 0
        self.required_skills: dict[str, int] = {}
        self.ivr_path: list[str] = []
        self.self_service: list[str] = []
        self.agent_id: UUID | None = None  # agent currently alerted or connected
        self.leg_id: str | None = None
        self.legs: dict[str, dict[str, Any]] = {}
        # the live consult leg of an attended transfer (alerted or answered)
        self.consult_leg_id: str | None = None
        self.answered_at: datetime | None = None
        self.held_since: datetime | None = None
        self.hold_s = 0.0
        self.recordings: dict[str, dict[str, Any]] = {}
        self.monitors: dict[str, str] = {}  # supervisor id -> mode
        self.conference: list[str] = []
        self.transfers = 0
        self.ended_at: datetime | None = None
        self.hung_up_by: str | None = None
        self.abandon_stage: str | None = None
        self.dispositions: list[str] = []
        self.wrapped_up = False
        self.survey_score: int | None = None
        self.work_orders: list[UUID] = []
        self._remember(command_id)

    # -- construction ------------------------------------------------------
    @classmethod
    def offer(
        cls,
        *,
        external_id: str,
        dialed_number: str,
        trunk: str,
        caller_hash: str,
        caller_number: str | None,
        occurred_at: datetime,
        direction: str = "inbound",
        dialed_hash: str = "",
        command_id: str | None = None,
        actor: str | None = None,
    ) -> Call:
        """``dialed_hash``: the pseudonym of an outbound call's dialed
        number, computed by the handler (which holds the key)."""
        require_text(external_id, "external_id")
        require_text(dialed_number, "dialed_number")
        require_aware(occurred_at)
        if direction not in ("inbound", "outbound"):
            raise InvalidValue("direction must be inbound or outbound", field="direction")
        pii: dict[str, Any] = {"caller_number": caller_number} if caller_number else {}
        outbound = direction == "outbound"
        if outbound:
            pii["dialed_number"] = dialed_number  # the customer's number
        return cls._create(
            cls.Offered,
            id=call_id_for(external_id),
            external_id=external_id,
            dialed_number="" if outbound else dialed_number,
            dialed_hash=dialed_hash if outbound else "",
            trunk=require_text(trunk or "", "trunk", allow_empty=True),
            direction=direction,
            caller_hash=caller_hash,
            pii=pii,
            occurred_at=occurred_at,
            command_id=command_id,
            actor=actor,
        )

    # -- guards ------------------------------------------------------------
    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def _must_be_live(self, action: str) -> None:
        if not self.is_live:
            raise InvariantViolation(
                f"cannot {action}: call has {self.state.value}", call_id=str(self.id)
            )

    def _in_order(self, occurred_at: datetime) -> datetime:
        """A source time may lag the call's last one a little (Asterisk's
        channels and a client's clock are not one clock), but not by more
        than ``CLOCK_SKEW``: a call that went back in time would give negative
        waits and offsets to every report that reads it."""
        require_aware(occurred_at)
        if occurred_at < self.last_at - CLOCK_SKEW:
            raise InvalidValue(
                f"occurred_at {occurred_at.isoformat()} is before this call's last event "
                f"({self.last_at.isoformat()}) by more than {CLOCK_SKEW.total_seconds():.0f} s",
                field="occurred_at")
        return occurred_at

    def _must_be_talking(self, action: str) -> None:
        if self.state not in (CallState.CONNECTED, CallState.HELD):
            raise InvariantViolation(
                f"cannot {action}: call is {self.state.value}, not connected",
                call_id=str(self.id),
            )

    # -- IVR ---------------------------------------------------------------
    def enter_ivr(self, menu: str, occurred_at: datetime, command_id: str | None = None,
                  actor: str | None = None) -> None:
        self._must_be_live("enter the IVR")
        if self.state not in (CallState.OFFERED, CallState.IVR, CallState.QUEUED):
            raise InvariantViolation(f"cannot enter the IVR from {self.state.value}")
        self._ivr_entered(menu=require_text(menu, "menu"), occurred_at=self._in_order(occurred_at),
                          command_id=command_id, actor=actor)

    @event("IvrEntered")
    def _ivr_entered(self, menu: str, occurred_at: datetime, command_id: str | None,
                     actor: str | None) -> None:
        self.state = CallState.IVR
        self.ivr_path.append(menu)
        self.last_at = occurred_at
        self._remember(command_id)

    def choose(self, menu: str, digits: str, target: str, occurred_at: datetime,
               command_id: str | None = None, actor: str | None = None) -> None:
        if self.state != CallState.IVR:
            raise InvariantViolation(f"cannot choose a menu option: call is {self.state.value}")
        if not isinstance(digits, str) or not digits or not all(c in "0123456789*#" for c in digits):
            raise InvalidValue("digits must be DTMF characters 0-9 * #", field="digits")
        self._menu_choice_made(menu=menu, digits=digits, target=target or "",
                               occurred_at=self._in_order(occurred_at), command_id=command_id,
                               actor=actor)

    @event("MenuChoiceMade")
    def _menu_choice_made(self, menu: str, digits: str, target: str, occurred_at: datetime,
                          command_id: str | None, actor: str | None) -> None:
        self.ivr_path.append(f"{menu}:{digits}")
        self.last_at = occurred_at
        self._remember(command_id)

    def use_self_service(self, service: str, result: str, reference: str | None,
                         occurred_at: datetime, command_id: str | None = None,
                         actor: str | None = None) -> None:
        if self.state != CallState.IVR:
            raise InvariantViolation(f"cannot use self-service: call is {self.state.value}")
        self._self_service_used(service=require_text(service, "service"), result=result or "",
                                reference=reference, occurred_at=self._in_order(occurred_at),
                                command_id=command_id, actor=actor)

    @event("SelfServiceUsed")
    def _self_service_used(self, service: str, result: str, reference: str | None,
                           occurred_at: datetime, command_id: str | None,
                           actor: str | None) -> None:
        self.self_service.append(service)
        self.last_at = occurred_at
        self._remember(command_id)

    # -- queue and alerting ------------------------------------------------
    def enqueue(self, queue: str, occurred_at: datetime, priority: int = 0,
                required_skills: dict[str, int] | None = None, at_front: bool = False,
                command_id: str | None = None, actor: str | None = None, *,
                reason: str | None = None, from_queue: str | None = None) -> None:
        self._must_be_live("queue the call")
        if reason is not None and reason not in QUEUE_REASONS:
            raise InvalidValue(f"reason must be None or one of {sorted(QUEUE_REASONS)}",
                               field="reason")
        if reason == "overflow":
            from_queue = require_text(from_queue, "from_queue")
            if from_queue == queue:
                raise InvalidValue("an overflow moves the call to another queue",
                                   field="from_queue")
        elif from_queue is not None:
            raise InvalidValue("from_queue is only for an overflow", field="from_queue")
        if self.state in (CallState.CONNECTED, CallState.HELD, CallState.RINGING):
            raise InvariantViolation(
                f"cannot queue a call that is {self.state.value}; transfer or end the agent leg first"
            )
        if self.state == CallState.OUTSIDE:
            raise InvariantViolation("cannot queue a call transferred outside the center",
                                     call_id=str(self.id))
        skills = dict(required_skills or {})
        for name, level in skills.items():
            if not isinstance(level, int) or not 0 <= level <= 10:
                raise InvalidValue(f"skill level for {name} must be 0..10", field="required_skills")
        if not isinstance(priority, int):
            raise InvalidValue("priority must be an integer", field="priority")
        self._queued(queue=require_text(queue, "queue"), priority=priority,
                     required_skills=skills, at_front=bool(at_front),
                     occurred_at=self._in_order(occurred_at), command_id=command_id, actor=actor,
                     reason=reason, from_queue=from_queue)

    class Queued(LianxinAggregate.Event):
        """v2: ``reason`` says why the call entered the queue (None, or one of
        ``QUEUE_REASONS``: ``overflow``, ``requeue``, ``transfer``) and
        ``from_queue`` which queue an overflow moved it from. v1 events get
        ``reason="overflow"`` and ``from_queue`` from their actor when it is
        the overflow rule's (``acd-overflow:<queue left>``), None otherwise."""

        class_version = 2
        queue: str
        priority: int
        required_skills: dict[str, int]
        at_front: bool
        occurred_at: datetime
        command_id: str | None
        actor: str | None
        reason: str | None = None
        from_queue: str | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            actor = state.get("actor") or ""
            prefix, sep, left = actor.partition(":")
            if prefix == OVERFLOW_ACTOR and sep and left:
                state["reason"], state["from_queue"] = "overflow", left
            else:
                state["reason"], state["from_queue"] = None, None

    @event(Queued)
    def _queued(self, queue: str, priority: int, required_skills: dict[str, int],
                at_front: bool, occurred_at: datetime, command_id: str | None,
                actor: str | None, reason: str | None = None,
                from_queue: str | None = None) -> None:
        self.state = CallState.QUEUED
        if self.queued_at is None or self.queue != queue:
            self.queued_at = occurred_at
        self.queue = queue
        self.priority = priority
        self.required_skills = required_skills
        self.last_at = occurred_at
        self._remember(command_id)

    def alert_agent(self, agent_id: UUID, leg_id: str, endpoint: str, occurred_at: datetime,
                    command_id: str | None = None, actor: str | None = None) -> None:
        if self.state != CallState.QUEUED:
            raise InvariantViolation(
                f"cannot alert an agent: call is {self.state.value}, not queued", call_id=str(self.id)
            )
        require_text(leg_id, "leg_id")
        if leg_id in self.legs:
            raise InvariantViolation(f"agent leg {leg_id} already exists")
        self._agent_alerted(agent_id=agent_id, leg_id=leg_id, endpoint=endpoint or "",
                            occurred_at=self._in_order(occurred_at), command_id=command_id,
                            actor=actor)

    @event("AgentAlerted")
    def _agent_alerted(self, agent_id: UUID, leg_id: str, endpoint: str, occurred_at: datetime,
                       command_id: str | None, actor: str | None) -> None:
        self.state = CallState.RINGING
        self.agent_id = agent_id
        self.leg_id = leg_id
        self.legs[leg_id] = {"agent_id": agent_id, "alerted_at": occurred_at,
                             "answered_at": None, "ended_at": None}
        self.last_at = occurred_at
        self._remember(command_id)

    def ring_no_answer(self, leg_id: str, outcome: str, occurred_at: datetime,
                       command_id: str | None = None, actor: str | None = None) -> None:
        """The alerted agent did not take the call; the caller goes back to the
        front of the queue (the ACD decides what happens to the agent)."""
        if self.state != CallState.RINGING or self.leg_id != leg_id:
            raise InvariantViolation(f"no agent is ringing on leg {leg_id}")
        if outcome not in RING_OUTCOMES:
            raise InvalidValue(f"outcome must be one of {sorted(RING_OUTCOMES)}", field="outcome")
        self._ring_no_answer(leg_id=leg_id, agent_id=self.agent_id, outcome=outcome,
                             occurred_at=self._in_order(occurred_at), command_id=command_id,
                             actor=actor)

    @event("RingNoAnswer")
    def _ring_no_answer(self, leg_id: str, agent_id: UUID, outcome: str, occurred_at: datetime,
                        command_id: str | None, actor: str | None) -> None:
        self.state = CallState.QUEUED
        self.legs[leg_id]["ended_at"] = occurred_at
        self.agent_id = None
        self.leg_id = None
        self.last_at = occurred_at
        self._remember(command_id)

    def answer(self, leg_id: str, occurred_at: datetime, command_id: str | None = None,
               actor: str | None = None) -> None:
        self._must_be_live("answer")
        if self.state != CallState.RINGING or self.leg_id != leg_id:
            raise InvariantViolation(f"cannot answer: no agent is ringing on leg {leg_id}")
        self._answered(leg_id=leg_id, agent_id=self.agent_id,
                       occurred_at=self._in_order(occurred_at), command_id=command_id, actor=actor)

    @event("Answered")
    def _answered(self, leg_id: str, agent_id: UUID, occurred_at: datetime,
                  command_id: str | None, actor: str | None) -> None:
        self.state = CallState.CONNECTED
        if self.answered_at is None:
            self.answered_at = occurred_at
        self.legs[leg_id]["answered_at"] = occurred_at
        self.last_at = occurred_at
        self._remember(command_id)

    # -- in conversation ---------------------------------------------------
    def hold(self, occurred_at: datetime, by: str = "agent", command_id: str | None = None,
             actor: str | None = None) -> None:
        if self.state != CallState.CONNECTED:
            raise InvariantViolation(f"cannot hold: call is {self.state.value}")
        self._held(by=by, occurred_at=self._in_order(occurred_at), command_id=command_id,
                   actor=actor)

    @event("Held")
    def _held(self, by: str, occurred_at: datetime, command_id: str | None,
              actor: str | None) -> None:
        self.state = CallState.HELD
        self.held_since = occurred_at
        self.last_at = occurred_at
        self._remember(command_id)

    def resume(self, occurred_at: datetime, by: str = "agent", command_id: str | None = None,
               actor: str | None = None) -> None:
        if self.state != CallState.HELD:
            raise InvariantViolation(f"cannot resume: call is {self.state.value}, not held")
        self._resumed(by=by, occurred_at=self._in_order(occurred_at), command_id=command_id,
                      actor=actor)

    @event("Resumed")
    def _resumed(self, by: str, occurred_at: datetime, command_id: str | None,
                 actor: str | None) -> None:
        if self.held_since is not None:
            self.hold_s += max(0.0, (occurred_at - self.held_since).total_seconds())
        self.held_since = None
        self.state = CallState.CONNECTED
        self.last_at = occurred_at
        self._remember(command_id)

    def transfer(self, kind: str, target_type: str, target: str, occurred_at: datetime,
                 command_id: str | None = None, actor: str | None = None, *,
                 to_leg_id: str | None = None) -> None:
        """The connected agent hands the caller on. Recorded when the agent
        leg is released: at once for a blind transfer, after the consultation
        for an attended one. Without ``to_leg_id`` the caller then waits for
        the target like a queued call; with it (an attended transfer to the
        answered consult leg) the call goes on at once with the colleague on
        that leg, who was alerted and answered during the consultation."""
        if kind not in TRANSFER_KINDS:
            raise InvalidValue(f"kind must be one of {sorted(TRANSFER_KINDS)}", field="kind")
        if target_type not in TRANSFER_TARGETS:
            raise InvalidValue(f"target_type must be one of {sorted(TRANSFER_TARGETS)}",
                               field="target_type")
        require_text(target, "target")
        if to_leg_id is not None:
            require_text(to_leg_id, "to_leg_id")
            if kind != "attended" or target_type != "agent":
                raise InvalidValue("to_leg_id (the consult leg) is only for an attended "
                                   "transfer to an agent", field="to_leg_id")
        self._must_be_talking("transfer")
        to_agent_id: UUID | None = None
        if to_leg_id is not None:
            leg = self._live_consult(to_leg_id, "transfer to it")
            if leg["answered_at"] is None:
                raise InvariantViolation(f"consult leg {to_leg_id} has not answered",
                                         call_id=str(self.id))
            to_agent_id = leg["agent_id"]
        elif self.consult_leg_id is not None:
            raise InvariantViolation(
                f"consult leg {self.consult_leg_id} is live: transfer to it, or end it first",
                call_id=str(self.id))
        # An external target is a telephone number (a customer's, a
        # partner's): personal data, in ``pii`` only.
        external = target_type == "external"
        self._transferred(kind=kind, target_type=target_type, target="" if external else target,
                          pii={"target": target} if external else {},
                          from_leg_id=self.leg_id, from_agent_id=self.agent_id,
                          to_leg_id=to_leg_id, to_agent_id=to_agent_id,
                          occurred_at=self._in_order(occurred_at), command_id=command_id,
                          actor=actor)

    class Transferred(LianxinAggregate.Event):
        """v2: an ``external`` target (a telephone number) is in
        ``pii["target"]`` and ``target`` is empty; a queue, agent or IVR
        target stays in ``target``, as in v1. v1 external targets move to
        ``pii`` on read.

        Also new in v2, ``to_leg_id`` / ``to_agent_id``: the answered consult
        leg an attended transfer hands the call to, and its agent; the call is
        then connected to that leg at once. None otherwise, and in every v1
        event, which keeps its meaning: the caller waits for the target."""

        class_version = 2
        kind: str
        target_type: str
        target: str
        pii: dict[str, Any]
        from_leg_id: str | None
        from_agent_id: UUID | None
        occurred_at: datetime
        command_id: str | None
        actor: str | None
        to_leg_id: str | None = None
        to_agent_id: UUID | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            if state.get("target_type") == "external":
                state["pii"] = {"target": state.get("target")}
                state["target"] = ""
            else:
                state["pii"] = {}
            state["to_leg_id"] = None
            state["to_agent_id"] = None

    @event(Transferred)
    def _transferred(self, kind: str, target_type: str, target: str, pii: dict[str, Any],
                     from_leg_id: str | None, from_agent_id: UUID | None,
                     occurred_at: datetime, command_id: str | None,
                     actor: str | None, to_leg_id: str | None = None,
                     to_agent_id: UUID | None = None) -> None:
        self.transfers += 1
        if self.held_since is not None:
            self.hold_s += max(0.0, (occurred_at - self.held_since).total_seconds())
            self.held_since = None
        if from_leg_id is not None:
            self.legs[from_leg_id]["ended_at"] = occurred_at
        if to_leg_id is not None:
            # handed to the answered consult leg: the conversation goes on
            # (to_agent_id is that leg's agent: set whenever to_leg_id is)
            self.consult_leg_id = None
            self.agent_id = to_agent_id
            self.leg_id = to_leg_id
            self.state = CallState.CONNECTED
            self.last_at = occurred_at
            self._remember(command_id)
            return
        self.agent_id = None
        self.leg_id = None
        # The caller waits for the target: in a queue, or as if queued while the
        # target agent is alerted. ``queued_at`` restarts for the new queue.
        # Sent outside the center, the caller talks with that party (every
        # stored v1 external transfer is followed by the call's end: the
        # state it passed through changes nothing after it).
        if target_type in ("queue", "agent"):
            self.state = CallState.QUEUED
        elif target_type == "external":
            self.state = CallState.OUTSIDE
        else:
            self.state = CallState.IVR
        if target_type == "queue":
            self.queue = target
            self.queued_at = occurred_at
        self.last_at = occurred_at
        self._remember(command_id)

    # -- consultation (attended transfer) ----------------------------------
    def _live_consult(self, leg_id: str, action: str) -> dict[str, Any]:
        if self.consult_leg_id is None or self.consult_leg_id != leg_id:
            raise InvariantViolation(f"cannot {action}: {leg_id} is not this call's live "
                                     "consult leg", call_id=str(self.id))
        return self.legs[leg_id]

    def alert_consult(self, agent_id: UUID, leg_id: str, endpoint: str, occurred_at: datetime,
                      command_id: str | None = None, actor: str | None = None) -> None:
        """The agent calls a colleague while the caller is connected or held
        (first half of an attended transfer): the colleague's phone rings."""
        if not isinstance(agent_id, UUID):
            raise InvalidValue("agent_id must be an agent's id", field="agent_id")
        require_text(leg_id, "leg_id")
        require_text(endpoint or "", "endpoint", allow_empty=True)
        self._must_be_talking("consult a colleague")
        if self.consult_leg_id is not None:
            raise InvariantViolation(f"consult leg {self.consult_leg_id} is already live",
                                     call_id=str(self.id))
        if leg_id in self.legs:
            raise InvariantViolation(f"leg {leg_id} already exists", call_id=str(self.id))
        if agent_id == self.agent_id:
            raise InvariantViolation("the connected agent cannot consult themselves",
                                     call_id=str(self.id))
        self._consult_alerted(agent_id=agent_id, leg_id=leg_id, endpoint=endpoint or "",
                              occurred_at=self._in_order(occurred_at), command_id=command_id,
                              actor=actor)

    @event("ConsultAlerted")
    def _consult_alerted(self, agent_id: UUID, leg_id: str, endpoint: str,
                         occurred_at: datetime, command_id: str | None,
                         actor: str | None) -> None:
        self.consult_leg_id = leg_id
        self.legs[leg_id] = {"agent_id": agent_id, "alerted_at": occurred_at,
                             "answered_at": None, "ended_at": None, "consult": True}
        self.last_at = occurred_at
        self._remember(command_id)

    def answer_consult(self, leg_id: str, occurred_at: datetime, command_id: str | None = None,
                       actor: str | None = None) -> None:
        require_text(leg_id, "leg_id")
        self._must_be_talking("answer a consultation")
        leg = self._live_consult(leg_id, "answer")
        if leg["answered_at"] is not None:
            raise InvariantViolation(f"consult leg {leg_id} has already answered",
                                     call_id=str(self.id))
        self._consult_answered(leg_id=leg_id, agent_id=leg["agent_id"],
                               occurred_at=self._in_order(occurred_at), command_id=command_id,
                               actor=actor)

    @event("ConsultAnswered")
    def _consult_answered(self, leg_id: str, agent_id: UUID, occurred_at: datetime,
                          command_id: str | None, actor: str | None) -> None:
        self.legs[leg_id]["answered_at"] = occurred_at
        self.last_at = occurred_at
        self._remember(command_id)

    def consult_missed(self, leg_id: str, outcome: str, occurred_at: datetime,
                       command_id: str | None = None, actor: str | None = None) -> None:
        """The colleague's phone rang out, was busy, or the agent gave up
        before they answered (``canceled``). The caller stays with the agent."""
        require_text(leg_id, "leg_id")
        if outcome not in RING_OUTCOMES:
            raise InvalidValue(f"outcome must be one of {sorted(RING_OUTCOMES)}", field="outcome")
        self._must_be_talking("report a missed consultation")
        leg = self._live_consult(leg_id, "report it missed")
        if leg["answered_at"] is not None:
            raise InvariantViolation(f"consult leg {leg_id} was answered: end it instead",
                                     call_id=str(self.id))
        self._consult_missed(leg_id=leg_id, agent_id=leg["agent_id"], outcome=outcome,
                             occurred_at=self._in_order(occurred_at), command_id=command_id,
                             actor=actor)

    @event("ConsultMissed")
    def _consult_missed(self, leg_id: str, agent_id: UUID, outcome: str, occurred_at: datetime,
                        command_id: str | None, actor: str | None) -> None:
        self.legs[leg_id]["ended_at"] = occurred_at
        self.consult_leg_id = None
        self.last_at = occurred_at
        self._remember(command_id)

    def end_consult(self, leg_id: str, occurred_at: datetime, ended_by: str = "colleague",
                    command_id: str | None = None, actor: str | None = None) -> None:
        """An answered consultation is over without a transfer: the colleague
        hung up, or the agent took the caller back."""
        require_text(leg_id, "leg_id")
        if ended_by not in CONSULT_ENDERS:
            raise InvalidValue(f"ended_by must be one of {sorted(CONSULT_ENDERS)}",
                               field="ended_by")
        self._must_be_talking("end a consultation")
        leg = self._live_consult(leg_id, "end it")
        if leg["answered_at"] is None:
            raise InvariantViolation(f"consult leg {leg_id} has not answered: report it missed",
                                     call_id=str(self.id))
        self._consult_ended(leg_id=leg_id, agent_id=leg["agent_id"], ended_by=ended_by,
                            occurred_at=self._in_order(occurred_at), command_id=command_id,
                            actor=actor)

    @event("ConsultEnded")
    def _consult_ended(self, leg_id: str, agent_id: UUID, ended_by: str, occurred_at: datetime,
                       command_id: str | None, actor: str | None) -> None:
        self.legs[leg_id]["ended_at"] = occurred_at
        self.consult_leg_id = None
        self.last_at = occurred_at
        self._remember(command_id)

    def _close_consult(self, occurred_at: datetime, actor: str | None) -> None:
        """The call ends while a consult leg is live: that leg ends with it
        (missed, canceled, if the colleague had not answered)."""
        if self.consult_leg_id is None:
            return
        leg_id = self.consult_leg_id
        leg = self.legs[leg_id]
        if leg["answered_at"] is None:
            self._consult_missed(leg_id=leg_id, agent_id=leg["agent_id"], outcome="canceled",
                                 occurred_at=occurred_at, command_id=None, actor=actor)
        else:
            self._consult_ended(leg_id=leg_id, agent_id=leg["agent_id"], ended_by="call",
                                occurred_at=occurred_at, command_id=None, actor=actor)

    def add_conference_party(self, party: str, occurred_at: datetime,
                             agent_id: UUID | None = None, command_id: str | None = None,
                             actor: str | None = None) -> None:
        """``party`` is how the party is named on the call: an employee
        number, a channel, or an outside person's number or name, so it is
        kept in ``pii``. ``agent_id``: the registered agent it names, if any
        (operational)."""
        self._must_be_talking("add a conference party")
        require_text(party, "party")
        if party in self.conference:
            raise InvariantViolation(f"{party} is already in the conference")
        self._conference_joined(agent_id=agent_id, pii={"party": party},
                                occurred_at=self._in_order(occurred_at),
                                command_id=command_id, actor=actor)

    class ConferencePartyJoined(LianxinAggregate.Event):
        """v2: the party's name is in ``pii["party"]``; ``agent_id`` is the
        registered agent it names (None for anyone else). v1 ``party`` moves
        to ``pii`` on read, with no ``agent_id``."""

        class_version = 2
        agent_id: UUID | None
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        upcast_v1_v2 = staticmethod(_party_to_pii_v1)

    @event(ConferencePartyJoined)
    def _conference_joined(self, agent_id: UUID | None, pii: dict[str, Any],
                           occurred_at: datetime, command_id: str | None,
                           actor: str | None) -> None:
        if pii.get("party") is not None:  # absent once erased
            self.conference.append(pii["party"])
        self.last_at = occurred_at
        self._remember(command_id)

    def remove_conference_party(self, party: str, occurred_at: datetime,
                                agent_id: UUID | None = None, command_id: str | None = None,
                                actor: str | None = None) -> None:
        if party not in self.conference:
            raise InvariantViolation(f"{party} is not in the conference")
        self._conference_left(agent_id=agent_id, pii={"party": party},
                              occurred_at=self._in_order(occurred_at), command_id=command_id,
                              actor=actor)

    class ConferencePartyLeft(LianxinAggregate.Event):
        """v2: as ``ConferencePartyJoined`` v2."""

        class_version = 2
        agent_id: UUID | None
        pii: dict[str, Any]
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        upcast_v1_v2 = staticmethod(_party_to_pii_v1)

    @event(ConferencePartyLeft)
    def _conference_left(self, agent_id: UUID | None, pii: dict[str, Any],
                         occurred_at: datetime, command_id: str | None,
                         actor: str | None) -> None:
        if pii.get("party") in self.conference:
            self.conference.remove(pii["party"])
        self.last_at = occurred_at
        self._remember(command_id)

    def start_monitor(self, supervisor_id: str, mode: str, occurred_at: datetime,
                      command_id: str | None = None, actor: str | None = None) -> None:
        if mode not in MONITOR_MODES:
            raise InvalidValue(f"mode must be one of {sorted(MONITOR_MODES)}", field="mode")
        self._must_be_talking("monitor")
        self._monitor_started(supervisor_id=require_text(supervisor_id, "supervisor_id"), mode=mode,
                              occurred_at=self._in_order(occurred_at), command_id=command_id,
                              actor=actor)

    @event("MonitorStarted")
    def _monitor_started(self, supervisor_id: str, mode: str, occurred_at: datetime,
                         command_id: str | None, actor: str | None) -> None:
        self.monitors[supervisor_id] = mode
        self.last_at = occurred_at
        self._remember(command_id)

    def stop_monitor(self, supervisor_id: str, occurred_at: datetime,
                     command_id: str | None = None, actor: str | None = None) -> None:
        if supervisor_id not in self.monitors:
            raise InvariantViolation(f"{supervisor_id} is not monitoring this call")
        self._monitor_stopped(supervisor_id=supervisor_id, occurred_at=self._in_order(occurred_at),
                              command_id=command_id, actor=actor)

    @event("MonitorStopped")
    def _monitor_stopped(self, supervisor_id: str, occurred_at: datetime,
                         command_id: str | None, actor: str | None) -> None:
        self.monitors.pop(supervisor_id, None)
        self.last_at = occurred_at
        self._remember(command_id)

    # -- recording ---------------------------------------------------------
    def start_recording(self, recording: str, target: str, occurred_at: datetime,
                        fmt: str = "wav", command_id: str | None = None,
                        actor: str | None = None) -> None:
        self._must_be_live("start recording")
        require_text(recording, "recording")
        if recording in self.recordings and self.recordings[recording]["stopped_at"] is None:
            raise InvariantViolation(f"recording {recording} is already running")
        self._recording_started(recording=recording, target=target or "", format=fmt,
                                occurred_at=self._in_order(occurred_at), command_id=command_id,
                                actor=actor)

    @event("RecordingStarted")
    def _recording_started(self, recording: str, target: str, format: str,
                           occurred_at: datetime, command_id: str | None,
                           actor: str | None) -> None:
        self.recordings[recording] = {"target": target, "format": format,
                                      "started_at": occurred_at, "stopped_at": None}
        self.last_at = occurred_at
        self._remember(command_id)

    def stop_recording(self, recording: str, occurred_at: datetime, cause: str = "stopped",
                       duration_s: float | None = None, command_id: str | None = None,
                       actor: str | None = None) -> None:
        rec = self.recordings.get(recording)
        if rec is None or rec["stopped_at"] is not None:
            raise InvariantViolation(f"recording {recording} is not running")
        self._recording_stopped(recording=recording, cause=cause or "", duration_s=duration_s,
                                occurred_at=self._in_order(occurred_at), command_id=command_id,
                                actor=actor)

    @event("RecordingStopped")
    def _recording_stopped(self, recording: str, cause: str, duration_s: float | None,
                           occurred_at: datetime, command_id: str | None,
                           actor: str | None) -> None:
        self.recordings[recording]["stopped_at"] = occurred_at
        self.last_at = occurred_at
        self._remember(command_id)

    # -- the end -----------------------------------------------------------
    def end(self, hung_up_by: str, cause: str, occurred_at: datetime, cause_code: int | None = None,
            command_id: str | None = None, actor: str | None = None) -> None:
        """The call is over. A caller who hangs up before an agent answered has
        abandoned (in the IVR only if they were waiting to be served there:
        callers who leave after self-service are served, not abandoned). A
        call transferred outside the center was served: no abandon then."""
        if hung_up_by not in HANGUP_PARTIES:
            raise InvalidValue(f"hung_up_by must be one of {sorted(HANGUP_PARTIES)}",
                               field="hung_up_by")
        self._must_be_live("end the call")
        occurred_at = self._in_order(occurred_at)
        stage = {
            CallState.OFFERED: "ivr", CallState.IVR: "ivr",
            CallState.QUEUED: "queue", CallState.RINGING: "ringing",
        }.get(self.state)
        abandoned = hung_up_by == "caller" and stage is not None and not (
            stage == "ivr" and self.self_service
        )
        self._close_consult(occurred_at, actor)
        if abandoned:
            self._abandoned(stage=stage, queue=self.queue, leg_id=self.leg_id,
                            agent_id=self.agent_id, cause=cause or "", cause_code=cause_code,
                            occurred_at=occurred_at, command_id=command_id, actor=actor)
        else:
            self._ended(hung_up_by=hung_up_by, cause=cause or "", cause_code=cause_code,
                        leg_id=self.leg_id, agent_id=self.agent_id, occurred_at=occurred_at,
                        command_id=command_id, actor=actor)

    def force_disconnect(self, supervisor_id: str, occurred_at: datetime,
                         command_id: str | None = None, actor: str | None = None) -> None:
        self._must_be_live("force-disconnect")
        occurred_at = self._in_order(occurred_at)
        self._close_consult(occurred_at, actor or supervisor_id)
        self._ended(hung_up_by="supervisor", cause=f"forced by {supervisor_id}", cause_code=None,
                    leg_id=self.leg_id, agent_id=self.agent_id,
                    occurred_at=occurred_at, command_id=command_id,
                    actor=actor or supervisor_id)

    def _close_open_parts(self, occurred_at: datetime) -> None:
        if self.held_since is not None:
            self.hold_s += max(0.0, (occurred_at - self.held_since).total_seconds())
            self.held_since = None
        for leg in self.legs.values():
            if leg["ended_at"] is None:
                leg["ended_at"] = occurred_at
        self.monitors.clear()
        self.consult_leg_id = None
        self.ended_at = occurred_at
        self.last_at = occurred_at

    @event("Ended")
    def _ended(self, hung_up_by: str, cause: str, cause_code: int | None, leg_id: str | None,
               agent_id: UUID | None, occurred_at: datetime, command_id: str | None,
               actor: str | None) -> None:
        self._close_open_parts(occurred_at)
        self.state = CallState.ENDED
        self.hung_up_by = hung_up_by
        self._remember(command_id)

    @event("Abandoned")
    def _abandoned(self, stage: str, queue: str | None, leg_id: str | None,
                   agent_id: UUID | None, cause: str, cause_code: int | None,
                   occurred_at: datetime, command_id: str | None, actor: str | None) -> None:
        self._close_open_parts(occurred_at)
        self.state = CallState.ABANDONED
        self.hung_up_by = "caller"
        self.abandon_stage = stage
        self._remember(command_id)

    # -- after the call ----------------------------------------------------
    def complete_wrap_up(self, agent_id: UUID, dispositions: list[str], occurred_at: datetime,
                         command_id: str | None = None, actor: str | None = None) -> None:
        if self.state != CallState.ENDED:
            raise InvariantViolation("wrap-up is only possible after the call has ended")
        if not any(leg["agent_id"] == agent_id and leg["answered_at"] for leg in self.legs.values()):
            raise InvariantViolation("only an agent who talked on this call can wrap it up")
        if not isinstance(dispositions, list) or not all(isinstance(d, str) and d for d in dispositions):
            raise InvalidValue("dispositions must be a list of codes", field="dispositions")
        if self.wrapped_up:
            raise InvariantViolation("wrap-up already completed")
        self._wrap_up_completed(agent_id=agent_id, dispositions=dispositions,
                                occurred_at=self._in_order(occurred_at), command_id=command_id,
                                actor=actor)

    @event("WrapUpCompleted")
    def _wrap_up_completed(self, agent_id: UUID, dispositions: list[str], occurred_at: datetime,
                           command_id: str | None, actor: str | None) -> None:
        self.dispositions = list(dispositions)
        self.wrapped_up = True
        self._remember(command_id)

    def answer_survey(self, score: int, occurred_at: datetime, question: str = "overall",
                      command_id: str | None = None, actor: str | None = None) -> None:
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise InvalidValue("score must be an integer from 1 to 5", field="score")
        if self.answered_at is None:
            raise InvariantViolation("only answered calls are surveyed")
        if self.survey_score is not None:
            raise InvariantViolation("the survey was already answered")
        self._survey_answered(score=score, question=question, scale=SURVEY_SCALE,
                              occurred_at=self._in_order(occurred_at), command_id=command_id,
                              actor=actor)

    class SurveyAnswered(LianxinAggregate.Event):
        """v2 states the scale the score is on. v1 events (no ``scale``) were
        all on the 1-5 keypad scale; a future 1-10 survey must not be read as
        if its 8 were an 8 out of 5."""

        class_version = 2
        score: int
        question: str
        scale: int
        occurred_at: datetime
        command_id: str | None
        actor: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["scale"] = 5

    @event(SurveyAnswered)
    def _survey_answered(self, score: int, question: str, scale: int, occurred_at: datetime,
                         command_id: str | None, actor: str | None) -> None:
        self.survey_score = score
        self.survey_scale = scale
        self._remember(command_id)

    def link_work_order(self, work_order_id: UUID, occurred_at: datetime,
                        command_id: str | None = None, actor: str | None = None) -> None:
        if work_order_id in self.work_orders:
            raise InvariantViolation("work order already linked")
        self._work_order_linked(work_order_id=work_order_id,
                                occurred_at=self._in_order(occurred_at), command_id=command_id,
                                actor=actor)

    @event("WorkOrderLinked")
    def _work_order_linked(self, work_order_id: UUID, occurred_at: datetime,
                           command_id: str | None, actor: str | None) -> None:
        self.work_orders.append(work_order_id)
        self._remember(command_id)
