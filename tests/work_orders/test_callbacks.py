"""Callback visits (回访): a task due within 1 working day of resolution;
each attempt records time, result and reason; failed attempts are retried
and given up after 3 working days; a reached customer may reopen the order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands import messages as m
from commands import work_order_messages as wm
from commands.timers import WorkOrderTimers
from domain.errors import InvalidValue, InvariantViolation
from domain.work_order import WorkOrderStatus
from lianxin.wiring import build
from tests.work_orders.conftest import events, local, order, settings_with

# Resolved on Friday 2026-09-18 at 17:00. Working days after: Sun 20 (调休),
# Mon 21, Tue 22. Due by the end of Sun 20; given up at the end of Tue 22.
RESOLVED = local(2026, 9, 18, 17)


def _resolved(lx, key: str, type: str = "complaint", actor: str = "1001"):
    wo_id = lx.commands.handle(m.OpenWorkOrder(type=type, summary="bill too high",
                                               occurred_at=RESOLVED - timedelta(days=2),
                                               command_id=key, actor=actor)).aggregate_id
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="refund",
                                          occurred_at=RESOLVED))
    return wo_id


def _attempt(lx, wo_id, result, at, **kw):
    return lx.commands.handle(wm.RecordCallbackAttempt(work_order_id=wo_id, result=result,
                                                       occurred_at=at, **kw))


def test_failed_attempts_are_retried_then_given_up_after_three_working_days(lx):
    wo_id = _resolved(lx, "cb-1")
    task = order(lx, wo_id).callback_task
    assert (task["due_at"], task["give_up_at"]) == (local(2026, 9, 21), local(2026, 9, 23))
    assert (task["assignee"], task["team"]) == ("1001", "callback")
    _attempt(lx, wo_id, "no_answer", local(2026, 9, 20, 10), reason="rang out")
    task = order(lx, wo_id).callback_task
    assert task["state"] == "pending" and task["next_due_at"] == local(2026, 9, 22)
    _attempt(lx, wo_id, "busy", local(2026, 9, 21, 15), reason="line busy")
    timers = WorkOrderTimers(lx)
    assert timers.tick(local(2026, 9, 22, 23, 59)).callbacks_given_up == 0
    report = timers.tick(local(2026, 9, 23, 0, 1))
    assert report.callbacks_given_up == 1
    assert timers.tick(local(2026, 9, 30)).callbacks_given_up == 0  # once only
    timers.close()
    assert order(lx, wo_id).callback_task["state"] == "gave_up"
    attempts = events(lx, wo_id, "CallbackRecorded")
    assert [(e.attempt, e.result, e.reason, e.outcome, e.occurred_at) for e in attempts] == [
        (1, "no_answer", "rang out", "retry", local(2026, 9, 20, 10)),
        (2, "busy", "line busy", "retry", local(2026, 9, 21, 15)),
    ]
    (gave_up,) = events(lx, wo_id, "CallbackGaveUp")
    assert gave_up.give_up_at == local(2026, 9, 23) and gave_up.attempts == 2
    with pytest.raises(InvariantViolation, match="gave_up"):
        _attempt(lx, wo_id, "reached", local(2026, 9, 23, 9), satisfaction=5)


def test_the_third_failed_attempt_ends_the_task(lx):
    wo_id = _resolved(lx, "cb-3")
    for i, at in enumerate((local(2026, 9, 19, 9), local(2026, 9, 20, 9), local(2026, 9, 21, 9))):
        _attempt(lx, wo_id, "no_answer", at, reason=f"try {i + 1}")
    assert order(lx, wo_id).callback_task["state"] == "gave_up"
    assert events(lx, wo_id, "CallbackRecorded")[-1].outcome == "gave_up"


def test_a_reached_customer_rates_the_service_and_may_reopen_it(lx):
    wo_id = _resolved(lx, "cb-r")
    with pytest.raises(InvalidValue, match="reopen"):
        _attempt(lx, wo_id, "no_answer", local(2026, 9, 20, 9), reopen=True)
    with pytest.raises(InvalidValue, match="satisfaction"):
        _attempt(lx, wo_id, "busy", local(2026, 9, 20, 9), satisfaction=3)
    _attempt(lx, wo_id, "reached", local(2026, 9, 21, 10), satisfaction=2, reopen=True,
             reopen_reason="refund never arrived")
    wo = order(lx, wo_id)
    assert wo.status == WorkOrderStatus.OPEN and wo.reopen_count == 1
    assert wo.callback_task["state"] == "reached"
    # A reopened order is a new promise, counted from the reopening.
    # 5 working days: 22, 23, 24, (中秋 25..27), 28, 29: due at 24:00 on the 29th.
    assert wo.deadlines["resolve"] == local(2026, 9, 30)
    assert events(lx, wo_id, "DeadlinesSet")[-1].reason == "reopen"
    # Resolving again schedules a second callback task.
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="refund paid",
                                          occurred_at=local(2026, 9, 24, 9)))
    assert order(lx, wo_id).callback_task["task"] == 2


def test_refusal_ends_the_task_and_the_core_command_follows_the_same_rules(lx):
    wo_id = _resolved(lx, "cb-x")
    _attempt(lx, wo_id, "refused", local(2026, 9, 19, 9), reason="does not want calls")
    assert order(lx, wo_id).callback_task["state"] == "refused"
    other = _resolved(lx, "cb-y")
    lx.commands.handle(m.RecordCallback(work_order_id=other, result="no_answer",
                                        occurred_at=local(2026, 9, 19, 9)))
    task = order(lx, other).callback_task
    assert task["state"] == "pending" and task["next_due_at"] == local(2026, 9, 21)


def test_types_without_callbacks_in_the_policy_get_no_task(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('version = "v-cb"\n[callback]\ntypes = ["complaint"]\n')
    lx = build(settings_with(tmp_path / "home", LIANXIN_WORK_ORDER_POLICY=str(policy)))
    try:
        consult = _resolved(lx, "n1", type="consultation")
        complaint = _resolved(lx, "n2", type="complaint")
        assert order(lx, consult).callback_task is None
        assert order(lx, complaint).callback_task["task"] == 1
        assert events(lx, complaint, "CallbackTaskScheduled")[0].policy_version == "v-cb"
    finally:
        lx.close()
