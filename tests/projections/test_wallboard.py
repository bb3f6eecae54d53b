"""Wallboard figures, worked out by hand from explicit source times."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from commands import messages as m
from lianxin.wiring import build
from projections.wallboard import wallboard_as_of
from queries.wallboard import wallboard
from tests.conftest import make_settings
from tests.projections.conftest import all_events
from tests.projections.scenario import answered_by, at, offer, queued, staff


def drive_morning(svc) -> None:
    staff(svc, "1001", "A")
    staff(svc, "1002", "A")
    staff(svc, "1003", "B", ready=False)
    svc.handle(m.RegisterAgent(employee_no="1004", name="Off Duty", team="B",
                               occurred_at=at(0)))
    staff(svc, "1005", "B")
    a = queued(svc, "a", "power", 0)
    b = queued(svc, "b", "power", 0)
    c = queued(svc, "c", "power", 5)
    answered_by(svc, a, "1001", alert=10, answer=15)  # waited 15 s
    answered_by(svc, b, "1002", alert=25, answer=30)  # waited 30 s
    svc.handle(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(40)))  # abandoned
    queued(svc, "d", "power", 50)  # still waiting
    e = offer(svc, "e", 60)
    svc.handle(m.EnterIvr(call_id=e, menu="main", occurred_at=at(61)))
    svc.handle(m.EndCall(call_id=e, hung_up_by="caller", occurred_at=at(70)))  # IVR: no queue
    f = queued(svc, "f", "billing", 80)
    svc.handle(m.AlertAgent(call_id=f, employee_no="1005", occurred_at=at(85)))
    svc.handle(m.ReportRingNoAnswer(call_id=f, occurred_at=at(100)))  # back to waiting
    g = queued(svc, "g", "power", 90)
    svc.handle(m.EndCall(call_id=g, hung_up_by="system", cause="queue timeout",
                         occurred_at=at(95)))  # exited
    svc.handle(m.EndCall(call_id=a, hung_up_by="agent", occurred_at=at(100)))


def test_per_queue_figures_and_agents_by_state(lianxin, rm):
    drive_morning(lianxin.commands)
    rm.run_once()
    board = wallboard(lianxin, at=at(200))
    queues = {q["queue"]: q for q in board["queues"]}
    assert board["day"] == "2026-11-23" and board["service_level_threshold_s"] == 20
    power = queues["power"]
    assert (power["offered"], power["answered"], power["answered_within_threshold"],
            power["abandoned"], power["exited"], power["waiting"]) == (5, 2, 1, 1, 1, 1)
    assert power["longest_wait_s"] == 150.0  # d waits since t=50
    assert power["oldest_waiting_since"] == "2026-11-23T02:00:50.000000+00:00"
    assert power["service_level"] == round(1 / 3, 4)
    billing = queues["billing"]
    # Ring-no-answer keeps the caller waiting in the same queue, offered once.
    assert (billing["offered"], billing["waiting"], billing["longest_wait_s"]) == (1, 1, 120.0)
    assert billing["service_level"] is None
    totals = board["totals"]
    assert (totals["offered"], totals["waiting"], totals["longest_wait_s"]) == (6, 2, 150.0)
    assert board["agents"]["by_state"] == {"logged_out": 1, "not_ready": 2, "ready": 0,
                                           "ringing": 0, "on_call": 1, "wrap_up": 1}
    assert board["agents"]["by_team"]["A"]["on_call"] == 1
    assert board["agents"]["by_team"]["B"] == {"logged_out": 1, "not_ready": 2, "ready": 0,
                                               "ringing": 0, "on_call": 0, "wrap_up": 0}
    # Who is waiting (oldest first), and each agent's state with its reason and since when.
    assert [(w["queue"], w["since"], w["wait_s"]) for w in board["waiting_calls"]] == [
        ("power", "2026-11-23T02:00:50.000000+00:00", 150.0),
        ("billing", "2026-11-23T02:01:20.000000+00:00", 120.0)]
    assert [(a["employee_no"], a["team"], a["state"], a["reason"], a["since"][11:19])
            for a in board["agents"]["list"]] == [
        ("1001", "A", "wrap_up", None, "02:01:40"),  # released when a ended at 100
        ("1002", "A", "on_call", None, "02:00:30"),
        ("1003", "B", "not_ready", "login", "02:00:00"),
        ("1004", "B", "logged_out", None, "02:00:00"),
        ("1005", "B", "not_ready", "ring_no_answer", "02:01:40")]


def test_threshold_is_a_query_parameter(lianxin, rm):
    drive_morning(lianxin.commands)
    rm.run_once()
    power = {q["queue"]: q for q in wallboard(lianxin, at=at(200),
                                              threshold_s=30)["queues"]}["power"]
    assert power["answered_within_threshold"] == 2
    assert power["service_level"] == round(2 / 3, 4)


def test_today_is_the_centers_local_day(tmp_path):
    # 23:59:50 in Shanghai on the 23rd; answered at 00:00:05 on the 24th.
    queued_at = datetime(2026, 11, 23, 15, 59, 50, tzinfo=timezone.utc)
    answered_at = datetime(2026, 11, 23, 16, 0, 5, tzinfo=timezone.utc)
    for tz, days in (("Asia/Shanghai", ("2026-11-23", "2026-11-24")),
                     ("UTC", ("2026-11-23", "2026-11-23"))):
        settings = dataclasses.replace(make_settings(tmp_path / tz.replace("/", "_")),
                                       timezone=tz)
        lx = build(settings)
        try:
            svc = lx.commands
            staff(svc, "1001")
            call = svc.handle(m.OfferCall(external_id="midnight", dialed_number="95598",
                                          occurred_at=queued_at)).aggregate_id
            svc.handle(m.QueueCall(call_id=call, queue="power", occurred_at=queued_at))
            svc.handle(m.AlertAgent(call_id=call, employee_no="1001", occurred_at=answered_at))
            svc.handle(m.AnswerCall(call_id=call, occurred_at=answered_at))
            lx.read_models().run_once()
            before = wallboard(lx, at=datetime(2026, 11, 23, 15, 59, 59, tzinfo=timezone.utc))
            after = wallboard(lx, at=datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc))
            assert (before["day"], after["day"]) == days
            if days[0] != days[1]:
                assert (before["totals"]["offered"], before["totals"]["answered"]) == (1, 0)
                assert (after["totals"]["offered"], after["totals"]["answered"]) == (0, 1)
                assert after["totals"]["answered_within_threshold"] == 1  # 15 s
            else:
                assert (after["totals"]["offered"], after["totals"]["answered"]) == (1, 1)
        finally:
            lx.close()


def test_transfer_to_a_queue_offers_the_call_there(lianxin, rm):
    svc = lianxin.commands
    staff(svc, "1001")
    call = queued(svc, "t", "power", 0)
    answered_by(svc, call, "1001", alert=5, answer=6)
    svc.handle(m.TransferCall(call_id=call, kind="blind", target_type="queue", target="repair",
                              occurred_at=at(60)))
    rm.run_once()
    queues = {q["queue"]: q for q in wallboard(lianxin, at=at(70))["queues"]}
    assert (queues["power"]["offered"], queues["power"]["answered"]) == (1, 1)
    assert (queues["repair"]["offered"], queues["repair"]["waiting"],
            queues["repair"]["longest_wait_s"]) == (1, 1, 10.0)


def test_the_pure_fold_gives_the_live_wallboard(lianxin, rm):
    """The "as of t" reconstruction and the live projection share one fold."""
    drive_morning(lianxin.commands)
    rm.run_once()
    for threshold in (20, 30):
        live = wallboard(lianxin, at=at(200), threshold_s=threshold)
        rebuilt = wallboard_as_of(all_events(lianxin), at=at(200),
                                  timezone="Asia/Shanghai", threshold_s=threshold)
        assert rebuilt == live
