"""An attended transfer through a consult leg: the colleague's leg in
`fact_leg` rings, answers and talks when the consult events say, and is the
call's leg from the transfer on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb

from commands import messages as m
from domain.agent import agent_id_for
from warehouse.service import load

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _staff(svc, *numbers: str) -> None:
    for no in numbers:
        svc.handle(m.RegisterAgent(employee_no=no, name=f"Agent {no}", occurred_at=at(0)))
        svc.handle(m.LogIn(employee_no=no, endpoint=f"PJSIP/{no}", occurred_at=at(0)))
        svc.handle(m.MakeReady(employee_no=no, occurred_at=at(0)))


def _consulting(svc, external_id: str, colleague: str = "1002"):
    cid = svc.handle(m.OfferCall(external_id=external_id, dialed_number="95598",
                                 occurred_at=at(1))).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(2)))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", leg_id=f"{external_id}-a",
                            occurred_at=at(3)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(5)))
    svc.handle(m.HoldCall(call_id=cid, occurred_at=at(20)))
    svc.handle(m.AlertConsult(call_id=cid, employee_no=colleague, leg_id=f"{external_id}-c",
                              occurred_at=at(21)))
    return cid


def _legs(lx, cid):
    con = duckdb.connect(str(lx.settings.warehouse_dir / "catalog.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT leg_id, agent_id, queue, alerted_at, answered_at, ended_at, outcome, "
            "end_reason, ring_s, talk_s, hold_s FROM fact_leg WHERE call_id = ? "
            "ORDER BY alerted_at", [cid]).fetchall()
        call = con.execute("SELECT legs, transfers, talk_s, hold_s, answer_agent_id "
                           "FROM fact_call WHERE call_id = ?", [cid]).fetchall()[0]
    finally:
        con.close()
    cols = ("leg_id", "agent_id", "queue", "alerted_at", "answered_at", "ended_at", "outcome",
            "end_reason", "ring_s", "talk_s", "hold_s")
    return {r[0]: dict(zip(cols, r)) for r in rows}, call


def test_the_colleagues_consult_leg_rings_answers_and_talks_from_its_events(sqlite_lianxin):
    lx = sqlite_lianxin
    svc = lx.commands
    _staff(svc, "1001", "1002")
    cid = _consulting(svc, "x1")
    svc.handle(m.AnswerConsult(call_id=cid, occurred_at=at(25)))
    svc.handle(m.TransferCall(call_id=cid, kind="attended", target_type="agent", target="1002",
                              to_leg_id="x1-c", occurred_at=at(40)))
    svc.handle(m.HoldCall(call_id=cid, occurred_at=at(50)))  # the colleague holds the caller
    svc.handle(m.ResumeCall(call_id=cid, occurred_at=at(54)))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(100)))
    load(lx, batch_size=5)
    legs, call = _legs(lx, cid)
    first, colleague = legs["x1-a"], legs["x1-c"]
    assert first["end_reason"] == "transfer" and first["ended_at"] == at(40)
    assert first["hold_s"] == 20  # the caller waited on the first agent's hold
    assert first["talk_s"] == 35 - 20
    assert colleague["agent_id"] == agent_id_for("1002") and colleague["queue"] == "power"
    assert (colleague["alerted_at"], colleague["answered_at"], colleague["ended_at"]) == (
        at(21), at(25), at(100))
    assert colleague["outcome"] == "answered" and colleague["end_reason"] == "hangup"
    assert colleague["ring_s"] == 4
    # the consultation and the conversation after the transfer, less the colleague's hold
    assert colleague["hold_s"] == 4 and colleague["talk_s"] == 75 - 4
    assert call[:2] == (2, 1) and call[4] == agent_id_for("1001")
    assert call[2] == first["talk_s"] + colleague["talk_s"] and call[3] == 24


def test_a_missed_and_an_ended_consultation_are_legs_that_end_without_the_call(sqlite_lianxin):
    lx = sqlite_lianxin
    svc = lx.commands
    _staff(svc, "1001", "1002", "1003")
    cid = _consulting(svc, "x2")
    svc.handle(m.ReportConsultMissed(call_id=cid, outcome="busy", occurred_at=at(23)))
    svc.handle(m.AlertConsult(call_id=cid, employee_no="1003", leg_id="x2-d", occurred_at=at(24)))
    svc.handle(m.AnswerConsult(call_id=cid, occurred_at=at(27)))
    svc.handle(m.EndConsult(call_id=cid, ended_by="agent", wrap_up=False, occurred_at=at(37)))
    svc.handle(m.ResumeCall(call_id=cid, occurred_at=at(38)))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(60)))
    load(lx, batch_size=3)
    legs, call = _legs(lx, cid)
    missed, ended = legs["x2-c"], legs["x2-d"]
    assert (missed["outcome"], missed["end_reason"], missed["ring_s"]) == (
        "busy", "ring_no_answer", 2)
    assert missed["answered_at"] is None and missed["talk_s"] is None
    assert (ended["answered_at"], ended["ended_at"], ended["end_reason"]) == (
        at(27), at(37), "consult_ended")
    assert ended["ring_s"] == 3 and ended["talk_s"] == 10 and ended["hold_s"] == 0
    # the first agent kept the call to its end
    assert legs["x2-a"]["ended_at"] == at(60) and legs["x2-a"]["end_reason"] == "hangup"
    assert call[:2] == (3, 0)
