"""Events are forever: callback attempts recorded before callback tasks
existed (CallbackRecorded v1: result, satisfaction, reason) still load, as
attempts outside any task, and new attempts are stored as v2."""

from __future__ import annotations

import json

from eventsourcing.persistence import StoredEvent

from commands import messages as m
from domain.work_order import WorkOrder
from queries import work_orders as q
from tests.work_orders.conftest import local


def test_a_stored_v1_callback_is_upcast_on_read(lianxin):
    app, svc = lianxin.app, lianxin.commands
    wo_id = svc.handle(m.OpenWorkOrder(type="complaint", summary="s", command_id="up",
                                       occurred_at=local(2026, 11, 23, 9))).aggregate_id
    svc.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="done",
                                  occurred_at=local(2026, 11, 23, 10)))
    wo = app.repository.get(wo_id)
    event = WorkOrder.CallbackRecorded(
        originator_id=wo_id, originator_version=wo.version + 1, timestamp=local(2026, 11, 23, 11),
        result="reached", satisfaction=4, reason="", task=0, attempt=None, outcome="untracked",
        next_due_at=None, occurred_at=local(2026, 11, 23, 11), command_id=None, actor=None)
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    for added in ("task", "attempt", "outcome", "next_due_at"):
        del state[added]
    app.recorder.insert_events([StoredEvent(
        originator_id=stored.originator_id, originator_version=stored.originator_version,
        topic=stored.topic, state=json.dumps(state).encode())])

    reloaded = app.repository.get(wo_id)
    assert reloaded.callbacks[-1]["outcome"] == "untracked"
    assert reloaded.callbacks[-1]["satisfaction"] == 4
    assert reloaded.callback_task["state"] == "pending"  # not an attempt of the task
    q.fresh(lianxin)
    view = q.get_work_order(lianxin, wo_id)
    assert view["satisfaction"] == 4 and view["callback_attempts"][-1]["outcome"] == "untracked"

    svc.handle(m.RecordCallback(work_order_id=wo_id, result="reached", satisfaction=5,
                                occurred_at=local(2026, 11, 23, 12)))
    latest = app.recorder.select_events(wo_id, desc=True, limit=1)[0]
    state = json.loads(latest.state)
    assert latest.topic.endswith("WorkOrder.CallbackRecorded")
    assert state["class_version"] == 2 and state["task"] == 1 and state["outcome"] == "reached"
