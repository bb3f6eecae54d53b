"""Handlers of the work-order follow-through, and the hooks the basic
lifecycle handlers in ``commands.handlers`` call (deadlines on open and
dispatch, duplicate merging and outage answers on open, callback tasks on
resolution).

Every deadline is computed here, from the policy and calendar in force, and
recorded in a ``DeadlinesSet`` event with the policy version: the aggregate
never consults the policy, so replaying an old order gives its old promise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from commands import messages as m
from commands import work_order_messages as wm
from commands.bus import UnitOfWork, guard
from commands.errors import AlreadyApplied
from commands.handlers import _ctx, _kw, _when, _work_order, handles
from commands.work_order_rules import WorkOrderRules, cadence_for, calendar_gaps, rules_of
from domain.base import pseudonymise
from domain.call import Call
from domain.deadlines import remaining_after_pause
from domain.errors import InvalidValue, InvariantViolation, NotFound
from domain.handover import Handover, handover_id_for
from domain.outage import Outage, OutageArea, area_key, outage_area_id, outage_id_for
from domain.work_order import (
    FaultLocation,
    WorkOrder,
    WorkOrderStatus,
    fault_location_id,
    fault_location_keys,
    location_keys,
    location_refs,
    work_order_id_for,
)

LIVE = (WorkOrderStatus.OPEN, WorkOrderStatus.DISPATCHED, WorkOrderStatus.ACCEPTED)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    """What an open command did instead of opening a new order. ``id`` is
    the order the report went to (none for an outage answer)."""

    outcome: str  # merged | outage_information
    id: UUID | None = None
    number: str | None = None
    outage: dict[str, Any] = field(default_factory=dict)


def _rules(uow: UnitOfWork) -> WorkOrderRules:
    return rules_of(uow.ctx)


def _stamp(uow: UnitOfWork, wo: WorkOrder, stages: tuple[str, ...], start: datetime,
           reason: str, kw: dict[str, Any], *, always: bool = False) -> None:
    """A new promise: deadlines, how they were counted and how they will be
    urged, all from the policy in force now and recorded with its version."""
    rules = _rules(uow)
    p = rules.policy
    deadlines = p.deadlines(wo.type, wo.category, wo.priority, stages, start, rules.calendar)
    if deadlines or always:
        units = p.units(wo.type, wo.category, wo.priority, stages)
        cadence = p.cadence(wo.type, wo.category, wo.priority).as_dict()
        gaps = _calendar_gaps(rules, wo, start, deadlines, units)
        wo.set_deadlines(deadlines, units, reason, p.version, occurred_at=kw["occurred_at"],
                         urging={s: cadence for s in deadlines}, calendar_incomplete=bool(gaps),
                         command_id=None, actor=kw["actor"])


def _calendar_gaps(rules: WorkOrderRules, wo: WorkOrder, start: datetime,
                   deadlines: dict[str, datetime], units: dict[str, str]) -> dict[str, list[int]]:
    """Working-day deadlines counted over a year the calendar does not list
    are still set (weekends only), but flagged and logged for the
    administrator: silently missing a year's holidays breaks promises."""
    gaps = calendar_gaps(rules.calendar, start, deadlines, units)
    for stage, years in gaps.items():
        log.warning("work order %s: the %s deadline %s was counted over %s, which calendar %r "
                    "does not list (weekends only)", wo.number, stage,
                    deadlines[stage].isoformat(), years, rules.calendar.name)
    return gaps


def refs_of(uow: UnitOfWork, location: dict[str, str] | None) -> dict[str, str]:
    """Pseudonyms of a location's personal kinds (an address), keyed with the
    installation's pseudonym key like ``caller_hash``."""
    return location_refs(dict(location or {}), _ctx(uow).pseudonym_key)


def _customer_ref(uow: UnitOfWork, cmd: m.OpenWorkOrder, call: Call | None) -> str:
    customer = cmd.customer or {}
    phone = customer.get("phone") if isinstance(customer, dict) else None
    if phone:
        return pseudonymise(str(phone), _ctx(uow).pseudonym_key)
    return call.caller_hash if call is not None else ""


# -- hooks of the basic lifecycle handlers -----------------------------------
def intake(uow: UnitOfWork, cmd: m.OpenWorkOrder) -> IntakeResult | None:
    """Before a new order is opened: a fault inside a current outage is
    answered as information; a repeated report of an open fault is merged."""
    rules = _rules(uow)
    policy = rules.policy
    when = _when(uow, cmd)
    location = cmd.location or {}
    if cmd.type in policy.outage_types and isinstance(location, dict):
        for key in location_keys(location, tuple(location)):
            area = uow.find(OutageArea, outage_area_id(key))
            for outage_id in area.outage_ids if area else ():
                outage = uow.get(Outage, outage_id)
                if outage.covers(key, when):
                    _note_enquiry(uow, outage, key, cmd, when)
                    return IntakeResult("outage_information", outage=outage_view(outage))
    if cmd.type in policy.merge.types and isinstance(location, dict):
        refs = refs_of(uow, location)
        for key, v1_key in fault_location_keys(location, refs, policy.merge.keys):
            # An address's place is keyed by its pseudonym; one recorded
            # before pseudonyms (FaultLocation.Created v1) still has the id of
            # its clear key and is looked up by it second.
            for spot_id in (fault_location_id(key), *([fault_location_id(v1_key)]
                                                      if v1_key else [])):
                spot = uow.find(FaultLocation, spot_id)
                if spot is None:
                    continue
                if not (spot.opened_at <= when <= policy.merge.window.after(spot.opened_at,
                                                                            rules.calendar)):
                    continue
                target = uow.get(WorkOrder, spot.work_order_id, what="work order")
                if target.has_applied(cmd.command_id):
                    raise AlreadyApplied(target.id)
                if target.status not in LIVE:
                    continue
                _merge_report(uow, target, cmd, when)
                return IntakeResult("merged", id=target.id, number=target.number)
    return None


def _note_enquiry(uow: UnitOfWork, outage: Outage, key: str, cmd: m.OpenWorkOrder,
                  when: datetime) -> None:
    """The answer leaves a trace on the outage (not on the call): how many
    callers a notice answered, which calls, and what they said (``pii``).
    A retried command answers again but records nothing new."""
    if outage.has_applied(cmd.command_id):
        return
    call = uow.get(Call, cmd.call_id, what="call") if cmd.call_id else None
    pii = {"summary": cmd.summary,
           **({"customer": dict(cmd.customer)} if isinstance(cmd.customer, dict) else {})}
    outage.answer_enquiry(key, when, call_id=cmd.call_id, work_order_type=cmd.type,
                          channel=cmd.channel, customer_ref=_customer_ref(uow, cmd, call),
                          pii=pii, command_id=cmd.command_id, actor=cmd.actor)


def _merge_report(uow: UnitOfWork, target: WorkOrder, cmd: m.OpenWorkOrder,
                  when: datetime) -> None:
    call = uow.get(Call, cmd.call_id, what="call") if cmd.call_id else None
    if cmd.call_id:
        link_id = f"call:{cmd.call_id}"
    elif cmd.command_id:
        link_id = f"cmd:{cmd.command_id}"
    else:
        link_id = f"report:{len(target.links) + 1}"
    target.link_caller(link_id, when, call_id=cmd.call_id,
                       customer_ref=_customer_ref(uow, cmd, call), location=cmd.location,
                       location_refs=refs_of(uow, cmd.location), summary=cmd.summary,
                       customer=cmd.customer, command_id=cmd.command_id, actor=cmd.actor)
    if call is not None and target.id not in call.work_orders:
        call.link_work_order(target.id, occurred_at=when, command_id=None, actor=cmd.actor)


def after_open(uow: UnitOfWork, wo: WorkOrder, cmd: m.OpenWorkOrder) -> None:
    """The dispatch and resolution promises start when the order is opened;
    acceptance starts at dispatch."""
    kw = _kw(uow, cmd)
    _stamp(uow, wo, ("dispatch", "resolve"), wo.opened_at, "open", kw, always=True)
    policy = _rules(uow).policy
    if wo.type in policy.merge.types:
        # Only pseudonymous (and infrastructure) places are written: a place
        # recorded under its clear address (v1) is read by intake, no more.
        for key, _ in fault_location_keys(wo.location, wo.location_refs, policy.merge.keys):
            spot = uow.find(FaultLocation, fault_location_id(key))
            if spot is None:
                uow.add(FaultLocation.start(key, wo.id, wo.opened_at, actor=cmd.actor))
            else:
                spot.note_order(wo.id, wo.opened_at, actor=cmd.actor)


def after_dispatch(uow: UnitOfWork, wo: WorkOrder, cmd: m.DispatchWorkOrder) -> None:
    kw = _kw(uow, cmd)
    _stamp(uow, wo, ("accept",), kw["occurred_at"], "dispatch", kw)


def after_resolve(uow: UnitOfWork, wo: WorkOrder, cmd: m.Command) -> None:
    rules = _rules(uow)
    p = rules.policy
    assert wo.resolved_at is not None
    due = p.callback_due(wo.type, wo.resolved_at, rules.calendar)
    if due is None:
        return
    kw = _kw(uow, cmd)
    moments = {"due": due[0], "give_up": due[1]}
    units = {"due": p.callback.due.unit, "give_up": p.callback.retry_window.unit}
    gaps = _calendar_gaps(rules, wo, wo.resolved_at, moments, units)
    wo.schedule_callback(due[0], due[1], retry_after=str(p.callback.retry_after),
                         max_attempts=p.callback.max_attempts, assignee=wo.opened_by or "",
                         team=p.callback.team, policy_version=p.version,
                         occurred_at=kw["occurred_at"], calendar_incomplete=bool(gaps),
                         command_id=None, actor=kw["actor"])


def after_reopen(uow: UnitOfWork, wo: WorkOrder, cmd: m.Command) -> None:
    """A reopened order is a new promise to the customer, counted from now."""
    kw = _kw(uow, cmd)
    stages = ("accept", "resolve") if wo.department else ("dispatch", "resolve")
    _stamp(uow, wo, stages, kw["occurred_at"], "reopen", kw)


def record_callback_attempt(uow: UnitOfWork, cmd: m.RecordCallback) -> WorkOrder:
    wo = _work_order(uow, cmd)
    rules = _rules(uow)
    kw = _kw(uow, cmd)
    reopen = bool(getattr(cmd, "reopen", False))
    if reopen and cmd.result != "reached":
        raise InvalidValue("only a reached callback can reopen the order", field="reopen")
    next_due = rules.policy.callback.retry_after.after(kw["occurred_at"], rules.calendar)
    wo.attempt_callback(cmd.result, satisfaction=cmd.satisfaction, reason=cmd.reason,
                        next_due_at=next_due, **kw)
    if reopen:
        reason = getattr(cmd, "reopen_reason", "") or "callback: the customer is not satisfied"
        wo.reopen(reason, occurred_at=kw["occurred_at"], command_id=None, actor=kw["actor"])
        after_reopen(uow, wo, cmd)
    return wo


# -- handlers -----------------------------------------------------------------
@handles(wm.ReceiveReferral)
def receive_referral(uow: UnitOfWork, cmd: wm.ReceiveReferral) -> Any:
    from commands.handlers import open_work_order

    result = open_work_order(uow, cmd)
    if isinstance(result, WorkOrder):
        result.receive_referral(cmd.partner, cmd.reference, occurred_at=result.opened_at,
                                command_id=None, actor=cmd.actor)
    elif isinstance(result, IntakeResult) and result.id is not None:
        # Merged into an open order: the partner still gets the reply from it.
        target = uow.get(WorkOrder, result.id, what="work order")
        if target.referral is None:
            target.receive_referral(cmd.partner, cmd.reference, occurred_at=_when(uow, cmd),
                                    command_id=None, actor=cmd.actor)
    return result


@handles(wm.ReferWorkOrder)
def refer_work_order(uow: UnitOfWork, cmd: wm.ReferWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.refer_out(cmd.partner, cmd.reference, **_kw(uow, cmd))
    return wo


@handles(wm.SendReply)
def send_reply(uow: UnitOfWork, cmd: wm.SendReply) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.send_reply(cmd.partner, cmd.text, **_kw(uow, cmd))
    return wo


@handles(wm.PauseClock)
def pause_clock(uow: UnitOfWork, cmd: wm.PauseClock) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.pause_clock(cmd.reason, **_kw(uow, cmd))
    return wo


@handles(wm.ResumeClock)
def resume_clock(uow: UnitOfWork, cmd: wm.ResumeClock) -> WorkOrder:
    wo = _work_order(uow, cmd)
    kw = _kw(uow, cmd)
    paused_at = wo.paused_at
    wo.resume_clock(**kw)
    assert paused_at is not None
    rules = _rules(uow)
    # A deadline set during the pause (dispatched meanwhile) never ran: its
    # time left counts from when it was set.
    moved = {stage: remaining_after_pause(wo.deadlines[stage], paused_at, kw["occurred_at"],
                                          wo.deadline_units.get(stage) == "working_days",
                                          rules.calendar, set_at=wo.deadline_set_at.get(stage))
             for stage in wo.active_stages()}
    moved = {s: d for s, d in moved.items() if d != wo.deadlines[s]}
    if moved:
        # The same promise, moved: it keeps its units and urging cadence.
        units = {s: wo.deadline_units.get(s, "") for s in moved}
        gaps = _calendar_gaps(rules, wo, paused_at, moved, units)
        wo.set_deadlines(moved, units, "resume", wo.policy_version or rules.policy.version,
                         occurred_at=kw["occurred_at"],
                         urging={s: wo.cadence[s] for s in moved if s in wo.cadence},
                         calendar_incomplete=bool(gaps), command_id=None, actor=kw["actor"])
    return wo


@handles(wm.UrgeWorkOrder)
def urge_work_order(uow: UnitOfWork, cmd: wm.UrgeWorkOrder) -> WorkOrder:
    wo = _work_order(uow, cmd)
    deadline = wo.deadlines.get(cmd.stage)
    if cmd.deadline is not None and deadline != cmd.deadline:
        raise InvariantViolation(f"the {cmd.stage} deadline moved since this urging was due")
    first = cmd.first_seq if cmd.first_seq is not None else cmd.seq
    if first <= wo.urgings.get(cmd.stage, 0) and deadline is not None:
        raise AlreadyApplied(wo.id)  # fired before, under another id (a second timer)
    p = _rules(uow).policy
    cadence = cadence_for(wo, cmd.stage, p)  # as stamped with the deadline
    desk = p.urging.dispatch_desk
    department = desk if cmd.stage == "dispatch" else (wo.department or desk)
    wo.urge(cmd.stage, cmd.seq, cmd.due_at, department, cadence, first_seq=first,
            first_due_at=cmd.first_due_at, **_kw(uow, cmd))
    return wo


@handles(wm.ReassignCallback)
def reassign_callback(uow: UnitOfWork, cmd: wm.ReassignCallback) -> WorkOrder:
    wo = _work_order(uow, cmd)
    wo.reassign_callback(cmd.assignee, team=cmd.team, **_kw(uow, cmd))
    return wo


@handles(wm.GiveUpCallback)
def give_up_callback(uow: UnitOfWork, cmd: wm.GiveUpCallback) -> WorkOrder:
    wo = _work_order(uow, cmd)
    task = wo.callback_task
    if task is not None and task["task"] == cmd.task and task["state"] != "pending":
        raise AlreadyApplied(wo.id)
    wo.give_up_callback(cmd.task, **_kw(uow, cmd))
    return wo


@handles(wm.RecordCallbackAttempt)
def record_callback_attempt_handler(uow: UnitOfWork, cmd: wm.RecordCallbackAttempt) -> WorkOrder:
    return record_callback_attempt(uow, cmd)


@handles(wm.SplitWorkOrder)
def split_work_order(uow: UnitOfWork, cmd: wm.SplitWorkOrder) -> WorkOrder:
    target = _work_order(uow, cmd)
    kw = _kw(uow, cmd)
    link = target.links.get(cmd.link_id)
    if link is None:
        raise NotFound(f"{cmd.link_id} is not linked to work order {target.number}",
                       field="link_id")
    source_id = link["source_work_order_id"]
    key = f"split:{target.id}:{cmd.link_id}"
    new_id = source_id or work_order_id_for(key)
    target.split(cmd.link_id, new_id, **kw)
    if source_id is not None:
        source = uow.get(WorkOrder, source_id, what="work order")
        source.note_split_from(target.id, cmd.link_id, occurred_at=kw["occurred_at"],
                               command_id=None, actor=kw["actor"])
        return source
    pii = link.get("pii") or {}
    new = WorkOrder.open(type=target.type, category=target.category, channel="phone",
                         summary=pii.get("summary") or f"split from {target.number}",
                         occurred_at=link["at"], call_id=link["call_id"],
                         customer_ref=link["customer_ref"], customer=pii.get("customer"),
                         location=link["location"], location_refs=refs_of(uow, link["location"]),
                         priority=target.priority, key=key, command_id=None, actor=kw["actor"])
    uow.add(new)
    new.note_split_from(target.id, cmd.link_id, occurred_at=kw["occurred_at"], command_id=None,
                        actor=kw["actor"])
    # The caller's promise dates from their report, not from the correction.
    _stamp(uow, new, ("dispatch", "resolve"), link["at"], "split", kw, always=True)
    if link["call_id"]:
        call = uow.find(Call, link["call_id"])
        if call is not None and new.id not in call.work_orders:
            call.link_work_order(new.id, occurred_at=kw["occurred_at"], command_id=None,
                                 actor=kw["actor"])
    return new


@handles(wm.MergeWorkOrder)
def merge_work_order(uow: UnitOfWork, cmd: wm.MergeWorkOrder) -> WorkOrder:
    source = _work_order(uow, cmd)
    target = uow.get(WorkOrder, cmd.into, what="work order")
    kw = _kw(uow, cmd)
    # Check the target before changing the source: a refused command must
    # leave both untouched.
    if target.status not in LIVE:
        raise InvariantViolation(f"cannot merge into a work order that is {target.status.value}")
    source.merge_into(target.id, **kw)
    target.link_caller(f"order:{source.id}", kw["occurred_at"],
                       call_id=source.call_ids[0] if source.call_ids else None,
                       customer_ref=source.customer_ref, location=source.location,
                       location_refs=refs_of(uow, source.location),
                       summary=f"merged work order {source.number}",
                       source_work_order_id=source.id, command_id=None, actor=kw["actor"])
    return target


# -- outages ------------------------------------------------------------------
def outage_view(o: Outage) -> dict[str, Any]:
    return {"outage_id": str(o.id), "reference": o.reference, "kind": o.kind,
            "areas": list(o.areas), "start": o.start.isoformat(), "end": o.end.isoformat(),
            "reason": o.reason, "short_notice": o.short_notice}


def _outage(uow: UnitOfWork, reference: str, cmd: m.Command) -> Outage:
    o = uow.get(Outage, outage_id_for(reference), what=f"outage {reference}")
    guard(o, cmd.command_id, cmd.expected_version)
    return o


@handles(wm.PublishOutage)
def publish_outage(uow: UnitOfWork, cmd: wm.PublishOutage) -> Outage:
    existing = uow.find(Outage, outage_id_for(cmd.reference)) if cmd.reference else None
    if existing is not None:
        if existing.has_applied(cmd.command_id):
            raise AlreadyApplied(existing.id)
        raise InvariantViolation(f"outage {cmd.reference} is already published: revise it",
                                 field="reference")
    kw = _kw(uow, cmd)
    outage = Outage.publish(reference=cmd.reference, kind=cmd.kind, areas=cmd.areas,
                            start=cmd.start, end=cmd.end, reason=cmd.reason,
                            notice_days=_rules(uow).policy.outage_notice_days, **kw)
    uow.add(outage)
    for key in outage.areas:
        area = uow.find(OutageArea, outage_area_id(key))
        if area is None:
            uow.add(OutageArea.start(key, outage.id, kw["occurred_at"], actor=cmd.actor))
        else:
            area.add(outage.id, kw["occurred_at"], actor=cmd.actor)
    return outage


@handles(wm.ReviseOutage)
def revise_outage(uow: UnitOfWork, cmd: wm.ReviseOutage) -> Outage:
    o = _outage(uow, cmd.reference, cmd)
    o.revise(cmd.start, cmd.end, cmd.reason, **_kw(uow, cmd))
    return o


@handles(wm.CancelOutage)
def cancel_outage(uow: UnitOfWork, cmd: wm.CancelOutage) -> Outage:
    o = _outage(uow, cmd.reference, cmd)
    o.cancel(cmd.reason, **_kw(uow, cmd))
    return o


# -- shift handover -----------------------------------------------------------
@handles(wm.CreateHandover)
def create_handover(uow: UnitOfWork, cmd: wm.CreateHandover) -> Handover:
    kw = _kw(uow, cmd)
    key = cmd.key or cmd.command_id or (
        f"{cmd.from_shift}->{cmd.to_shift}@{kw['occurred_at'].isoformat()}")
    existing = uow.find(Handover, handover_id_for(key))
    if existing is not None:
        if existing.has_applied(cmd.command_id):
            raise AlreadyApplied(existing.id)
        raise InvariantViolation(f"handover {key} already exists", field="key")
    h = Handover.create(key=key, from_shift=cmd.from_shift, to_shift=cmd.to_shift,
                        snapshot={"open_calls": cmd.open_calls, "open_orders": cmd.open_orders,
                                  "overdue_orders": cmd.overdue_orders,
                                  "pending_callbacks": cmd.pending_callbacks},
                        notes=cmd.notes, **kw)
    uow.add(h)
    return h


@handles(wm.AcknowledgeHandover)
def acknowledge_handover(uow: UnitOfWork, cmd: wm.AcknowledgeHandover) -> Handover:
    h = uow.get(Handover, cmd.handover_id, what="handover")
    guard(h, cmd.command_id, cmd.expected_version)
    h.acknowledge(cmd.by, **_kw(uow, cmd))
    return h


def validate_areas(areas: list[str]) -> list[str]:
    """For adapters: the normalised keys, or InvalidValue naming the area."""
    return [area_key(a) for a in areas]
