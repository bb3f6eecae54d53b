"""A small day at the hotline with every outcome, built through the command
service with explicit source times. The expected KPIs are worked out by hand
in test_kpis_small_day.py (and in docs/kpis.md's worked example)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from commands import messages as m

CST = timezone(timedelta(hours=8))
DAY = "2026-03-02"  # a Monday


def at(h: int, mi: int, s: int = 0, day: int = 2, month: int = 3) -> datetime:
    return datetime(2026, month, day, h, mi, s, tzinfo=CST)


def build_small_day(svc: Any) -> dict[str, Any]:
    ids: dict[str, Any] = {}

    def do(cmd: m.Command) -> Any:
        return svc.handle(cmd).aggregate_id

    for no, team, skills in (("1001", "red", {"power": 5}), ("1002", "blue", {"water": 5})):
        do(m.RegisterAgent(employee_no=no, name=f"agent {no}", team=team, skills=skills,
                           occurred_at=at(8, 0)))
        do(m.LogIn(employee_no=no, endpoint=f"PJSIP/{no}", occurred_at=at(8, 55)))
        do(m.MakeReady(employee_no=no, occurred_at=at(8, 55)))

    def offer(name: str, when: datetime, number: str | None) -> Any:
        ids[name] = do(m.OfferCall(external_id=name, dialed_number="95598",
                                   caller_number=number, occurred_at=when))
        return ids[name]

    # C1: IVR, queued, answered within 20 s, held 30 s, survey 5.
    c = offer("c1", at(9, 0), "13800000001")
    do(m.EnterIvr(call_id=c, menu="main", occurred_at=at(9, 0)))
    do(m.ChooseMenuOption(call_id=c, menu="main", digits="1", target="power", occurred_at=at(9, 0, 5)))
    do(m.QueueCall(call_id=c, queue="power", required_skills={"power": 1}, occurred_at=at(9, 0, 10)))
    do(m.AlertAgent(call_id=c, employee_no="1001", leg_id="c1-l1", occurred_at=at(9, 0, 25)))
    do(m.AnswerCall(call_id=c, occurred_at=at(9, 0, 30)))
    do(m.HoldCall(call_id=c, occurred_at=at(9, 1, 0)))
    do(m.ResumeCall(call_id=c, occurred_at=at(9, 1, 30)))
    do(m.EndCall(call_id=c, hung_up_by="agent", occurred_at=at(9, 3, 30)))
    do(m.AnswerSurvey(call_id=c, score=5, occurred_at=at(9, 3, 35)))
    ids["wo1"] = do(m.OpenWorkOrder(type="complaint", summary="meter reads wrong", call_id=c,
                                    occurred_at=at(9, 3, 40)))
    do(m.CompleteWrapUp(call_id=c, employee_no="1001", dispositions=["complaint"],
                        occurred_at=at(9, 4, 0)))

    # C2: abandoned in queue after 3 s (a short abandon).
    c = offer("c2", at(9, 5), "13800000002")
    do(m.QueueCall(call_id=c, queue="power", occurred_at=at(9, 5)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(9, 5, 3)))

    # C3: abandoned in queue after 40 s.
    c = offer("c3", at(9, 10), "13800000003")
    do(m.QueueCall(call_id=c, queue="power", occurred_at=at(9, 10)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(9, 10, 40)))

    # C4: abandoned in the IVR after 15 s.
    c = offer("c4", at(9, 20), "13800000004")
    do(m.EnterIvr(call_id=c, menu="main", occurred_at=at(9, 20)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(9, 20, 15)))

    # C5: served by self-service, never reached an agent.
    c = offer("c5", at(9, 25), "13800000005")
    do(m.EnterIvr(call_id=c, menu="main", occurred_at=at(9, 25)))
    do(m.UseSelfService(call_id=c, service="balance", result="ok", occurred_at=at(9, 25, 30)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(9, 26)))

    # C6: abandoned while agent 1002's phone rang (7 s of ringing, 12 s wait).
    c = offer("c6", at(9, 30), "13800000006")
    do(m.QueueCall(call_id=c, queue="water", occurred_at=at(9, 30)))
    do(m.AlertAgent(call_id=c, employee_no="1002", leg_id="c6-l1", occurred_at=at(9, 30, 5)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(9, 30, 12)))

    # C7: ring-no-answer at 1001 (20 s), answered by 1002 after 62 s of wait,
    # blind transfer to the water queue, answered again by 1001.
    c = offer("c7", at(9, 40), "13800000007")
    do(m.QueueCall(call_id=c, queue="power", occurred_at=at(9, 40)))
    do(m.AlertAgent(call_id=c, employee_no="1001", leg_id="c7-l1", occurred_at=at(9, 40, 30)))
    do(m.ReportRingNoAnswer(call_id=c, outcome="no_answer", occurred_at=at(9, 40, 50)))
    do(m.AlertAgent(call_id=c, employee_no="1002", leg_id="c7-l2", occurred_at=at(9, 41, 0)))
    do(m.AnswerCall(call_id=c, occurred_at=at(9, 41, 2)))
    do(m.MakeReady(employee_no="1001", occurred_at=at(9, 41, 30)))
    do(m.TransferCall(call_id=c, kind="blind", target_type="queue", target="water",
                      occurred_at=at(9, 42, 2)))
    do(m.AlertAgent(call_id=c, employee_no="1001", leg_id="c7-l3", occurred_at=at(9, 42, 10)))
    do(m.AnswerCall(call_id=c, occurred_at=at(9, 42, 14)))
    do(m.MakeReady(employee_no="1002", occurred_at=at(9, 42, 32)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(9, 44, 14)))
    do(m.CompleteWrapUp(call_id=c, employee_no="1001", dispositions=["info"],
                        occurred_at=at(9, 44, 44)))

    # C8: the system hung up in the IVR (no caller number shown).
    c = offer("c8", at(9, 50), None)
    do(m.EnterIvr(call_id=c, menu="main", occurred_at=at(9, 50)))
    do(m.EndCall(call_id=c, hung_up_by="system", occurred_at=at(9, 50, 5)))

    # A2 takes a break at 10:00.
    do(m.MakeNotReady(employee_no="1002", reason="break", occurred_at=at(10, 0)))

    # C9: the caller of C1 again (a repeat), answered after 45 s, survey 3.
    c = offer("c9", at(10, 5), "13800000001")
    do(m.QueueCall(call_id=c, queue="power", occurred_at=at(10, 5)))
    do(m.AlertAgent(call_id=c, employee_no="1001", leg_id="c9-l1", occurred_at=at(10, 5, 40)))
    do(m.AnswerCall(call_id=c, occurred_at=at(10, 5, 45)))
    do(m.EndCall(call_id=c, hung_up_by="caller", occurred_at=at(10, 7, 45)))
    do(m.AnswerSurvey(call_id=c, score=3, occurred_at=at(10, 7, 50)))
    do(m.CompleteWrapUp(call_id=c, employee_no="1001", dispositions=["info"],
                        occurred_at=at(10, 8, 5)))

    # Work orders: one dispatched within 30 minutes and resolved, one
    # dispatched after 50 minutes, one opened days earlier and never resolved.
    do(m.DispatchWorkOrder(work_order_id=ids["wo1"], department="metering",
                           occurred_at=at(9, 10)))
    ids["wo2"] = do(m.OpenWorkOrder(type="consultation", summary="tariff question",
                                    occurred_at=at(10, 10)))
    do(m.DispatchWorkOrder(work_order_id=ids["wo2"], department="billing", occurred_at=at(11, 0)))
    ids["wo3"] = do(m.OpenWorkOrder(type="consultation", summary="old question",
                                    occurred_at=at(9, 0, day=26, month=2)))

    # C10: still waiting in the queue at the end of the data.
    c = offer("c10", at(10, 20), "13800000010")
    do(m.QueueCall(call_id=c, queue="power", occurred_at=at(10, 20)))

    for no in ("1001", "1002"):
        do(m.LogOut(employee_no=no, occurred_at=at(10, 30)))
    do(m.AcceptWorkOrder(work_order_id=ids["wo1"], department="metering", occurred_at=at(9, 20)))
    do(m.ResolveWorkOrder(work_order_id=ids["wo1"], resolution="meter replaced",
                          occurred_at=at(10, 0, day=3)))
    return ids
