"""One handler per user intention. A handler loads aggregates through the
unit of work, checks idempotency/concurrency with ``guard``, calls domain
methods (which enforce the invariants) and returns the main aggregate.

Handlers that touch two aggregates (a call and its agent) change both in the
same unit of work, so the two sets of events are committed together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar
from uuid import UUID

from commands import messages as m
from commands.bus import UnitOfWork, guard
from commands.errors import AlreadyApplied
from domain.agent import Agent, AgentState, agent_id_for
from domain.base import pseudonymise
from domain.call import Call, CallState, call_id_for
from domain.errors import InvalidValue, InvariantViolation, NotFound
from domain.work_order import WorkOrder, work_order_id_for

C = TypeVar("C", bound=m.Command)


@dataclass
class HandlerContext:
    """What handlers need from outside the domain: a clock and the key of the
    caller-number pseudonym."""

    pseudonym_key: str = "lianxin-dev"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))


HANDLERS: dict[type, Callable[[UnitOfWork, Any], Any]] = {}


def handles(cmd_type: type[C]) -> Callable[[Callable[[UnitOfWork, C], Any]], Callable[[UnitOfWork, C], Any]]:
    def register(fn: Callable[[UnitOfWork, C], Any]) -> Callable[[UnitOfWork, C], Any]:
        def checked(uow: UnitOfWork, cmd: C) -> Any:
            require_unicode(cmd)
            return fn(uow, cmd)

        checked.__wrapped__ = fn  # type: ignore[attr-defined]
        HANDLERS[cmd_type] = checked
        return fn

    return register


def require_unicode(cmd: m.Command) -> None:
    """Text that cannot be stored is refused before a handler acts: JSON may
    carry a lone UTF-16 surrogate (``"\\ud800"``), which no UTF-8 encoder
    takes, and failing at the commit would fail the other commands of the
    batch too."""
    for name, value in vars(cmd).items():
        _require_unicode(value, name)


def _require_unicode(value: Any, field: str) -> None:
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidValue(f"{field} is not valid Unicode text (it holds a lone "
                                   "surrogate)", field=field) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _require_unicode(k, field)
            _require_unicode(v, field)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _require_unicode(v, field)


def _ctx(uow: UnitOfWork) -> HandlerContext:
    return uow.ctx or HandlerContext()


def _when(uow: UnitOfWork, cmd: m.Command) -> datetime:
    return cmd.occurred_at or _ctx(uow).clock()


def _kw(uow: UnitOfWork, cmd: m.Command) -> dict[str, Any]:
    return {"occurred_at": _when(uow, cmd), "command_id": cmd.command_id, "actor": cmd.actor}


def _call(uow: UnitOfWork, cmd: Any) -> Call:
    call = uow.get(Call, cmd.call_id, what="call")
    guard(call, cmd.command_id, cmd.expected_version)
    return call


def _agent(uow: UnitOfWork, employee_no: str, cmd: m.Command | None = None) -> Agent:
    agent = uow.get(Agent, agent_id_for(employee_no), what=f"agent {employee_no}")
    if cmd is not None:
        guard(agent, cmd.command_id, cmd.expected_version)
    return agent


def _agent_by_id(uow: UnitOfWork, agent_id: UUID | None) -> Agent | None:
    return uow.find(Agent, agent_id) if agent_id else None


# -- calls ------------------------------------------------------------------
@handles(m.OfferCall)
def offer_call(uow: UnitOfWork, cmd: m.OfferCall) -> Call:
    existing = uow.find(Call, call_id_for(cmd.external_id)) if cmd.external_id else None
    if existing is not None:
        # The external telephony id is the natural idempotency key of an offer.
        raise AlreadyApplied(existing.id)
    key = _ctx(uow).pseudonym_key
    caller_hash = pseudonymise(cmd.caller_number, key) if cmd.caller_number else ""
    # An outbound call dials the customer: their number is pseudonymised like
    # a caller's, so a callback can be matched with the customer's calls.
    dialed_hash = (pseudonymise(cmd.dialed_number, key)
                   if cmd.direction == "outbound" and isinstance(cmd.dialed_number, str)
                   and cmd.dialed_number else "")
    call = Call.offer(external_id=cmd.external_id, dialed_number=cmd.dialed_number,
                      trunk=cmd.trunk, caller_hash=caller_hash, caller_number=cmd.caller_number,
                      direction=cmd.direction, dialed_hash=dialed_hash, **_kw(uow, cmd))
    uow.add(call)
    return call


@handles(m.EnterIvr)
def enter_ivr(uow: UnitOfWork, cmd: m.EnterIvr) -> Call:
    call = _call(uow, cmd)
    call.enter_ivr(cmd.menu, **_kw(uow, cmd))
    return call


@handles(m.ChooseMenuOption)
def choose_menu_option(uow: UnitOfWork, cmd: m.ChooseMenuOption) -> Call:
    call = _call(uow, cmd)
    call.choose(cmd.menu, cmd.digits, cmd.target, **_kw(uow, cmd))
    return call


@handles(m.UseSelfService)
def use_self_service(uow: UnitOfWork, cmd: m.UseSelfService) -> Call:
    call = _call(uow, cmd)
    call.use_self_service(cmd.service, cmd.result, cmd.reference, **_kw(uow, cmd))
    return call


@handles(m.QueueCall)
def queue_call(uow: UnitOfWork, cmd: m.QueueCall) -> Call:
    call = _call(uow, cmd)
    call.enqueue(cmd.queue, priority=cmd.priority, required_skills=cmd.required_skills,
                 reason=cmd.reason, from_queue=cmd.from_queue, **_kw(uow, cmd))
    return call


@handles(m.AlertAgent)
def alert_agent(uow: UnitOfWork, cmd: m.AlertAgent) -> Call:
    call = _call(uow, cmd)
    agent = _agent(uow, cmd.employee_no)
    leg_id = cmd.leg_id or f"leg-{uuid.uuid4().hex[:12]}"
    kw = _kw(uow, cmd)
    # Agent first: "no routing a call to an agent who is not ready" is its rule.
    agent.ring(call.id, leg_id, **kw)
    call.alert_agent(agent.id, leg_id, cmd.endpoint or agent.endpoint or "", **kw)
    return call


def _leg(call: Call, leg_id: str | None) -> str:
    if leg_id:
        return leg_id
    if call.leg_id is None:
        raise InvariantViolation(f"call is {call.state.value}: no agent leg is active")
    return call.leg_id


@handles(m.ReportRingNoAnswer)
def report_ring_no_answer(uow: UnitOfWork, cmd: m.ReportRingNoAnswer) -> Call:
    call = _call(uow, cmd)
    leg_id = _leg(call, cmd.leg_id)
    agent = _agent_by_id(uow, call.agent_id)
    kw = _kw(uow, cmd)
    call.ring_no_answer(leg_id, cmd.outcome, **kw)
    _miss_if_ringing(agent, call, cmd.outcome, kw)
    return call


def _miss_if_ringing(agent: Any, call: Call, outcome: str, kw: dict[str, Any]) -> None:
    """The alerted agent (of a queue leg or a consult leg) missed this call,
    if their phone is still ringing for it."""
    if agent is not None and agent.state == AgentState.RINGING and agent.call_id == call.id:
        agent.miss_call(call.id, outcome, **kw)


@handles(m.AnswerCall)
def answer_call(uow: UnitOfWork, cmd: m.AnswerCall) -> Call:
    call = _call(uow, cmd)
    leg_id = _leg(call, cmd.leg_id)
    kw = _kw(uow, cmd)
    call.answer(leg_id, **kw)
    agent = _agent_by_id(uow, call.agent_id)
    if agent is not None:
        agent.connect(call.id, **kw)
    return call


@handles(m.HoldCall)
def hold_call(uow: UnitOfWork, cmd: m.HoldCall) -> Call:
    call = _call(uow, cmd)
    call.hold(by=cmd.by, **_kw(uow, cmd))
    return call


@handles(m.ResumeCall)
def resume_call(uow: UnitOfWork, cmd: m.ResumeCall) -> Call:
    call = _call(uow, cmd)
    call.resume(by=cmd.by, **_kw(uow, cmd))
    return call


@handles(m.TransferCall)
def transfer_call(uow: UnitOfWork, cmd: m.TransferCall) -> Call:
    call = _call(uow, cmd)
    agent = _agent_by_id(uow, call.agent_id)
    kw = _kw(uow, cmd)
    if cmd.to_leg_id and call.consult_leg_id == cmd.to_leg_id and isinstance(cmd.target, str) \
            and call.legs[cmd.to_leg_id]["agent_id"] != agent_id_for(cmd.target):
        raise InvalidValue(f"consult leg {cmd.to_leg_id} is not agent {cmd.target}'s",
                           field="target")
    call.transfer(cmd.kind, cmd.target_type, cmd.target, to_leg_id=cmd.to_leg_id, **kw)
    if agent is not None and agent.state == AgentState.ON_CALL and agent.call_id == call.id:
        agent.release_call(call.id, wrap_up=cmd.wrap_up, **kw)
    return call


# -- consultation (attended transfer) ---------------------------------------
def _consult_leg(call: Call, leg_id: str | None) -> str:
    if leg_id:
        return leg_id
    if call.consult_leg_id is None:
        raise InvariantViolation(f"call is {call.state.value}: no consult leg is live")
    return call.consult_leg_id


def _consult_agent(uow: UnitOfWork, call: Call, leg_id: str) -> Agent | None:
    leg = call.legs.get(leg_id)
    return _agent_by_id(uow, leg["agent_id"]) if leg else None


@handles(m.AlertConsult)
def alert_consult(uow: UnitOfWork, cmd: m.AlertConsult) -> Call:
    call = _call(uow, cmd)
    agent = _agent(uow, cmd.employee_no)
    leg_id = cmd.leg_id or f"consult-{uuid.uuid4().hex[:12]}"
    kw = _kw(uow, cmd)
    # The call's rules first (a consultation needs a conversation), then the
    # colleague's: a consultation is not ACD routing, so a colleague who is
    # not ready or in wrap-up may be rung (not one logged out or busy).
    call.alert_consult(agent.id, leg_id, cmd.endpoint or agent.endpoint or "", **kw)
    agent.ring_for_consult(call.id, leg_id, **kw)
    return call


@handles(m.AnswerConsult)
def answer_consult(uow: UnitOfWork, cmd: m.AnswerConsult) -> Call:
    call = _call(uow, cmd)
    leg_id = _consult_leg(call, cmd.leg_id)
    kw = _kw(uow, cmd)
    call.answer_consult(leg_id, **kw)
    agent = _consult_agent(uow, call, leg_id)
    if agent is not None:
        agent.connect(call.id, **kw)
    return call


@handles(m.ReportConsultMissed)
def report_consult_missed(uow: UnitOfWork, cmd: m.ReportConsultMissed) -> Call:
    call = _call(uow, cmd)
    leg_id = _consult_leg(call, cmd.leg_id)
    kw = _kw(uow, cmd)
    call.consult_missed(leg_id, cmd.outcome, **kw)
    agent = _consult_agent(uow, call, leg_id)
    _miss_if_ringing(agent, call, cmd.outcome, kw)
    return call


@handles(m.EndConsult)
def end_consult(uow: UnitOfWork, cmd: m.EndConsult) -> Call:
    call = _call(uow, cmd)
    leg_id = _consult_leg(call, cmd.leg_id)
    kw = _kw(uow, cmd)
    call.end_consult(leg_id, ended_by=cmd.ended_by, **kw)
    _release_agent(uow, call, call.legs[leg_id]["agent_id"], cmd.wrap_up, kw)
    return call


def _party_agent(uow: UnitOfWork, party: str) -> UUID | None:
    """The registered agent a conference party names (its employee number),
    kept operational; the party's name itself is stored in ``pii``."""
    if not isinstance(party, str) or not party:
        return None
    agent = uow.find(Agent, agent_id_for(party))
    return agent.id if agent is not None else None


@handles(m.AddConferenceParty)
def add_conference_party(uow: UnitOfWork, cmd: m.AddConferenceParty) -> Call:
    call = _call(uow, cmd)
    call.add_conference_party(cmd.party, agent_id=_party_agent(uow, cmd.party), **_kw(uow, cmd))
    return call


@handles(m.RemoveConferenceParty)
def remove_conference_party(uow: UnitOfWork, cmd: m.RemoveConferenceParty) -> Call:
    call = _call(uow, cmd)
    call.remove_conference_party(cmd.party, agent_id=_party_agent(uow, cmd.party),
                                 **_kw(uow, cmd))
    return call


@handles(m.StartMonitor)
def start_monitor(uow: UnitOfWork, cmd: m.StartMonitor) -> Call:
    call = _call(uow, cmd)
    call.start_monitor(cmd.supervisor_id, cmd.mode, **_kw(uow, cmd))
    return call


@handles(m.StopMonitor)
def stop_monitor(uow: UnitOfWork, cmd: m.StopMonitor) -> Call:
    call = _call(uow, cmd)
    call.stop_monitor(cmd.supervisor_id, **_kw(uow, cmd))
    return call


def _release_agent(uow: UnitOfWork, call: Call, agent_id: UUID | None, wrap_up: bool,
                   kw: dict[str, Any]) -> None:
    agent = _agent_by_id(uow, agent_id)
    if agent is None or agent.call_id != call.id:
        return
    if agent.state == AgentState.ON_CALL:
        agent.release_call(call.id, wrap_up=wrap_up, **kw)
    elif agent.state == AgentState.RINGING:
        agent.miss_call(call.id, "canceled", **kw)


def _live_consult_agent(call: Call) -> UUID | None:
    leg = call.legs.get(call.consult_leg_id) if call.consult_leg_id else None
    return leg["agent_id"] if leg else None


@handles(m.ForceDisconnect)
def force_disconnect(uow: UnitOfWork, cmd: m.ForceDisconnect) -> Call:
    call = _call(uow, cmd)
    agent_id, colleague = call.agent_id, _live_consult_agent(call)
    kw = _kw(uow, cmd)
    call.force_disconnect(cmd.supervisor_id, **kw)
    _release_agent(uow, call, agent_id, True, kw)
    # a consult leg ends with the call: the colleague only consulted
    _release_agent(uow, call, colleague, False, kw)
    return call


@handles(m.StartRecording)
def start_recording(uow: UnitOfWork, cmd: m.StartRecording) -> Call:
    call = _call(uow, cmd)
    call.start_recording(cmd.recording, cmd.target, fmt=cmd.format, **_kw(uow, cmd))
    return call


@handles(m.StopRecording)
def stop_recording(uow: UnitOfWork, cmd: m.StopRecording) -> Call:
    call = _call(uow, cmd)
    call.stop_recording(cmd.recording, cause=cmd.cause, duration_s=cmd.duration_s,
                        **_kw(uow, cmd))
    return call


@handles(m.EndCall)
def end_call(uow: UnitOfWork, cmd: m.EndCall) -> Call:
    call = _call(uow, cmd)
    agent_id, colleague = call.agent_id, _live_consult_agent(call)
    kw = _kw(uow, cmd)
    call.end(cmd.hung_up_by, cmd.cause, cause_code=cmd.cause_code, **kw)
    _release_agent(uow, call, agent_id, cmd.wrap_up, kw)
    # a consult leg ends with the call: the colleague only consulted
    _release_agent(uow, call, colleague, False, kw)
    return call


@handles(m.CompleteWrapUp)
def complete_wrap_up(uow: UnitOfWork, cmd: m.CompleteWrapUp) -> Call:
    call = _call(uow, cmd)
    agent = _agent(uow, cmd.employee_no)
    kw = _kw(uow, cmd)
    call.complete_wrap_up(agent.id, cmd.dispositions, **kw)
    if agent.state == AgentState.WRAP_UP:
        if cmd.ready:
            agent.make_ready(**kw)
        else:
            agent.make_not_ready(cmd.not_ready_reason, **kw)
    return call


@handles(m.AnswerSurvey)
def answer_survey(uow: UnitOfWork, cmd: m.AnswerSurvey) -> Call:
    call = _call(uow, cmd)
    call.answer_survey(cmd.score, question=cmd.question, **_kw(uow, cmd))
    return call


# -- agents -----------------------------------------------------------------
@handles(m.RegisterAgent)
def register_agent(uow: UnitOfWork, cmd: m.RegisterAgent) -> Agent:
    existing = uow.find(Agent, agent_id_for(cmd.employee_no))
    if existing is not None:
        if existing.has_applied(cmd.command_id):
            raise AlreadyApplied(existing.id)
        raise InvariantViolation(f"agent {cmd.employee_no} is already registered",
                                 agent_id=str(existing.id))
    agent = Agent.register(employee_no=cmd.employee_no, name=cmd.name, team=cmd.team,
                           skills=cmd.skills, **_kw(uow, cmd))
    uow.add(agent)
    return agent


@handles(m.LogIn)
def log_in(uow: UnitOfWork, cmd: m.LogIn) -> Agent:
    agent = _agent(uow, cmd.employee_no, cmd)
    agent.log_in(cmd.endpoint, **_kw(uow, cmd))
    return agent


@handles(m.LogOut)
def log_out(uow: UnitOfWork, cmd: m.LogOut) -> Agent:
    agent = _agent(uow, cmd.employee_no, cmd)
    agent.log_out(reason=cmd.reason, **_kw(uow, cmd))
    return agent


@handles(m.MakeReady)
def make_ready(uow: UnitOfWork, cmd: m.MakeReady) -> Agent:
    agent = _agent(uow, cmd.employee_no, cmd)
    agent.make_ready(**_kw(uow, cmd))
    return agent


@handles(m.MakeNotReady)
def make_not_ready(uow: UnitOfWork, cmd: m.MakeNotReady) -> Agent:
    agent = _agent(uow, cmd.employee_no, cmd)
    agent.make_not_ready(cmd.reason, **_kw(uow, cmd))
    return agent


@handles(m.ChangeSkills)
def change_skills(uow: UnitOfWork, cmd: m.ChangeSkills) -> Agent:
    agent = _agent(uow, cmd.employee_no, cmd)
    agent.change_skills(cmd.skills, **_kw(uow, cmd))
    return agent


# -- work orders ------------------------------------------------------------
def _work_order_hooks() -> Any:
    """Deadlines, merging and callbacks (commands.work_order_handlers); imported
    late because that module registers its own handlers through this one."""
    from commands import work_order_handlers

    return work_order_handlers


def _work_order(uow: UnitOfWork, cmd: Any) -> WorkOrder:
    wo = uow.get(WorkOrder, cmd.work_order_id, what="work order")
    guard(wo, cmd.command_id, cmd.expected_version)
    return wo


@handles(m.OpenWorkOrder)
def open_work_order(uow: UnitOfWork, cmd: m.OpenWorkOrder) -> WorkOrder:
    if cmd.command_id:
        existing = uow.find(WorkOrder, work_order_id_for(cmd.command_id))
        if existing is not None:
            raise AlreadyApplied(existing.id)
    answered = _work_order_hooks().intake(uow, cmd)  # outage answer or duplicate merge
    if answered is not None:
        return answered
    call = uow.get(Call, cmd.call_id, what="call") if cmd.call_id else None
    customer = cmd.customer or {}
    phone = customer.get("phone") if isinstance(customer, dict) else None
    customer_ref = pseudonymise(str(phone), _ctx(uow).pseudonym_key) if phone else (
        call.caller_hash if call is not None else "")
    kw = _kw(uow, cmd)
    wo = WorkOrder.open(type=cmd.type, category=cmd.category, channel=cmd.channel,
                        summary=cmd.summary, call_id=cmd.call_id, customer_ref=customer_ref,
                        customer=cmd.customer, location=cmd.location,
                        location_refs=_work_order_hooks().refs_of(uow, cmd.location),
                        priority=cmd.priority, key=cmd.command_id, **kw)
    uow.add(wo)
    _work_order_hooks().after_open(uow, wo, cmd)  # deadlines, policy version
    if call is not None:
        call.link_work_order(wo.id, occurred_at=kw["occurred_at"], command_id=None,
                             actor=cmd.actor)
    return wo


@handles(m.DispatchWorkOrder)
def dispatch_work_order(uow: UnitOfWork, cmd: m.DispatchWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.dispatch(cmd.department, **_kw(uow, cmd))
    _work_order_hooks().after_dispatch(uow, wo, cmd)
    return wo


@handles(m.AcceptWorkOrder)
def accept_work_order(uow: UnitOfWork, cmd: m.AcceptWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.accept(cmd.department, **_kw(uow, cmd))
    return wo


@handles(m.NoteProgress)
def note_progress(uow: UnitOfWork, cmd: m.NoteProgress) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.note_progress(cmd.note, **_kw(uow, cmd))
    return wo


@handles(m.ResolveWorkOrder)
def resolve_work_order(uow: UnitOfWork, cmd: m.ResolveWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.resolve(cmd.resolution, note=cmd.note, **_kw(uow, cmd))
    _work_order_hooks().after_resolve(uow, wo, cmd)  # callback task
    return wo


@handles(m.RecordCallback)
def record_callback(uow: UnitOfWork, cmd: m.RecordCallback) -> WorkOrder:
    return _work_order_hooks().record_callback_attempt(uow, cmd)  # retries per policy


@handles(m.CloseWorkOrder)
def close_work_order(uow: UnitOfWork, cmd: m.CloseWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.close(**_kw(uow, cmd))
    return wo


@handles(m.ReopenWorkOrder)
def reopen_work_order(uow: UnitOfWork, cmd: m.ReopenWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.reopen(cmd.reason, **_kw(uow, cmd))
    _work_order_hooks().after_reopen(uow, wo, cmd)
    return wo


def handler_for(cmd: m.Command) -> Callable[[UnitOfWork, Any], Any]:
    try:
        return HANDLERS[type(cmd)]
    except KeyError:
        raise NotFound(f"no handler for {type(cmd).__name__}") from None
