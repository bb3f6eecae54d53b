"""Events are forever: deadlines and urgings stored before the cadence was
stamped and before missed moments were merged (DeadlinesSet v1, Urged v1,
CallbackTaskScheduled v1) still load; such an order is urged by the current
policy and carries on from the urgings it has."""

from __future__ import annotations

import json
from datetime import timedelta

from eventsourcing.persistence import StoredEvent

from commands import messages as m
from commands.timers import WorkOrderTimers
from domain.work_order import WorkOrder
from queries import work_orders as q
from tests.work_orders.conftest import events, local

T0 = local(2026, 11, 23, 10)


def _store_as_v1(app, event, added: tuple[str, ...]) -> None:
    """Write ``event`` exactly as v1 of its class stored it."""
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    for name in added:
        del state[name]
    app.recorder.insert_events([StoredEvent(
        originator_id=stored.originator_id, originator_version=stored.originator_version,
        topic=stored.topic, state=json.dumps(state).encode())])


def _common(version: int, at) -> dict:
    return {"originator_version": version, "timestamp": at, "occurred_at": at,
            "command_id": None, "actor": None}


def test_v1_deadlines_and_urgings_load_and_are_urged_by_the_current_policy(lianxin):
    app = lianxin.app
    wo = WorkOrder.open(type="fault_repair", category="", channel="phone", summary="dark",
                        occurred_at=T0, location={"feeder": "OLD"}, key="v1-order")
    app.save(wo)
    dispatch_due = T0 + timedelta(minutes=5)
    _store_as_v1(app, WorkOrder.DeadlinesSet(
        originator_id=wo.id, deadlines={"dispatch": dispatch_due,
                                        "resolve": T0 + timedelta(hours=24)},
        units={"dispatch": "minutes", "resolve": "hours"}, reason="open",
        policy_version="95598-2025.4", urging={}, calendar_incomplete=False,
        **_common(2, T0)), ("urging", "calendar_incomplete"))
    _store_as_v1(app, WorkOrder.Urged(
        originator_id=wo.id, stage="dispatch", seq=1, deadline=dispatch_due, due_at=dispatch_due,
        department="dispatch", missed=0, first_due_at=dispatch_due,
        **_common(3, dispatch_due)), ("missed", "first_due_at"))

    reloaded = app.repository.get(wo.id)
    assert reloaded.cadence == {} and reloaded.urgings["dispatch"] == 1
    assert reloaded.last_urge_due["dispatch"] == dispatch_due
    (old,) = events(lianxin, wo.id, "Urged")
    assert (old.missed, old.first_due_at, old.schema_version) == (0, dispatch_due, 2)
    assert events(lianxin, wo.id, "DeadlinesSet")[0].calendar_incomplete is False

    # No cadence stamped: the current policy's (fault: every 5 minutes, lead 0).
    timers = WorkOrderTimers(lianxin)
    report = timers.tick(T0 + timedelta(minutes=11))
    timers.close()
    assert (report.urged, report.missed) == (1, 0)
    new = events(lianxin, wo.id, "Urged")[-1]
    assert (new.seq, new.due_at) == (2, T0 + timedelta(minutes=10))
    latest = app.recorder.select_events(wo.id, desc=True, limit=1)[0]
    state = json.loads(latest.state)
    assert latest.topic.endswith("WorkOrder.Urged")
    assert state["class_version"] == 2 and state["missed"] == 0
    q.fresh(lianxin)
    view = q.get_work_order(lianxin, wo.id)
    assert [(u["seq"], u["missed"]) for u in view["urging_history"]] == [(1, 0), (2, 0)]


def test_a_v1_callback_task_loads_unflagged(lianxin):
    app, svc = lianxin.app, lianxin.commands
    wo_id = svc.handle(m.OpenWorkOrder(type="complaint", summary="s", command_id="v1-cb",
                                       occurred_at=T0)).aggregate_id
    svc.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="done",
                                  occurred_at=T0 + timedelta(hours=1)))
    svc.handle(m.ReopenWorkOrder(work_order_id=wo_id, reason="again",
                                 occurred_at=T0 + timedelta(hours=2)))
    svc.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="done again",
                                  occurred_at=T0 + timedelta(hours=3)))
    wo = app.repository.get(wo_id)
    at = T0 + timedelta(hours=4)
    _store_as_v1(app, WorkOrder.CallbackTaskScheduled(
        originator_id=wo_id, task=3, due_at=local(2026, 11, 25), give_up_at=local(2026, 11, 27),
        retry_after="1 working_days", max_attempts=3, assignee="", team="callback",
        policy_version="95598-2025.4", calendar_incomplete=False,
        **_common(wo.version + 1, at)), ("calendar_incomplete",))
    assert app.repository.get(wo_id).callback_task["task"] == 3
    tasks = events(lianxin, wo_id, "CallbackTaskScheduled")
    assert [(t.task, t.calendar_incomplete) for t in tasks] == [(1, False), (2, False),
                                                                (3, False)]
