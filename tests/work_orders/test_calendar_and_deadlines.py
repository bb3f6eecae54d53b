"""Deadlines moved across weekends, public holidays and the swapped working
days (调休) of the real 2025/2026 State Council calendars, for every rule of
the default policy; pausing a clock; policy changes not rewriting promises."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from commands import messages as m
from commands import work_order_messages as wm
from commands.work_order_rules import load_rules
from domain.calendar import WorkingCalendar
from domain.deadlines import Duration, Policy
from domain.errors import InvalidValue
from lianxin.wiring import build
from tests.work_orders.conftest import local, open_order, order, settings_with

RULES = load_rules()
CAL = RULES.calendar


@pytest.mark.parametrize("day, working", [
    (date(2025, 1, 1), False),    # 元旦
    (date(2025, 1, 26), True),    # Sunday worked before 春节
    (date(2025, 2, 4), False),    # last day of 春节 2025
    (date(2025, 2, 8), True),     # Saturday worked after 春节
    (date(2025, 4, 27), True),    # Sunday worked before 劳动节
    (date(2025, 10, 8), False),   # 国庆+中秋 2025, 8 days
    (date(2025, 10, 11), True),   # Saturday worked
    (date(2026, 1, 2), False),    # 元旦 2026 (a Friday)
    (date(2026, 1, 4), True),     # Sunday worked
    (date(2026, 2, 14), True),    # Saturday worked before 春节 2026
    (date(2026, 2, 23), False),   # Monday, last day of 春节 2026
    (date(2026, 2, 28), True),    # Saturday worked
    (date(2026, 5, 9), True),     # Saturday worked after 劳动节
    (date(2026, 9, 20), True),    # Sunday worked before 国庆
    (date(2026, 10, 10), True),   # Saturday worked after 国庆
    (date(2026, 11, 21), False),  # an ordinary Saturday
    (date(2026, 11, 23), True),   # an ordinary Monday
])
def test_the_calendar_knows_holidays_and_swapped_working_days(day, working):
    assert CAL.is_working_day(day) is working


@pytest.mark.parametrize("opened, expected_end_day", [
    # Complaint, 5 working days, ends at 24:00 of the 5th working day after.
    (local(2026, 11, 23, 10), date(2026, 11, 30)),  # Mon -> next Mon (weekend skipped)
    (local(2026, 11, 21, 10), date(2026, 11, 27)),  # opened on a Saturday: Mon..Fri
    (local(2026, 9, 30, 10), date(2026, 10, 13)),   # 国庆: Oct 8, 9, 10 (Sat worked), 12, 13
    (local(2026, 2, 12, 9), date(2026, 2, 26)),     # 13, 14 (Sat worked), 春节, 24, 25, 26
    (local(2025, 1, 24, 9), date(2025, 2, 7)),      # 26 (Sun worked), 27, 春节, 5, 6, 7
])
def test_complaint_deadline_is_five_working_days(lx, opened, expected_end_day):
    out = open_order(lx, "complaint", opened, key=f"c-{opened.isoformat()}")
    wo = order(lx, out.aggregate_id)
    assert wo.deadlines["resolve"] == local(*(expected_end_day + timedelta(days=1)).timetuple()[:3])
    assert wo.deadlines["dispatch"] == opened + timedelta(hours=1)
    assert wo.policy_version == RULES.policy.version


def test_report_gets_ten_working_days_and_consultation_the_next_working_day(lx):
    # 举报 on Fri 2026-09-18. Working days after it: Sun 20 (worked), 21, 22, 23,
    # 24, (中秋 25..27), 28, 29, 30, (国庆 Oct 1..7), Oct 8, Oct 9: the 10th is Oct 9.
    rep = order(lx, open_order(lx, "report", local(2026, 9, 18, 15), "r1").aggregate_id)
    assert rep.deadlines["resolve"] == local(2026, 10, 10)
    # A consultation left open on the eve of 劳动节 is due at the end of the
    # next working day: Wed Apr 30 2025 -> Tue May 6 (May 1..5 closed).
    con = order(lx, open_order(lx, "consultation", local(2025, 4, 30, 17), "q1").aggregate_id)
    assert con.deadlines == {"resolve": local(2025, 5, 7)}
    # On a Saturday worked (调休) the next working day is Monday.
    con2 = order(lx, open_order(lx, "consultation", local(2026, 2, 28, 11), "q2").aggregate_id)
    assert con2.deadlines["resolve"] == local(2026, 3, 3)


def test_fault_repair_deadlines_are_in_minutes_and_hours_whatever_the_day(lx):
    opened = local(2026, 10, 1, 23, 58)  # a public holiday, just before midnight
    wo = order(lx, open_order(lx, "fault_repair", opened, "f1",
                              location={"transformer": "T-9"}).aggregate_id)
    assert wo.deadlines == {"dispatch": opened + timedelta(minutes=5),
                            "resolve": opened + timedelta(hours=24)}
    dispatched = opened + timedelta(minutes=4)
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo.id, department="grid-north",
                                           occurred_at=dispatched))
    assert order(lx, wo.id).deadlines["accept"] == dispatched + timedelta(minutes=15)
    urgent = order(lx, open_order(lx, "fault_repair", opened, "f2", priority="urgent",
                                  location={"transformer": "T-10"}).aggregate_id)
    assert urgent.deadlines["resolve"] == opened + timedelta(hours=4)


def test_callback_due_within_one_working_day_and_given_up_after_three(lx):
    # Resolved Thu 2026-09-24 16:00; Fri 25 .. Sun 27 中秋, Mon 28 is the 1st
    # working day, Tue 29 the 2nd, Wed 30 the 3rd.
    wo_id = open_order(lx, "complaint", local(2026, 9, 22, 9), "cb").aggregate_id
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="answered",
                                          occurred_at=local(2026, 9, 24, 16)))
    task = order(lx, wo_id).callback_task
    assert task["due_at"] == local(2026, 9, 29)
    assert task["give_up_at"] == local(2026, 10, 1)


def test_a_paused_working_day_clock_keeps_the_working_time_left(lx):
    # Complaint opened Mon 2026-11-23 10:00: due end of Mon 30th. Paused from
    # Wed 25th 10:00 (5 d 14 h of working time left) to Mon 30th 10:00: the
    # weekend in between does not count, so 3 working days are added back.
    wo_id = open_order(lx, "complaint", local(2026, 11, 23, 10), "p").aggregate_id
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department="billing",
                                           occurred_at=local(2026, 11, 23, 10, 30)))
    lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="waiting for the bill copy",
                                     occurred_at=local(2026, 11, 25, 10)))
    lx.commands.handle(wm.ResumeClock(work_order_id=wo_id, occurred_at=local(2026, 11, 30, 10)))
    wo = order(lx, wo_id)
    assert wo.deadlines["resolve"] == local(2026, 12, 4)
    assert not wo.is_paused and wo.paused_seconds == 5 * 86400
    # A calendar-time clock (the dispatch stage of a fault) moves by the pause itself.
    f_id = open_order(lx, "fault_repair", local(2026, 11, 28, 8), "pf",
                      location={"address": "1 Elm St"}).aggregate_id
    lx.commands.handle(wm.PauseClock(work_order_id=f_id, reason="no access",
                                     occurred_at=local(2026, 11, 28, 8, 2)))
    lx.commands.handle(wm.ResumeClock(work_order_id=f_id, occurred_at=local(2026, 11, 28, 9, 2)))
    assert order(lx, f_id).deadlines["dispatch"] == local(2026, 11, 28, 9, 5)


def test_pause_and_resume_are_refused_out_of_turn(lx):
    wo_id = open_order(lx, "complaint", local(2026, 11, 23, 10), "pr").aggregate_id
    with pytest.raises(Exception, match="not paused"):
        lx.commands.handle(wm.ResumeClock(work_order_id=wo_id))
    lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="r",
                                     occurred_at=local(2026, 11, 23, 11)))
    with pytest.raises(Exception, match="already paused"):
        lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="again",
                                         occurred_at=local(2026, 11, 23, 12)))


POLICY_V2 = """
version = "center-b-2027"
[[rule]]
type = "complaint"
resolve = "2 days"
"""

CALENDAR_EXTENDED = """
weekend = ["saturday", "sunday"]
[years.2026]
holidays = ["2026-11-24"]
workdays = ["2026-11-28"]
"""


def test_a_new_policy_never_rewrites_an_old_promise(tmp_path: Path):
    home = tmp_path / "home"
    first = build(settings_with(home))
    try:
        old = open_order(first, "complaint", local(2026, 11, 23, 10), "old").aggregate_id
    finally:
        first.close()
    (tmp_path / "policy.toml").write_text(POLICY_V2)
    second = build(settings_with(home, LIANXIN_WORK_ORDER_POLICY=str(tmp_path / "policy.toml")))
    try:
        new = open_order(second, "complaint", local(2026, 11, 23, 10), "new").aggregate_id
        assert order(second, old).deadlines["resolve"] == local(2026, 12, 1)
        assert order(second, old).policy_version == "95598-2026.1"
        assert order(second, new).deadlines == {"resolve": local(2026, 11, 25, 10)}
        assert order(second, new).policy_version == "center-b-2027"
    finally:
        second.close()


def test_an_administrator_extends_the_calendar_with_a_data_file(tmp_path: Path):
    (tmp_path / "cal.toml").write_text(CALENDAR_EXTENDED)
    lx = build(settings_with(tmp_path / "home", LIANXIN_CALENDAR=str(tmp_path / "cal.toml")))
    try:
        # Mon 23rd: 24th is a local holiday, 25, 26, 27, 28 (Sat worked), 30.
        wo = order(lx, open_order(lx, "complaint", local(2026, 11, 23, 10), "x").aggregate_id)
        assert wo.deadlines["resolve"] == local(2026, 12, 1)
        cal = lx.commands.bus.ctx.work_order_rules.calendar
        assert not cal.is_working_day(date(2026, 11, 24)) and cal.is_working_day(date(2026, 11, 28))
        assert cal.is_working_day(date(2026, 10, 8))  # not listed: only weekends apply
    finally:
        lx.close()


def test_a_broken_configuration_is_refused_at_start_naming_the_file(tmp_path: Path):
    bad = tmp_path / "policy.toml"
    bad.write_text('version = "x"\n[[rule]]\ntype = "complaint"\nresolve = "5 fortnights"\n')
    with pytest.raises(InvalidValue, match=r"policy.toml.*rule\[0\].resolve"):
        build(settings_with(tmp_path / "home", LIANXIN_WORK_ORDER_POLICY=str(bad)))
    cal = tmp_path / "cal.toml"
    cal.write_text('[years.2026]\nholidays = ["2026-13-01"]\n')
    with pytest.raises(InvalidValue, match=r"cal.toml.*2026-13-01"):
        build(settings_with(tmp_path / "h2", LIANXIN_CALENDAR=str(cal)))


def test_durations_parse_every_unit_and_refuse_nonsense():
    assert Duration.parse("5 minutes") == Duration(5, "minutes")
    assert Duration.parse("2h") == Duration(2, "hours")
    assert Duration.parse("3 days") == Duration(3, "days")
    assert Duration.parse("1 working_day") == Duration(1, "working_days")
    for text in ("soon", "-1 days", "5 weeks", ""):
        with pytest.raises(InvalidValue):
            Duration.parse(text)
    with pytest.raises(InvalidValue, match="version"):
        Policy.from_mapping({"rule": []})
    with pytest.raises(InvalidValue, match="weekend"):
        WorkingCalendar.from_mapping({"weekend": ["caturday"]})


def test_a_deadline_set_during_a_pause_counts_from_when_it_was_set(lx):
    # Paused at 10:01, dispatched at 13:00 during the pause (accept due 13:15),
    # resumed at 13:01: the accept clock never ran, so 15 minutes are left,
    # not the 3 h 14 min between the pause and that deadline.
    t0 = local(2026, 11, 23, 10)
    wo_id = open_order(lx, "fault_repair", t0, "pd", location={"feeder": "Z"}).aggregate_id
    lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="r",
                                     occurred_at=t0 + timedelta(minutes=1)))
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department="grid",
                                           occurred_at=t0 + timedelta(hours=3)))
    assert order(lx, wo_id).deadlines["accept"] == t0 + timedelta(hours=3, minutes=15)
    lx.commands.handle(wm.ResumeClock(work_order_id=wo_id,
                                      occurred_at=t0 + timedelta(hours=3, minutes=1)))
    wo = order(lx, wo_id)
    assert wo.deadlines["accept"] == t0 + timedelta(hours=3, minutes=16)
    # The resolve promise, set before the pause, keeps the time it had then.
    assert wo.deadlines["resolve"] == t0 + timedelta(hours=24 + 3)


def test_resolving_a_paused_order_ends_the_pause_so_a_reopened_order_runs_again(lx):
    from commands.timers import WorkOrderTimers
    from queries import work_orders as q
    from tests.work_orders.conftest import events

    t0 = local(2026, 11, 23, 10)
    wo_id = open_order(lx, "fault_repair", t0, "pr2", location={"feeder": "R"}).aggregate_id
    lx.commands.handle(m.DispatchWorkOrder(work_order_id=wo_id, department="grid",
                                           occurred_at=t0 + timedelta(minutes=2)))
    lx.commands.handle(wm.PauseClock(work_order_id=wo_id, reason="no access",
                                     occurred_at=t0 + timedelta(minutes=3)))
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=wo_id, resolution="fixed",
                                          occurred_at=t0 + timedelta(minutes=30)))
    names = [type(e).__name__ for e in events(lx, wo_id)]
    assert names[-3:-1] == ["ClockResumed", "Resolved"]  # then the callback task
    assert events(lx, wo_id, "ClockResumed")[0].paused_seconds == 27 * 60
    lx.commands.handle(m.ReopenWorkOrder(work_order_id=wo_id, reason="out again",
                                         occurred_at=t0 + timedelta(hours=1)))
    wo = order(lx, wo_id)
    assert not wo.is_paused
    assert wo.deadlines["accept"] == t0 + timedelta(hours=1, minutes=15)
    # Urged and overdue like any running order.
    timers = WorkOrderTimers(lx)
    assert timers.tick(t0 + timedelta(hours=1, minutes=16)).urged == 1
    timers.close()
    q.fresh(lx)
    box = q.inbox(lx, "grid", now=t0 + timedelta(hours=1, minutes=16))
    assert [o["work_order_id"] for o in box["overdue"]] == [str(wo_id)]
    assert not box["overdue"][0]["paused"]


POLICY_A = """
version = "a"
[[rule]]
type = "fault_repair"
dispatch = "5 minutes"
accept = "15 minutes"
resolve = "24 hours"
urge_lead = "0 minutes"
urge_interval = "5 minutes"
[urging]
escalate_after = 2
escalate_to = ["team-lead", "duty-manager"]
"""

POLICY_B = """
version = "b"
[[rule]]
type = "fault_repair"
dispatch = "5 minutes"
urge_lead = "0 minutes"
urge_interval = "1 hours"
[urging]
escalate_after = 1
escalate_to = "director"
"""


def test_the_urging_cadence_is_stamped_with_the_promise(tmp_path: Path):
    from commands.timers import WorkOrderTimers
    from tests.work_orders.conftest import events

    (tmp_path / "a.toml").write_text(POLICY_A)
    (tmp_path / "b.toml").write_text(POLICY_B)
    home = tmp_path / "home"
    t0 = local(2026, 11, 23, 10)
    first = build(settings_with(home, LIANXIN_WORK_ORDER_POLICY=str(tmp_path / "a.toml")))
    try:
        old = open_order(first, "fault_repair", t0, "old", location={"feeder": "A"}).aggregate_id
    finally:
        first.close()
    second = build(settings_with(home, LIANXIN_WORK_ORDER_POLICY=str(tmp_path / "b.toml")))
    try:
        (stamp,) = [e.urging for e in events(second, old, "DeadlinesSet")]
        assert stamp["dispatch"] == {"lead": "0 minutes", "interval": "5 minutes",
                                     "escalate_after": 2,
                                     "escalate_to": ["team-lead", "duty-manager"]}
        new = open_order(second, "fault_repair", t0, "new", location={"feeder": "B"}).aggregate_id
        timers = WorkOrderTimers(second)
        for minute in (5, 10, 15):  # B would urge hourly and escalate at once
            timers.tick(t0 + timedelta(minutes=minute))
        timers.close()
        assert [e.due_at for e in events(second, old, "Urged")] == [
            t0 + timedelta(minutes=5), t0 + timedelta(minutes=10), t0 + timedelta(minutes=15)]
        assert [(e.level, e.to) for e in events(second, old, "Escalated")] == [(1, "team-lead")]
        assert [e.due_at for e in events(second, new, "Urged")] == [t0 + timedelta(minutes=5)]
        assert [(e.level, e.to) for e in events(second, new, "Escalated")] == [(1, "director")]
        # A resumed promise keeps its cadence, whatever the policy says now.
        second.commands.handle(m.DispatchWorkOrder(work_order_id=old, department="grid",
                                                   occurred_at=t0 + timedelta(minutes=16)))
        second.commands.handle(wm.PauseClock(work_order_id=old, reason="r",
                                             occurred_at=t0 + timedelta(minutes=17)))
        second.commands.handle(wm.ResumeClock(work_order_id=old,
                                              occurred_at=t0 + timedelta(minutes=20)))
        resumed = events(second, old, "DeadlinesSet")[-1]
        assert resumed.reason == "resume"
        assert resumed.urging["resolve"]["interval"] == "5 minutes"
    finally:
        second.close()


def test_a_deadline_counted_over_an_unlisted_year_is_flagged_and_logged(lx, caplog):
    from queries import work_orders as q
    from tests.work_orders.conftest import events

    caplog.set_level("WARNING", logger="commands.work_order_handlers")
    listed = open_order(lx, "complaint", local(2026, 11, 23, 10), "cal-26").aggregate_id
    assert events(lx, listed, "DeadlinesSet")[0].calendar_incomplete is False
    assert not caplog.records
    # The calendar file lists 2025 and 2026: a complaint opened on 28 December
    # 2026 ends in January 2027, counted with weekends only.
    crossing = open_order(lx, "complaint", local(2026, 12, 28, 10), "cal-27").aggregate_id
    (set_,) = events(lx, crossing, "DeadlinesSet")
    assert set_.calendar_incomplete is True
    assert set_.deadlines["resolve"] == local(2027, 1, 5)  # Tue 29 .. Mon 4 Jan, weekends only
    (record,) = caplog.records
    assert "2027" in record.getMessage() and "resolve" in record.getMessage()
    # Minutes and hours do not depend on the calendar: not flagged.
    fault = open_order(lx, "fault_repair", local(2027, 3, 1, 10), "cal-f",
                       location={"feeder": "C"}).aggregate_id
    assert events(lx, fault, "DeadlinesSet")[0].calendar_incomplete is False
    # Callback tasks are working-day moments too.
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=crossing, resolution="answered",
                                          occurred_at=local(2026, 12, 31, 10)))
    assert events(lx, crossing, "CallbackTaskScheduled")[0].calendar_incomplete is True
    q.fresh(lx)
    assert q.get_work_order(lx, crossing)["calendar_incomplete"] is True
    assert q.get_work_order(lx, listed)["calendar_incomplete"] is False


def test_a_calendar_missing_the_coming_year_is_reported_at_start(tmp_path: Path, caplog):
    from commands.work_order_rules import DEFAULT_CALENDAR, calendar_warnings

    assert calendar_warnings(CAL, DEFAULT_CALENDAR, today=date(2026, 6, 1)) == []
    (warning,) = calendar_warnings(CAL, DEFAULT_CALENDAR, today=date(2026, 12, 4))
    assert "2027" in warning and "calendar_cn.toml" in warning
    (tmp_path / "old.toml").write_text('[years.2019]\nholidays = ["2019-10-01"]\n')
    caplog.set_level("WARNING", logger="commands.work_order_rules")
    lx = build(settings_with(tmp_path / "home", LIANXIN_CALENDAR=str(tmp_path / "old.toml")))
    lx.close()
    assert any("old.toml" in r.getMessage() and "does not list" in r.getMessage()
               for r in caplog.records)


POLICY_BY_CATEGORY = """
version = "by-category"
[[rule]]
type = "complaint"
resolve = "5 working_days"
[[rule]]
type = "complaint"
category = "billing"
resolve = "2 days"
[[rule]]
type = "complaint"
priority = "urgent"
resolve = "1 days"
[[rule]]
type = "complaint"
category = "billing"
priority = "urgent"
resolve = "4 hours"
"""


def test_a_rule_matched_by_category_wins_over_the_types_rule(tmp_path: Path):
    (tmp_path / "policy.toml").write_text(POLICY_BY_CATEGORY)
    lx = build(settings_with(tmp_path / "home",
                             LIANXIN_WORK_ORDER_POLICY=str(tmp_path / "policy.toml")))
    t0 = local(2026, 11, 23, 10)
    try:
        def resolve_due(key: str, **kw) -> object:
            return order(lx, open_order(lx, "complaint", t0, key, **kw).aggregate_id
                         ).deadlines["resolve"]

        assert resolve_due("plain") == local(2026, 12, 1)  # 5 working days
        assert resolve_due("bill", category="billing") == t0 + timedelta(days=2)
        assert resolve_due("other", category="service") == local(2026, 12, 1)
        assert resolve_due("urgent", priority="urgent") == t0 + timedelta(days=1)
        # Category and priority both match: the most specific rule wins.
        assert resolve_due("both", category="billing", priority="urgent") == (
            t0 + timedelta(hours=4))
    finally:
        lx.close()


def test_the_escalation_chain_is_configuration():
    chain = Policy.from_mapping({"version": "v", "urging": {"escalate_to": "supervisor"}})
    assert chain.urging.escalate_to == ("supervisor",)
    cadence = RULES.policy.cadence("complaint")
    assert cadence.escalate_to == ("supervisor", "duty_manager", "center_director")
    assert [cadence.level_after(n) for n in (2, 3, 6, 9, 12, 300)] == [0, 1, 2, 3, 3, 3]
    for bad in ([], [""], 7):
        with pytest.raises(InvalidValue, match="urging.escalate_to"):
            Policy.from_mapping({"version": "v", "urging": {"escalate_to": bad}})
