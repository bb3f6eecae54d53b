"""Durable timers: urging repeated at its interval until the stage is done,
escalation after N due moments up a chain with a top, each due moment
accounted for exactly once across a real restart (a new build on the same
data, and a separate process), moments missed while down merged into one
urging, and no urging for the time a clock was paused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from commands import messages as m
from commands import work_order_messages as wm
from commands.timers import TimerLoop, WorkOrderTimers
from lianxin.settings import Settings
from lianxin.wiring import build
from tests.conftest import make_settings
from tests.work_orders.conftest import events, local, open_order, order

ROOT = Path(__file__).resolve().parents[2]


def _cli_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LIANXIN_HOME=str(settings.home), LIANXIN_STORE=settings.store,
               LIANXIN_PG_HOST=settings.pg_host, LIANXIN_PG_PORT=str(settings.pg_port),
               LIANXIN_PG_USER=settings.pg_user, LIANXIN_PG_DBNAME=settings.pg_dbname,
               LIANXIN_PSEUDONYM_KEY=settings.pseudonym_key)
    return env


def _cli_tick(settings: Settings, now: datetime) -> dict:
    proc = subprocess.run([sys.executable, "-c", "from lianxin.cli import main; main()",
                           "work-orders", "tick", "--now", now.isoformat()], cwd=ROOT,
                          env=_cli_env(settings), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_each_urging_fires_once_across_restarts_and_processes(settings):
    first = build(settings)
    try:
        wo_id = open_order(first, "complaint", local(2026, 11, 23, 10), "cmp-1").aggregate_id
        first.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department="billing",
                                                  occurred_at=local(2026, 11, 23, 10, 30)))
        # Resolution due at 24:00 on Mon Nov 30: urged 1 h before, then every 4 h.
        timers = WorkOrderTimers(first)
        assert timers.tick(local(2026, 11, 30, 22)).urged == 0
        assert timers.tick(local(2026, 11, 30, 23, 30)).urged == 1
        assert timers.tick(local(2026, 11, 30, 23, 30)).urged == 0
        timers.close()
    finally:
        first.close()

    second = build(settings)  # the restart: new application, same store and home
    try:
        timers = WorkOrderTimers(second)
        again = timers.tick(local(2026, 11, 30, 23, 30))
        assert (again.urged, again.duplicates, again.refused) == (0, 0, [])
        # Down from 23:30 to 7:30: the moments of 3:00 and 7:00 are one urging.
        later = timers.tick(local(2026, 12, 1, 7, 30))
        assert (later.urged, later.missed, later.escalated) == (1, 1, 1)
        timers.close()
    finally:
        second.close()

    # A separate process (the CLI) sees the same history: nothing to re-fire.
    assert _cli_tick(settings, local(2026, 12, 1, 7, 30))["urged"] == 0
    assert _cli_tick(settings, local(2026, 12, 1, 11, 0))["urged"] == 1

    third = build(settings)
    try:
        urged = events(third, wo_id, "Urged")
        assert [(e.seq, e.missed, e.first_due_at, e.due_at, e.department, e.stage)
                for e in urged] == [
            (1, 0, local(2026, 11, 30, 23), local(2026, 11, 30, 23), "billing", "resolve"),
            (3, 1, local(2026, 12, 1, 3), local(2026, 12, 1, 7), "billing", "resolve"),
            (4, 0, local(2026, 12, 1, 11), local(2026, 12, 1, 11), "billing", "resolve"),
        ]
        assert all(e.deadline == local(2026, 12, 1) for e in urged)
        (esc,) = events(third, wo_id, "Escalated")
        assert (esc.level, esc.to, esc.after_urgings) == (1, "supervisor", 3)
        # Handled: resolving stops the urging for good.
        third.commands.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="answered",
                                                 occurred_at=local(2026, 12, 1, 12)))
        timers = WorkOrderTimers(third)
        assert timers.tick(local(2026, 12, 1, 23)).urged == 0
        timers.close()
        assert len(events(third, wo_id, "Urged")) == 3
    finally:
        third.close()


def test_moments_missed_while_down_are_merged_into_one_urging(lx):
    opened = local(2026, 11, 23, 10)
    wo_id = open_order(lx, "fault_repair", opened, "f-1",
                       location={"transformer": "T-1"}).aggregate_id
    timers = WorkOrderTimers(lx)
    report = timers.tick(opened + timedelta(hours=1))  # nobody ticked for an hour
    # Dispatch due 10:05, urged then and every 5 minutes up to 11:00: 12
    # moments, recorded as one urging standing for all of them.
    assert (report.urged, report.missed, report.escalated) == (1, 11, 1)
    (urged,) = events(lx, wo_id, "Urged")
    assert (urged.seq, urged.missed) == (12, 11)
    assert (urged.first_due_at, urged.due_at) == (opened + timedelta(minutes=5),
                                                  opened + timedelta(hours=1))
    assert urged.department == "dispatch" and urged.occurred_at == opened + timedelta(hours=1)
    # 12 moments call for level 4; the chain's top is level 3: one escalation there.
    (esc,) = events(lx, wo_id, "Escalated")
    assert (esc.level, esc.to, esc.after_urgings) == (3, "center_director", 12)
    # Ticking on again urges at the interval, and nothing escalates past the top.
    report = timers.tick(opened + timedelta(hours=1, minutes=15))
    assert (report.urged, report.missed, report.escalated) == (1, 2, 0)
    assert order(lx, wo_id).escalation_level == 3
    # Dispatching ends the dispatch urging; the accept promise starts its own.
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department="grid-north",
                                           occurred_at=opened + timedelta(hours=1, minutes=16)))
    report = timers.tick(opened + timedelta(hours=1, minutes=35))
    accept = [e for e in events(lx, wo_id, "Urged") if e.stage == "accept"]
    assert report.urged == 1 and accept[0].department == "grid-north"
    assert (accept[0].seq, accept[0].due_at) == (1, opened + timedelta(hours=1, minutes=31))
    timers.close()


def test_a_day_without_a_tick_is_no_storm(lx):
    # The review's case: a fault order nobody ticked for a day used to fire
    # 289 urgings and 96 escalations, "to supervisor" at level 96.
    opened = local(2026, 11, 23, 10)
    wo_id = open_order(lx, "fault_repair", opened, "storm",
                       location={"feeder": "Q"}).aggregate_id
    timers = WorkOrderTimers(lx)
    report = timers.tick(opened + timedelta(days=1))
    # One urging per deadline in play: dispatch (288 moments) and resolve
    # (24 h promise, lead 0: its first moment is now).
    assert (report.urged, report.missed) == (2, 287)
    assert [(e.stage, e.seq) for e in events(lx, wo_id, "Urged")] == [
        ("dispatch", 288), ("resolve", 1)]
    assert [e.level for e in events(lx, wo_id, "Escalated")] == [3]
    assert timers.tick(opened + timedelta(days=1)).urged == 0
    timers.close()


def test_two_timers_racing_over_one_store_fire_each_moment_once(tmp_path):
    settings = make_settings(tmp_path / "home")
    a, b = build(settings), build(settings)
    try:
        opened = local(2026, 11, 23, 10)
        ids = [open_order(a, "fault_repair", opened, f"race-{i}",
                          location={"feeder": f"F{i}"}).aggregate_id for i in range(4)]
        ta, tb = WorkOrderTimers(a), WorkOrderTimers(b, tmp_path / "other-timers.sqlite")
        # Both tick through the same half hour, each at its own pace: 6 moments.
        nows = [opened + timedelta(minutes=k) for k in (6, 11, 12, 21, 26, 31)]

        def run(timers, steps):
            for now in steps:
                timers.tick(now)

        threads = [threading.Thread(target=run, args=(ta, nows)),
                   threading.Thread(target=run, args=(tb, nows[1::2]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for wo_id in ids:
            urged = events(a, wo_id, "Urged")
            # Every moment 1..6 accounted for by exactly one urging, in turn.
            covered = [k for e in urged for k in range(e.seq - e.missed, e.seq + 1)]
            assert covered == [1, 2, 3, 4, 5, 6]
            # Whichever timer got there first, each level is reached once and in
            # order; a tick that merged missed moments goes to the level they
            # reached in one escalation, so level 1 may be skipped.
            levels = [e.level for e in events(a, wo_id, "Escalated")]
            assert levels == sorted(set(levels)) and levels[-1] == 2
        ta.close()
        tb.close()
    finally:
        a.close()
        b.close()


def test_a_paused_clock_is_not_urged_and_urging_carries_on_after_the_resume(lx):
    opened = local(2026, 11, 23, 10)
    wo_id = open_order(lx, "fault_repair", opened, "pz", location={"address": "2 Oak"}).aggregate_id
    timers = WorkOrderTimers(lx)
    assert timers.tick(opened + timedelta(minutes=6)).urged == 1  # the 10:05 moment
    lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="customer not home",
                                     occurred_at=opened + timedelta(minutes=7)))
    assert timers.tick(opened + timedelta(hours=2)).urged == 0
    lx.commands.handle(wm.ResumeClock(work_order_id=wo_id,
                                      occurred_at=opened + timedelta(hours=2)))
    # The dispatch deadline was already missed when paused: it stays missed.
    wo = order(lx, wo_id)
    assert wo.deadlines["dispatch"] == opened + timedelta(minutes=5)
    # The 23 moments from 10:10 to 12:00 fell inside the pause: none is due,
    # not even merged into one. Urging carries on at the next step after
    # the resume, as the second urging of the deadline.
    report = timers.tick(opened + timedelta(hours=2))
    assert (report.urged, report.missed) == (0, 0)
    report = timers.tick(opened + timedelta(hours=2, minutes=5))
    assert (report.urged, report.missed, report.escalated) == (1, 0, 0)
    last = events(lx, wo_id, "Urged")[-1]
    assert (last.stage, last.seq, last.due_at) == ("dispatch", 2,
                                                   opened + timedelta(hours=2, minutes=5))
    # The 24 h resolution promise was not yet due: it moved by the pause.
    assert wo.deadlines["resolve"] == opened + timedelta(hours=24, minutes=113)
    timers.close()


def test_moments_missed_before_a_pause_are_still_due_but_not_those_inside_it(lx):
    # The timer was down across the pause: 10:05 and 10:10 fell due before
    # the order was paused at 10:12, 10:15..11:00 inside the pause (10:12 to
    # 11:00), 11:05 after it.
    opened = local(2026, 11, 23, 10)
    wo_id = open_order(lx, "fault_repair", opened, "pz2", location={"address": "3 Oak"}).aggregate_id
    lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="customer not home",
                                     occurred_at=opened + timedelta(minutes=12)))
    lx.commands.handle(wm.ResumeClock(work_order_id=wo_id,
                                      occurred_at=opened + timedelta(hours=1)))
    timers = WorkOrderTimers(lx)
    report = timers.tick(opened + timedelta(hours=1, minutes=6))
    assert (report.urged, report.missed) == (1, 2)
    (urged,) = events(lx, wo_id, "Urged")
    assert (urged.seq, urged.first_due_at, urged.due_at) == (
        3, opened + timedelta(minutes=5), opened + timedelta(hours=1, minutes=5))
    timers.close()


def test_serve_runs_the_timer_loop(lx):
    import lianxin.http  # noqa: F401 - registers the work-order services
    from commands.timers import timer_service
    from lianxin.wiring import SERVICE_FACTORIES

    assert timer_service in SERVICE_FACTORIES
    opened = datetime.now(timezone.utc) - timedelta(minutes=12)
    wo_id = open_order(lx, "fault_repair", opened, "live", location={"feeder": "L1"}).aggregate_id
    loop = TimerLoop(lx, interval_s=0.05)
    loop.start()
    try:
        deadline = datetime.now(timezone.utc) + timedelta(seconds=10)
        while order(lx, wo_id).urgings.get("dispatch", 0) < 2:
            assert datetime.now(timezone.utc) < deadline, "the loop did not urge"
            threading.Event().wait(0.05)
    finally:
        loop.close()
    assert order(lx, wo_id).urgings["dispatch"] == 2  # 5 and 10 minutes after opening
