"""Commands and queries through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.api.conftest import ok

T = "2026-11-23T10:00:{:02d}+08:00"


def register_ready_agent(client, no: str = "1001") -> None:
    ok(client.post("/agents", json={"employee_no": no, "name": "Li Na", "team": "A",
                                    "skills": {"power": 3}}), 201)
    ok(client.post(f"/agents/{no}/login", json={"endpoint": f"PJSIP/{no}"}))
    ok(client.post(f"/agents/{no}/ready"))


def test_a_call_through_its_life_and_read_your_writes(client):
    register_ready_agent(client)
    offered = ok(client.post("/calls", json={"external_id": "ch-1", "dialed_number": "95598",
                                             "caller_number": "13800000000",
                                             "occurred_at": T.format(0)}), 201)
    cid = offered["aggregate_id"]
    steps = [
        ("ivr", {"menu": "main", "occurred_at": T.format(1)}),
        ("menu-choice", {"menu": "main", "digits": "1", "occurred_at": T.format(3)}),
        ("self-service", {"service": "balance", "result": "ok", "occurred_at": T.format(4)}),
        ("queue", {"queue": "power", "occurred_at": T.format(5)}),
        ("alert", {"employee_no": "1001", "occurred_at": T.format(8)}),
        ("answer", {"occurred_at": T.format(10)}),
        ("recording/start", {"recording": "rec-1", "occurred_at": T.format(10)}),
        ("hold", {"occurred_at": T.format(20)}),
        ("resume", {"occurred_at": T.format(25)}),
        ("conference/add", {"party": "PJSIP/2001", "occurred_at": T.format(26)}),
        ("conference/remove", {"party": "PJSIP/2001", "occurred_at": T.format(27)}),
        ("monitor/start", {"supervisor_id": "s1", "mode": "whisper", "occurred_at": T.format(28)}),
        ("monitor/stop", {"supervisor_id": "s1", "occurred_at": T.format(29)}),
        ("recording/stop", {"recording": "rec-1", "occurred_at": T.format(30)}),
        ("end", {"hung_up_by": "agent", "occurred_at": T.format(40)}),
        ("wrap-up", {"employee_no": "1001", "dispositions": ["resolved"],
                     "occurred_at": T.format(50)}),
        ("survey", {"score": 4, "occurred_at": T.format(55)}),
    ]
    last = None
    for path, body in steps:
        last = ok(client.post(f"/calls/{cid}/{path}", json=body))
        assert last["aggregate_id"] == cid and last["new_events"] >= 1 and not last["duplicate"]
    call = ok(client.get(f"/calls/{cid}", params={"min_position": last["position"]}))
    assert (call["state"], call["survey_score"], call["employee_no"]) == ("ended", 4, "1001")
    events = ok(client.get(f"/calls/{cid}/events", params={"min_position": last["position"]}))
    assert events[0]["event_type"] == "Offered" and events[-1]["event_type"] == "SurveyAnswered"
    assert [e["offset_s"] for e in events][:3] == [0, 1, 3]
    assert len(events) == 1 + len(steps)
    agent = ok(client.get("/agents/1001", params={"min_position": last["position"]}))
    assert agent["state"] == "ready"


def test_idempotency_key_and_if_match(client):
    register_ready_agent(client, "1002")
    first = ok(client.post("/agents/1002/not-ready", json={"reason": "break"},
                           headers={"Idempotency-Key": "nr-1"}))
    again = ok(client.post("/agents/1002/not-ready", json={"reason": "break"},
                           headers={"Idempotency-Key": "nr-1"}))
    assert (first["new_events"], again["new_events"], again["duplicate"]) == (1, 0, True)
    board = client.get("/agents/1002", params={"min_position": first["position"]})
    version = ok(board)["version"]
    assert board.headers["etag"] == f'"{version}"'
    # A stale version is refused and changes nothing.
    stale = client.post("/agents/1002/ready", headers={"If-Match": f'"{version - 1}"'})
    assert stale.status_code == 409
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["code"] == "concurrency-conflict"
    assert ok(client.get("/agents/1002", params={"min_position": first["position"]}))[
        "state"] == "not_ready"
    fresh = ok(client.post("/agents/1002/ready", headers={"If-Match": f'"{version}"'}))
    assert ok(client.get("/agents/1002", params={"min_position": fresh["position"]}))[
        "state"] == "ready"
    # Offering the same telephony call twice records it once.
    body = {"external_id": "dup-1", "dialed_number": "95598"}
    one = client.post("/calls", json=body)
    two = client.post("/calls", json=body)
    assert (one.status_code, two.status_code) == (201, 200)
    assert two.json()["duplicate"] and two.json()["aggregate_id"] == one.json()["aggregate_id"]


def test_transfer_ring_no_answer_and_force_disconnect(client):
    register_ready_agent(client, "1003")
    register_ready_agent(client, "1004")
    cid = ok(client.post("/calls", json={"external_id": "ch-2", "dialed_number": "95598"}),
             201)["aggregate_id"]
    ok(client.post(f"/calls/{cid}/queue", json={"queue": "power"}))
    ok(client.post(f"/calls/{cid}/alert", json={"employee_no": "1003"}))
    ok(client.post(f"/calls/{cid}/ring-no-answer", json={}))
    ok(client.post(f"/calls/{cid}/alert", json={"employee_no": "1004"}))
    answered = ok(client.post(f"/calls/{cid}/answer"))
    live = ok(client.get("/calls", params={"min_position": answered["position"]}))
    assert [(c["call_id"], c["state"], c["employee_no"]) for c in live] == [
        (cid, "connected", "1004")]
    ok(client.post(f"/calls/{cid}/transfer", json={"kind": "blind", "target_type": "queue",
                                                   "target": "repair"}))
    out = ok(client.post(f"/calls/{cid}/force-disconnect", json={"supervisor_id": "s9"},
                         headers={"X-Actor": "supervisor s9"}))
    call = ok(client.get(f"/calls/{cid}", params={"min_position": out["position"]}))
    assert (call["state"], call["hung_up_by"], call["transfers"]) == ("ended", "supervisor", 1)
    events = ok(client.get(f"/calls/{cid}/events"))
    assert events[-1]["actor"] == "supervisor s9"
    agents = {a["employee_no"]: a for a in ok(client.get("/agents", params={
        "min_position": out["position"]}))}
    assert (agents["1003"]["state"], agents["1003"]["reason"]) == ("not_ready", "ring_no_answer")
    assert agents["1004"]["state"] == "wrap_up"
    board = ok(client.get("/wallboard", params={"min_position": out["position"]}))
    queues = {q["queue"]: q for q in board["queues"]}
    assert queues["power"]["answered"] == 1 and queues["repair"]["exited"] == 1


def test_work_order_lifecycle_and_agent_session(client):
    opened = ok(client.post("/work-orders", json={"type": "fault_repair", "summary": "no power",
                                                  "location": {"area": "east"}},
                            headers={"Idempotency-Key": "wo-http-1"}), 201)
    wid = opened["aggregate_id"]
    retried = ok(client.post("/work-orders", json={"type": "fault_repair",
                                                   "summary": "no power",
                                                   "location": {"area": "east"}},
                             headers={"Idempotency-Key": "wo-http-1"}))
    assert retried["duplicate"] and retried["aggregate_id"] == wid
    for path, body in [("dispatch", {"department": "grid"}), ("accept", {"department": "grid"}),
                       ("progress", {"note": "crew on site"}),
                       ("resolve", {"resolution": "repaired"}),
                       ("callback", {"result": "reached", "satisfaction": 5}),
                       ("close", None), ("reopen", {"reason": "again"})]:
        ok(client.post(f"/work-orders/{wid}/{path}", json=body))
    wo = client.lianxin.app.repository.get(__import__("uuid").UUID(wid))
    assert (wo.status.value, wo.department, wo.reopen_count) == ("dispatched", "grid", 1)
    register_ready_agent(client, "1005")
    ok(client.post("/agents/1005/skills", json={"skills": {"billing": 2}}))
    out = ok(client.post("/agents/1005/logout", json={"reason": "shift end"}))
    agent = ok(client.get("/agents/1005", params={"min_position": out["position"]}))
    assert (agent["state"], agent["skills"]) == ("logged_out", {"billing": 2})
