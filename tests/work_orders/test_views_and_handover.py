"""The department inbox (open / due soon / overdue), urging list, callback
worklist and the shift handover with its acknowledgement."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands import messages as m
from commands import work_order_messages as wm
from commands.timers import WorkOrderTimers
from domain.errors import InvalidValue, InvariantViolation
from queries import work_orders as q
from tests.work_orders.conftest import events, local, open_order

T0 = local(2026, 11, 23, 9)


def _dispatched(lx, key, type, dept, at, **kw):
    wo_id = open_order(lx, type, at, key, **kw).aggregate_id
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department=dept,
                                           occurred_at=at + timedelta(minutes=2)))
    return wo_id


def test_the_inbox_sorts_a_departments_orders_by_their_deadlines(lx):
    late = _dispatched(lx, "i1", "consultation", "billing", local(2026, 11, 20, 9))  # due Tue 0:00
    soon = _dispatched(lx, "i2", "consultation", "billing", local(2026, 11, 23, 10))  # due Wed 0:00
    calm = _dispatched(lx, "i3", "complaint", "billing", local(2026, 11, 23, 11))
    other = _dispatched(lx, "i4", "complaint", "grid", local(2026, 11, 23, 11))
    waiting = open_order(lx, "complaint", local(2026, 11, 23, 12), "i5").aggregate_id
    q.fresh(lx)
    box = q.inbox(lx, "billing", now=local(2026, 11, 24, 22, 30))
    assert [o["work_order_id"] for o in box["overdue"]] == [str(late)]
    assert [o["work_order_id"] for o in box["due_soon"]] == [str(soon)]
    assert [o["work_order_id"] for o in box["open"]] == [str(calm)]
    assert box["counts"] == {"overdue": 1, "due_soon": 1, "open": 1}
    assert str(other) not in str(box)
    # The dispatch desk (not yet dispatched): the 1 h dispatch promise is due soon...
    desk = q.inbox(lx, None, now=local(2026, 11, 23, 12, 30))
    assert [o["work_order_id"] for o in desk["due_soon"]] == [str(waiting)]
    # ...then missed.
    desk = q.inbox(lx, None, now=local(2026, 11, 23, 13, 30))
    assert [o["next_stage"] for o in desk["overdue"]] == ["dispatch"]
    # A paused order is neither due soon nor overdue.
    lx.commands.handle(wm.PauseClock(work_order_id=late, reason="awaiting documents",
                                     occurred_at=local(2026, 11, 24, 9)))
    q.fresh(lx)
    box = q.inbox(lx, "billing", now=local(2026, 11, 24, 22, 30))
    assert box["counts"]["overdue"] == 0 and box["open"][0]["paused"]
    with pytest.raises(InvalidValue, match="now"):
        q.inbox(lx, "billing", now=local(2026, 11, 24).replace(tzinfo=None))


def test_urging_list_and_callback_worklist(lx):
    wo_id = _dispatched(lx, "u1", "fault_repair", "grid", T0, location={"feeder": "U1"})
    # Accept due 9:17 (dispatched 9:02 + 15 min): urged 9:17, :22, :27, :32, :37.
    timers = WorkOrderTimers(lx)
    for minute in (18, 23, 28, 33, 38):
        timers.tick(T0 + timedelta(minutes=minute))
    timers.close()
    q.fresh(lx)
    urgings = q.urging_list(lx, "grid")
    assert [(u["kind"], u["seq"]) for u in urgings][:2] == [("urging", 5), ("urging", 4)]
    assert {u["stage"] for u in urgings} == {"accept"}
    assert any(u["kind"] == "escalation" and u["department"] == "supervisor"
               for u in q.urging_list(lx))
    # Callback worklist per agent and team.
    for key, actor in (("c1", "1001"), ("c2", "1002")):
        cid = lx.commands.handle(m.OpenWorkOrder(type="complaint", summary="s", command_id=key,
                                                 occurred_at=T0, actor=actor)).aggregate_id
        lx.commands.handle(m.ResolveWorkOrder(work_order_id=cid, resolution="done",
                                              occurred_at=T0 + timedelta(hours=1)))
    q.fresh(lx)
    mine = q.callback_worklist(lx, agent="1001", now=T0 + timedelta(hours=2))
    assert len(mine) == 1 and mine[0]["callback_due"] == "2026-11-24T16:00:00.000000+00:00"
    assert not mine[0]["overdue"]
    team = q.callback_worklist(lx, team="callback", now=local(2026, 11, 25, 1))
    assert len(team) == 2 and all(r["overdue"] for r in team)
    assert q.get_work_order(lx, wo_id)["urgings"] == 5


def test_a_handover_lists_what_is_open_and_is_acknowledged_once(lx):
    call_id = lx.commands.handle(m.OfferCall(external_id="h-1", dialed_number="95598",
                                             occurred_at=T0)).aggregate_id
    overdue = _dispatched(lx, "h1", "consultation", "billing", local(2026, 11, 19, 9))  # due Fri
    open_ = _dispatched(lx, "h2", "complaint", "billing", T0)
    cb = open_order(lx, "complaint", T0, "h3").aggregate_id
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=cb, resolution="done",
                                          occurred_at=T0 + timedelta(minutes=30)))
    q.fresh(lx)
    at = T0 + timedelta(hours=8)
    snap = q.handover_snapshot(lx, now=at)
    number = {i: lx.app.repository.get(i).number for i in (overdue, open_, cb)}
    assert snap["open_calls"] == [str(call_id)]
    assert set(snap["open_orders"]) == {number[overdue], number[open_]}
    assert snap["overdue_orders"] == [number[overdue]]
    assert snap["pending_callbacks"] == [number[cb]]
    out = lx.commands.handle(wm.CreateHandover(from_shift="day-A", to_shift="night-B",
                                               notes="caller at 8 Pine Rd very upset",
                                               occurred_at=at, command_id="ho-1", **snap))
    lx.commands.handle(wm.AcknowledgeHandover(handover_id=out.aggregate_id, by="2001",
                                              occurred_at=at + timedelta(minutes=5)))
    with pytest.raises(InvariantViolation, match="already acknowledged"):
        lx.commands.handle(wm.AcknowledgeHandover(handover_id=out.aggregate_id, by="2002"))
    q.fresh(lx)
    # Later changes do not rewrite what was handed over.
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=overdue, resolution="answered",
                                          occurred_at=at + timedelta(hours=1)))
    q.fresh(lx)
    ho = q.get_handover(lx, out.aggregate_id)
    assert ho["snapshot"] == snap and ho["acknowledged_by"] == "2001"
    assert "upset" not in str(ho)  # notes are personal data: not in the read model
    with pytest.raises(InvalidValue, match="different shifts"):
        lx.commands.handle(wm.CreateHandover(from_shift="A", to_shift="A"))


def test_referrals_out_and_replies_show_in_the_order_and_the_inbox(lx):
    wo_id = lx.commands.handle(wm.ReceiveReferral(
        type="complaint", summary="street light out", partner="12345", reference="SZ-1",
        occurred_at=T0, command_id="ref-1")).aggregate_id
    lx.commands.handle(wm.ReferWorkOrder(work_order_id=wo_id, partner="119", reference="F-77",
                                         occurred_at=T0 + timedelta(minutes=5)))
    lx.commands.handle(wm.SendReply(work_order_id=wo_id, partner="12345",
                                    text="crew sent to 8 Pine Rd",
                                    occurred_at=T0 + timedelta(hours=2)))
    q.fresh(lx)
    view = q.get_work_order(lx, wo_id)
    assert (view["referral_partner"], view["referral_reference"]) == ("12345", "SZ-1")
    assert view["referrals_out"] == [{"partner": "119", "reference": "F-77",
                                      "at": "2026-11-23T01:05:00.000000+00:00"}]
    assert view["replies"] == [{"partner": "12345", "reference": "SZ-1",
                                "at": "2026-11-23T03:00:00.000000+00:00"}]
    assert "Pine" not in str(view)  # the reply's text is personal data
    (listed,) = q.inbox(lx, None, now=T0 + timedelta(minutes=30))["due_soon"]
    assert listed["referrals_out"] == view["referrals_out"]
    assert listed["replies"] == view["replies"]


def test_a_pending_callback_can_be_given_to_another_agent(lx):
    cid = lx.commands.handle(m.OpenWorkOrder(type="complaint", summary="s", command_id="ra",
                                             occurred_at=T0, actor="1001")).aggregate_id
    with pytest.raises(InvariantViolation, match="no callback task"):
        lx.commands.handle(wm.ReassignCallback(work_order_id=cid, assignee="1002"))
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=cid, resolution="done",
                                          occurred_at=T0 + timedelta(hours=1)))
    lx.commands.handle(wm.ReassignCallback(work_order_id=cid, assignee="1002",
                                           occurred_at=T0 + timedelta(hours=2)))
    q.fresh(lx)
    assert q.callback_worklist(lx, agent="1001") == []
    (mine,) = q.callback_worklist(lx, agent="1002")
    assert (mine["work_order_id"], mine["callback_team"]) == (str(cid), "callback")
    lx.commands.handle(wm.ReassignCallback(work_order_id=cid, assignee="3001", team="vip",
                                           occurred_at=T0 + timedelta(hours=3)))
    q.fresh(lx)
    assert [r["callback_assignee"] for r in q.callback_worklist(lx, team="vip")] == ["3001"]
    with pytest.raises(InvariantViolation, match="already assigned"):
        lx.commands.handle(wm.ReassignCallback(work_order_id=cid, assignee="3001"))
    with pytest.raises(InvalidValue, match="assignee"):
        lx.commands.handle(wm.ReassignCallback(work_order_id=cid, assignee=" "))
    (moved,) = events(lx, cid, "CallbackReassigned")[:1]
    assert (moved.task, moved.previous_assignee, moved.assignee) == (1, "1001", "1002")
