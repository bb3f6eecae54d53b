"""Agent board: state, reason, since when and the current call."""

from __future__ import annotations

from uuid import UUID

from commands import messages as m
from queries.agents import get_agent, list_agents
from tests.projections.scenario import T0, at, queued, staff


def board(lx, no):
    lx.read_models().run_once()
    return get_agent(lx, no)


def test_each_transition_is_on_the_board(lianxin):
    lx, svc = lianxin, lianxin.commands
    svc.handle(m.RegisterAgent(employee_no="1001", name="Li Na", team="A",
                               skills={"power": 3}, occurred_at=at(0)))
    row = board(lx, "1001")
    assert (row["name"], row["team"], row["skills"], row["state"]) == ("Li Na", "A",
                                                                         {"power": 3},
                                                                         "logged_out")
    svc.handle(m.LogIn(employee_no="1001", endpoint="PJSIP/1001", occurred_at=at(10)))
    row = board(lx, "1001")
    assert (row["state"], row["reason"], row["endpoint"]) == ("not_ready", "login", "PJSIP/1001")
    assert row["since"] == "2026-11-23T02:00:10.000000+00:00"
    svc.handle(m.MakeReady(employee_no="1001", occurred_at=at(20)))
    call = queued(svc, "c1", "power", 30)
    svc.handle(m.AlertAgent(call_id=call, employee_no="1001", occurred_at=at(31)))
    row = board(lx, "1001")
    assert (row["state"], row["call_id"]) == ("ringing", str(call))
    svc.handle(m.ReportRingNoAnswer(call_id=call, occurred_at=at(46)))
    row = board(lx, "1001")
    assert (row["state"], row["reason"], row["call_id"]) == ("not_ready", "ring_no_answer", None)
    assert row["since"] == "2026-11-23T02:00:46.000000+00:00"
    svc.handle(m.MakeReady(employee_no="1001", occurred_at=at(50)))
    svc.handle(m.AlertAgent(call_id=call, employee_no="1001", occurred_at=at(51)))
    svc.handle(m.AnswerCall(call_id=call, occurred_at=at(53)))
    row = board(lx, "1001")
    assert (row["state"], row["call_id"], row["reason"]) == ("on_call", str(call), None)
    svc.handle(m.EndCall(call_id=call, hung_up_by="caller", occurred_at=at(120)))
    assert board(lx, "1001")["state"] == "wrap_up"
    svc.handle(m.CompleteWrapUp(call_id=call, employee_no="1001", dispositions=["billing"],
                                ready=False, not_ready_reason="paperwork", occurred_at=at(150)))
    row = board(lx, "1001")
    assert (row["state"], row["reason"], row["call_id"]) == ("not_ready", "paperwork", None)
    svc.handle(m.ChangeSkills(employee_no="1001", skills={"power": 4, "billing": 2},
                              occurred_at=at(160)))
    row = board(lx, "1001")
    assert row["skills"] == {"billing": 2, "power": 4}
    assert row["since"] == "2026-11-23T02:02:30.000000+00:00"  # skills are not a state change
    svc.handle(m.LogOut(employee_no="1001", reason="end of shift", occurred_at=at(200)))
    row = board(lx, "1001")
    assert (row["state"], row["reason"], row["endpoint"]) == ("logged_out", "end of shift", None)
    assert row["version"] == lx.app.repository.get(UUID(row["agent_id"])).version


def test_a_caller_hanging_up_while_ringing_frees_the_agent(lianxin):
    lx, svc = lianxin, lianxin.commands
    staff(svc, "1001")
    call = queued(svc, "c2", "power", 5)
    svc.handle(m.AlertAgent(call_id=call, employee_no="1001", occurred_at=at(6)))
    svc.handle(m.EndCall(call_id=call, hung_up_by="caller", occurred_at=at(9)))
    row = board(lx, "1001")
    assert (row["state"], row["call_id"], row["reason"]) == ("ready", None, None)


def test_list_filters_by_team_and_state(lianxin):
    lx, svc = lianxin, lianxin.commands
    staff(svc, "2001", "A")
    staff(svc, "2002", "B")
    staff(svc, "2003", "B", ready=False)
    lx.read_models().run_once()
    assert [a["employee_no"] for a in list_agents(lx)] == ["2001", "2002", "2003"]
    assert [a["employee_no"] for a in list_agents(lx, team="B", state="ready")] == ["2002"]
    assert T0.tzinfo is not None
