"""CLI commands: work-order follow-through, outages and shift handovers.

Adds to the ``work-orders`` group (the basic open/dispatch/accept/resolve/
close/reopen commands are in ``lianxin.cli.core``) and creates the
``outages`` and ``handover`` groups. ``lianxin work-orders tick --now ...``
fires every urging, escalation and callback give-up due by then; ``lianxin
serve`` runs the same tick in a loop. Errors exit non-zero naming the field.
"""

from __future__ import annotations

from typing import Any, Optional
from uuid import UUID

import typer

from commands import messages as m
from commands import work_order_messages as wm
from commands.timers import timer_service
from domain.errors import DomainError
from lianxin.cli.core import (
    Actor,
    CatchUp,
    Key,
    When,
    _Session,
    describe,
    emit,
    fail,
    group,
    parse_when,
    query,
)
from lianxin.wiring import register_service

register_service(timer_service)


def _uuid(value: str, field: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        fail(f"{field}: {value!r} is not a valid id", 2)


def _pairs(items: list[str], field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            fail(f"{field}: {item!r} must look like name=value, e.g. transformer=T-88", 2)
        out[name.strip()] = value.strip()
    return out


def _run(cmd: m.Command) -> None:
    """Run one command, print the outcome with its result (merged, outage
    information...)."""
    with _Session() as lx:
        try:
            out = lx.commands.handle(cmd)
        except DomainError as exc:
            fail(describe(exc))
        result = out.result
        if result is not None and hasattr(result, "__dataclass_fields__"):
            from dataclasses import asdict

            result = asdict(result)
        emit({"aggregate_id": out.aggregate_id, "position": out.position,
              "new_events": out.new_events, "duplicate": out.duplicate, "result": result})


def register(root: typer.Typer) -> None:
    """Add this area's commands and groups to the root `lianxin` app."""
    _work_orders(group(root, "work-orders", "Work orders (工单)"))
    _outages(group(root, "outages", "Outage notices (停电信息)"))
    _handover(group(root, "handover", "Shift handover (交接班)"))


def _work_orders(g: typer.Typer) -> None:
    @g.command("intake")
    def intake(type: str = typer.Option(..., "--type", help="fault_repair, complaint, ..."),
               summary: str = typer.Option(..., help="what the customer reported"),
               category: str = typer.Option("", help="category"),
               location: list[str] = typer.Option([], "--location",
                                                  help="kind=value, e.g. transformer=T-88"),
               customer: list[str] = typer.Option(
                   [], "--customer", help="name=value (personal data), e.g. phone=139..."),
               call: Optional[str] = typer.Option(None, "--call", help="originating call id"),
               priority: str = typer.Option("normal", help="low, normal, high, urgent"),
               channel: str = typer.Option("phone", help="intake channel"),
               partner: Optional[str] = typer.Option(None, help="referred by 12345/110/119"),
               reference: Optional[str] = typer.Option(None, help="the partner's reference"),
               key: Optional[str] = Key, actor: Optional[str] = Actor,
               at: Optional[str] = When) -> None:
        """Open an order with its location: a repeated fault is merged into the
        open one, a fault inside a current outage is answered as information."""
        args: dict[str, Any] = dict(
            type=type, summary=summary, category=category, location=_pairs(location, "--location"),
            customer=_pairs(customer, "--customer") or None, priority=priority, channel=channel,
            call_id=_uuid(call, "--call") if call else None, command_id=key, actor=actor,
            occurred_at=parse_when(at))
        if (partner is None) != (reference is None):
            fail("--partner and --reference go together", 2)
        if partner is not None:
            args["channel"] = "referral" if channel == "phone" else channel
            _run(wm.ReceiveReferral(partner=partner, reference=reference or "", **args))
        else:
            _run(m.OpenWorkOrder(**args))

    @g.command("progress")
    def progress(work_order_id: str,
                 note: str = typer.Option(..., help="free text (personal data)"),
                 key: Optional[str] = Key, actor: Optional[str] = Actor,
                 at: Optional[str] = When) -> None:
        """Note progress."""
        _run(m.NoteProgress(work_order_id=_uuid(work_order_id, "work_order_id"), note=note,
                            command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("pause")
    def pause(work_order_id: str, reason: str = typer.Option(..., help="why the clock stops"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Pause the deadline clock (waiting for the customer)."""
        _run(wm.PauseClock(work_order_id=_uuid(work_order_id, "work_order_id"), reason=reason,
                           command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("resume")
    def resume(work_order_id: str, key: Optional[str] = Key, actor: Optional[str] = Actor,
               at: Optional[str] = When) -> None:
        """Resume the clock; deadlines move by the time it was paused."""
        _run(wm.ResumeClock(work_order_id=_uuid(work_order_id, "work_order_id"),
                            command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("callback")
    def callback(work_order_id: str,
                 result: str = typer.Option(..., help="reached, no_answer, busy, refused"),
                 satisfaction: Optional[int] = typer.Option(None, help="1..5 (reached only)"),
                 reason: str = typer.Option("", help="why it failed"),
                 reopen: bool = typer.Option(False, "--reopen", help="reopen the order"),
                 reopen_reason: str = typer.Option("", help="why it is reopened"),
                 key: Optional[str] = Key, actor: Optional[str] = Actor,
                 at: Optional[str] = When) -> None:
        """Record a callback attempt (回访)."""
        _run(wm.RecordCallbackAttempt(
            work_order_id=_uuid(work_order_id, "work_order_id"), result=result,
            satisfaction=satisfaction, reason=reason, reopen=reopen, reopen_reason=reopen_reason,
            command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("reassign-callback")
    def reassign_callback(work_order_id: str,
                          to: str = typer.Option(..., "--to", help="the agent who calls back"),
                          team: Optional[str] = typer.Option(None, help="default: unchanged"),
                          key: Optional[str] = Key, actor: Optional[str] = Actor,
                          at: Optional[str] = When) -> None:
        """Give the pending callback (回访) to another agent (and team)."""
        _run(wm.ReassignCallback(work_order_id=_uuid(work_order_id, "work_order_id"),
                                 assignee=to, team=team, command_id=key, actor=actor,
                                 occurred_at=parse_when(at)))

    @g.command("split")
    def split(work_order_id: str, link: str = typer.Option(..., "--link", help="link id"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Split a wrongly merged report off into its own order."""
        _run(wm.SplitWorkOrder(work_order_id=_uuid(work_order_id, "work_order_id"), link_id=link,
                               command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("merge")
    def merge(work_order_id: str, into: str = typer.Option(..., "--into", help="target order id"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Merge a duplicate order into another."""
        _run(wm.MergeWorkOrder(work_order_id=_uuid(work_order_id, "work_order_id"),
                               into=_uuid(into, "--into"), command_id=key, actor=actor,
                               occurred_at=parse_when(at)))

    @g.command("refer")
    def refer(work_order_id: str, partner: str = typer.Option(..., help="12345, 110, 119"),
              reference: str = typer.Option(..., help="their reference"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Hand the order to a linked public service."""
        _run(wm.ReferWorkOrder(work_order_id=_uuid(work_order_id, "work_order_id"),
                               partner=partner, reference=reference, command_id=key, actor=actor,
                               occurred_at=parse_when(at)))

    @g.command("reply")
    def reply(work_order_id: str, partner: str = typer.Option(..., help="12345, 110, 119"),
              text: str = typer.Option(..., help="the result reported back"),
              key: Optional[str] = Key, actor: Optional[str] = Actor,
              at: Optional[str] = When) -> None:
        """Report the result back to the referring partner."""
        _run(wm.SendReply(work_order_id=_uuid(work_order_id, "work_order_id"), partner=partner,
                          text=text, command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("tick")
    def tick(now: Optional[str] = typer.Option(
            None, "--now", help="fire what is due by then (default now)")) -> None:
        """Fire every urging, escalation and callback give-up due by --now."""
        from commands.timers import WorkOrderTimers

        when = parse_when(now, "--now")
        with _Session() as lx:
            timers = WorkOrderTimers(lx)
            try:
                emit(timers.tick(when).as_dict())
            except DomainError as exc:
                fail(describe(exc))
            finally:
                timers.close()

    @g.command("show")
    def show(ref: str, catch_up: bool = CatchUp) -> None:
        """One order by id or number, with urgings, links and callbacks."""
        from queries.work_orders import get_work_order

        query(lambda lx: get_work_order(lx, ref), catch_up)

    @g.command("inbox")
    def inbox(department: Optional[str] = typer.Option(None, help="omit: the dispatch desk"),
              now: Optional[str] = typer.Option(None, "--now", help="judge deadlines at"),
              catch_up: bool = CatchUp) -> None:
        """A department's inbox: overdue, due soon, open."""
        from queries.work_orders import inbox as inbox_q

        when = parse_when(now, "--now")
        query(lambda lx: inbox_q(lx, department, now=when), catch_up)

    @g.command("urgings")
    def urgings(department: Optional[str] = typer.Option(None), catch_up: bool = CatchUp) -> None:
        """Urgings and escalations of orders still in play."""
        from queries.work_orders import urging_list

        query(lambda lx: urging_list(lx, department), catch_up)

    @g.command("callbacks")
    def callbacks(agent: Optional[str] = typer.Option(None),
                  team: Optional[str] = typer.Option(None),
                  now: Optional[str] = typer.Option(None, "--now"),
                  catch_up: bool = CatchUp) -> None:
        """Callback worklist (回访) per agent or team."""
        from queries.work_orders import callback_worklist

        when = parse_when(now, "--now")
        query(lambda lx: callback_worklist(lx, agent=agent, team=team, now=when), catch_up)

    @g.command("status")
    def status(number: str, catch_up: bool = CatchUp) -> None:
        """What the IVR tells a caller who keys this number."""
        from queries.self_service import work_order_status

        query(lambda lx: {"number": number, "status": work_order_status(lx, number)}, catch_up)


def _outages(g: typer.Typer) -> None:
    @g.command("publish")
    def publish(reference: str = typer.Option(..., help="the notice number"),
                kind: str = typer.Option("planned", help="planned or temporary"),
                area: list[str] = typer.Option(..., "--area",
                                               help="feeder:F12, transformer:T-3..."),
                start: str = typer.Option(..., help="ISO-8601 with offset"),
                end: str = typer.Option(..., help="ISO-8601 with offset"),
                reason: str = typer.Option(..., help="why"),
                key: Optional[str] = Key, actor: Optional[str] = Actor,
                at: Optional[str] = When) -> None:
        """Publish an outage notice (flagged when < 7 days ahead)."""
        _run(wm.PublishOutage(reference=reference, kind=kind, areas=list(area),
                              start=parse_when(start, "--start"), end=parse_when(end, "--end"),
                              reason=reason, command_id=key, actor=actor,
                              occurred_at=parse_when(at)))

    @g.command("revise")
    def revise(reference: str, start: str = typer.Option(...), end: str = typer.Option(...),
               reason: str = typer.Option(...), key: Optional[str] = Key,
               actor: Optional[str] = Actor, at: Optional[str] = When) -> None:
        """Change an outage's window."""
        _run(wm.ReviseOutage(reference=reference, start=parse_when(start, "--start"),
                             end=parse_when(end, "--end"), reason=reason, command_id=key,
                             actor=actor, occurred_at=parse_when(at)))

    @g.command("cancel")
    def cancel(reference: str, reason: str = typer.Option(...), key: Optional[str] = Key,
               actor: Optional[str] = Actor, at: Optional[str] = When) -> None:
        """Cancel an outage."""
        _run(wm.CancelOutage(reference=reference, reason=reason, command_id=key, actor=actor,
                             occurred_at=parse_when(at)))

    @g.command("list")
    def list_(now: Optional[str] = typer.Option(None, "--now"),
              include_past: bool = typer.Option(False, "--include-past"),
              area: Optional[str] = typer.Option(None, help="only this area"),
              catch_up: bool = CatchUp) -> None:
        """The outage board."""
        from queries import work_orders as q

        when = parse_when(now, "--now")
        if area is not None:
            query(lambda lx: q.outages_in_area(lx, area, at=when), catch_up)
        else:
            query(lambda lx: q.outage_board(lx, now=when, include_past=include_past), catch_up)

    @g.command("enquiries")
    def enquiries(reference: str, catch_up: bool = CatchUp) -> None:
        """The fault reports a notice answered instead of a repair order."""
        from queries.work_orders import outage_enquiries

        query(lambda lx: outage_enquiries(lx, reference), catch_up)


def _handover(g: typer.Typer) -> None:
    @g.command("create")
    def create(from_shift: str = typer.Option(..., "--from", help="outgoing shift"),
               to_shift: str = typer.Option(..., "--to", help="incoming shift"),
               notes: str = typer.Option("", help="important matters (personal data)"),
               key: Optional[str] = Key, actor: Optional[str] = Actor,
               at: Optional[str] = When) -> None:
        """Write a handover listing open calls, open/overdue orders and pending callbacks."""
        from queries.work_orders import handover_snapshot

        when = parse_when(at)
        with _Session() as lx:
            lx.read_models().run_once()
            snap = handover_snapshot(lx, now=when)
            try:
                out = lx.commands.handle(wm.CreateHandover(
                    from_shift=from_shift, to_shift=to_shift, notes=notes, command_id=key,
                    actor=actor, occurred_at=when, **snap))
            except DomainError as exc:
                fail(describe(exc))
            emit({"handover_id": out.aggregate_id, "position": out.position,
                  "duplicate": out.duplicate, **snap})

    @g.command("acknowledge")
    def acknowledge(handover_id: str, by: str = typer.Option(..., help="who of the incoming shift"),
                    key: Optional[str] = Key, actor: Optional[str] = Actor,
                    at: Optional[str] = When) -> None:
        """The incoming shift acknowledges the handover."""
        _run(wm.AcknowledgeHandover(handover_id=_uuid(handover_id, "handover_id"), by=by,
                                    command_id=key, actor=actor, occurred_at=parse_when(at)))

    @g.command("list")
    def list_(catch_up: bool = CatchUp) -> None:
        """Recent handovers."""
        from queries.work_orders import handovers

        query(lambda lx: handovers(lx), catch_up)

    @g.command("show")
    def show(handover_id: str, catch_up: bool = CatchUp) -> None:
        """One handover: its lists as they were, and who acknowledged it."""
        from queries.work_orders import get_handover

        hid = _uuid(handover_id, "handover_id")
        query(lambda lx: get_handover(lx, hid), catch_up)

    @g.command("snapshot")
    def snapshot(now: Optional[str] = typer.Option(None, "--now", help="default now"),
                 catch_up: bool = CatchUp) -> None:
        """What a handover written now would list."""
        from queries.work_orders import handover_snapshot

        when = parse_when(now, "--now")
        query(lambda lx: handover_snapshot(lx, now=when), catch_up)

