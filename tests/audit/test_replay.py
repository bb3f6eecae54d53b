"""The inspector's replay: every event of a conversation with transfers,
conference, supervision and recordings, in order, with offsets and actors;
and every read of a timeline or recording is itself recorded."""

from __future__ import annotations

from fastapi.testclient import TestClient

from commands import messages as m
from domain.access_log import AccessLog, access_log_id_for
from domain.agent import agent_id_for
from queries.replay import stored_events, timeline
from tests.audit.scenario import agents, at, simple_call


def busy_call(lx):
    svc = lx.commands
    agents(svc, "1001", "1002", "1003")
    cid = svc.handle(m.OfferCall(external_id="conv-1", dialed_number="95598",
                                 caller_number="13912345678", occurred_at=at(100))).aggregate_id
    svc.handle(m.EnterIvr(call_id=cid, menu="main", occurred_at=at(101), actor="ivr"))
    svc.handle(m.ChooseMenuOption(call_id=cid, menu="main", digits="2", target="power",
                                  occurred_at=at(104), actor="ivr"))
    svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(105), actor="acd"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", leg_id="leg-a",
                            occurred_at=at(106), actor="acd"))
    svc.handle(m.ReportRingNoAnswer(call_id=cid, occurred_at=at(121), actor="acd"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1002", leg_id="leg-b",
                            occurred_at=at(122), actor="acd"))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(125), actor="1002"))
    svc.handle(m.StartRecording(call_id=cid, recording="rec-1", target="channel:abc",
                                occurred_at=at(125), actor="system"))
    svc.handle(m.HoldCall(call_id=cid, occurred_at=at(140), actor="1002"))
    svc.handle(m.ResumeCall(call_id=cid, occurred_at=at(150), actor="1002"))
    svc.handle(m.StartMonitor(call_id=cid, supervisor_id="sup-9", mode="listen",
                              occurred_at=at(155), actor="sup-9"))
    svc.handle(m.AddConferenceParty(call_id=cid, party="engineer-77", occurred_at=at(160),
                                    actor="1002"))
    svc.handle(m.RemoveConferenceParty(call_id=cid, party="engineer-77", occurred_at=at(190),
                                       actor="1002"))
    svc.handle(m.StopMonitor(call_id=cid, supervisor_id="sup-9", occurred_at=at(191),
                             actor="sup-9"))
    svc.handle(m.TransferCall(call_id=cid, kind="blind", target_type="agent", target="1003",
                              occurred_at=at(200), actor="1002"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1003", leg_id="leg-c",
                            occurred_at=at(201), actor="acd"))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(204), actor="1003"))
    svc.handle(m.StopRecording(call_id=cid, recording="rec-1", duration_s=130.0,
                               occurred_at=at(255), actor="system"))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(260), actor="asterisk"))
    svc.handle(m.CompleteWrapUp(call_id=cid, employee_no="1003", dispositions=["outage"],
                                occurred_at=at(290), actor="1003"))
    svc.handle(m.AnswerSurvey(call_id=cid, score=5, occurred_at=at(300), actor="ivr"))
    svc.handle(m.OpenWorkOrder(type="fault_repair", summary="no power at Zhang's house",
                               call_id=cid, occurred_at=at(310), actor="1003",
                               command_id="wo-conv-1"))
    return cid


def test_timeline_lists_the_whole_conversation_in_order(lianxin):
    cid = busy_call(lianxin)
    tl = timeline(lianxin, cid)
    call_events = [e for e in tl["events"] if e["source"] == "call"]
    assert [e["type"] for e in call_events] == [
        "Offered", "IvrEntered", "MenuChoiceMade", "Queued", "AgentAlerted", "RingNoAnswer",
        "AgentAlerted", "Answered", "RecordingStarted", "Held", "Resumed", "MonitorStarted",
        "ConferencePartyJoined", "ConferencePartyLeft", "MonitorStopped", "Transferred",
        "AgentAlerted", "Answered", "RecordingStopped", "Ended", "WrapUpCompleted",
        "SurveyAnswered", "WorkOrderLinked"]
    assert [e["offset_s"] for e in call_events][:4] == [0.0, 1.0, 4.0, 5.0]
    assert call_events[-1]["offset_s"] == 210.0
    positions = [e["position"] for e in tl["events"]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    by_type = {e["type"]: e for e in call_events}
    assert by_type["MonitorStarted"]["actor"] == "sup-9"
    assert by_type["MonitorStarted"]["details"]["mode"] == "listen"
    assert by_type["Transferred"]["summary"] == "blind transfer to agent 1003"
    # A guest's name is personal data (pii since ConferencePartyJoined v2): not in a summary.
    assert by_type["ConferencePartyJoined"]["summary"] == "a party joined the conference"
    assert "agent 1001 did not answer" in by_type["RingNoAnswer"]["summary"]
    # Agents alerted on the call appear with their side of it.
    agent_side = [(e["agent"], e["type"]) for e in tl["events"] if e["source"] == "agent"]
    assert ("1001", "MissedCall") in agent_side and ("1002", "CallReleased") in agent_side
    assert ("1003", "CallConnected") in agent_side and ("1003", "BecameReady") in agent_side
    # Keyed by the agents' aggregate ids, each naming its employee number.
    assert tl["agents"] == {str(agent_id_for(n)): n for n in ("1001", "1002", "1003")}
    # Only the agent events of this call: none of the three agents' login at t=0.
    assert {e["details"].get("call_id") for e in tl["events"] if e["source"] == "agent"
            and e["type"] != "BecameReady"} == {str(cid)}
    [rec] = tl["recordings"]
    assert rec == {"name": "rec-1", "target": "channel:abc", "format": "wav",
                   "started_at": at(125).isoformat(), "start_offset_s": 25.0,
                   "stop_offset_s": 155.0, "duration_s": 130.0, "stop_cause": "stopped"}
    [wo] = tl["work_orders"]
    assert wo["type"] == "fault_repair" and by_type["WorkOrderLinked"]["details"][
        "work_order_number"] == wo["number"]
    # Personal data stays out of the replay.
    text = str(tl)
    assert "13912345678" not in text and "Zhang" not in text


def test_timeline_shows_no_agent_events_of_another_call(lianxin):
    """Agent 1002 serves customer B while call A is in progress, then A is
    transferred to 1002. A's replay must show 1002's side of A only: not B's
    ringing, release and wrap-up, nor the agents' logins in A's first second."""
    svc = lianxin.commands
    agents(svc, "1001", "1002")
    a = svc.handle(m.OfferCall(external_id="A", dialed_number="95598",
                               occurred_at=at(0))).aggregate_id
    svc.handle(m.QueueCall(call_id=a, queue="power", occurred_at=at(1)))
    svc.handle(m.AlertAgent(call_id=a, employee_no="1001", occurred_at=at(2)))
    svc.handle(m.AnswerCall(call_id=a, occurred_at=at(4)))
    b = simple_call(svc, "B", "1002", 10)  # 1002 busy with B from 12 to 50
    svc.handle(m.TransferCall(call_id=a, kind="blind", target_type="agent", target="1002",
                              occurred_at=at(100)))
    svc.handle(m.AlertAgent(call_id=a, employee_no="1002", occurred_at=at(101)))
    svc.handle(m.AnswerCall(call_id=a, occurred_at=at(102)))
    # 1001's after-call work of A ends with its own "ready" (not a wrap-up
    # command); its break after that is not part of A.
    svc.handle(m.MakeReady(employee_no="1001", occurred_at=at(105)))
    svc.handle(m.MakeNotReady(employee_no="1001", reason="break", occurred_at=at(106)))
    svc.handle(m.EndCall(call_id=a, hung_up_by="caller", occurred_at=at(120)))
    svc.handle(m.CompleteWrapUp(call_id=a, employee_no="1002", dispositions=["billing"],
                                occurred_at=at(130)))
    tl = timeline(lianxin, a)
    agent_side = [(e["agent"], e["type"], e["offset_s"]) for e in tl["events"]
                  if e["source"] == "agent"]
    assert agent_side == [
        ("1001", "Ringing", 2.0), ("1001", "CallConnected", 4.0),
        ("1001", "CallReleased", 100.0),
        ("1002", "Ringing", 101.0), ("1002", "CallConnected", 102.0),
        ("1001", "BecameReady", 105.0),
        ("1002", "CallReleased", 120.0), ("1002", "BecameReady", 130.0)]
    assert str(b) not in str(tl)
    # B's side is in the store, inside A's time span: left out, not missing.
    b_side = [type(e).__name__ for _, e in stored_events(lianxin.app, agent_id_for("1002"))
              if getattr(e, "call_id", None) == b]
    assert b_side == ["Ringing", "CallConnected", "CallReleased"]


def test_http_timeline_requires_a_reader_and_records_the_access(lianxin):
    from lianxin.http import create_app

    cid = busy_call(lianxin)
    client = TestClient(create_app(lianxin))
    anonymous = client.get(f"/calls/{cid}/timeline", params={"reason": "QA sample"})
    assert anonymous.status_code == 422
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.json()["field"] == "X-Actor"
    no_reason = client.get(f"/calls/{cid}/timeline", headers={"X-Actor": "qa-7"})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    assert lianxin.app.repository.get(cid).version > 0
    assert _accesses(lianxin, cid) == []  # refused reads leave no access record

    ok = client.get(f"/calls/{cid}/timeline", params={"reason": "complaint 88"},
                    headers={"X-Actor": "qa-7"})
    assert ok.status_code == 200 and len(ok.json()["events"]) > 20
    rec = client.get(f"/calls/{cid}/recordings/rec-1", params={"reason": "dispute"},
                     headers={"X-Actor": "qa-8"})
    assert rec.status_code == 200 and rec.json()["start_offset_s"] == 25.0
    assert [(a["actor"], a["resource_kind"], a["resource"]) for a in _accesses(lianxin, cid)] == [
        ("qa-7", "timeline", ""), ("qa-8", "recording", "rec-1")]
    # The listing shows the reasons (personal data): it needs a named reader too.
    anonymous = client.get(f"/calls/{cid}/accesses", params={"reason": "audit"})
    assert anonymous.status_code == 422 and anonymous.json()["field"] == "X-Actor"
    assert len(_accesses(lianxin, cid)) == 2
    listing = client.get(f"/calls/{cid}/accesses", params={"reason": "audit"},
                         headers={"X-Actor": "dpo-1"}).json()["accesses"]
    assert [(a["actor"], a["reason"]) for a in listing] == [("qa-7", "complaint 88"),
                                                           ("qa-8", "dispute")]
    assert _accesses(lianxin, cid)[-1]["actor"] == "dpo-1"  # and that read is recorded
    # The reason is free text: it is stored in the event's pii only.
    log = lianxin.app.repository.get(access_log_id_for("call", str(cid)))
    assert "complaint 88" not in str(vars(log))

    missing = client.get(f"/calls/{cid}/recordings/nope", params={"reason": "x"},
                         headers={"X-Actor": "qa-7"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    unknown = client.get("/calls/6c3d2f1e-0000-4000-8000-000000000000/timeline",
                         params={"reason": "x"}, headers={"X-Actor": "qa-7"})
    assert unknown.status_code == 404
    garbage = client.get("/calls/not-a-call/timeline", params={"reason": "x"},
                         headers={"X-Actor": "qa-7"})
    assert garbage.status_code == 422 and garbage.json()["field"] == "call_id"
    assert len(_accesses(lianxin, cid)) == 3


def _accesses(lx, cid):
    from eventsourcing.application import AggregateNotFoundError

    try:
        log = lx.app.repository.get(access_log_id_for("call", str(cid)))
    except AggregateNotFoundError:
        return []
    assert isinstance(log, AccessLog)
    return log.accesses


def test_cli_replay_steps_through_the_events(sqlite_lianxin, monkeypatch):
    from typer.testing import CliRunner

    from lianxin.cli import app

    cid = busy_call(sqlite_lianxin)
    sqlite_lianxin.close()
    monkeypatch.setenv("LIANXIN_HOME", str(sqlite_lianxin.settings.home))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    runner = CliRunner()
    out = runner.invoke(app, ["call", "replay", str(cid), "--step", "--actor", "qa-1",
                              "--reason", "monthly sample"], input="\nd\nq\n")
    assert out.exit_code == 0, out.output
    assert "Offered" in out.output and "IvrEntered" in out.output
    assert '"menu": "main"' in out.output  # the details of event 2 after "d"
    assert "MenuChoiceMade" in out.output and "Transferred" not in out.output  # quit at 3
    refused = runner.invoke(app, ["call", "replay", str(cid), "--actor", "qa-1"])
    assert refused.exit_code == 2 and "--reason" in refused.output
