"""Bad input gets an RFC 7807 problem (400/404/409/422), never a 500, and
leaves what is stored untouched."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import ok

PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


@pytest.fixture
def ended_call(client):
    ok(client.post("/agents", json={"employee_no": "7001", "name": "Wang", "team": "A"}), 201)
    cid = ok(client.post("/calls", json={"external_id": "p-1", "dialed_number": "95598"}),
             201)["aggregate_id"]
    ok(client.post(f"/calls/{cid}/end", json={"hung_up_by": "system"}))
    return cid


def test_bad_requests_are_problems_and_change_nothing(client, ended_call):
    cid = ended_call
    head = client.lianxin.app.max_position()
    unknown = str(uuid.uuid4())

    body = problem(client.post("/calls", content=b'{"external_id": "x",',
                               headers={"content-type": "application/json"}), 400)
    assert body["code"] == "malformed-json"
    problem(client.post("/calls", content=b"\xff\xfe{}",
                        headers={"content-type": "application/json"}), 400)

    body = problem(client.post(f"/calls/{cid}/answer", json={}), 409)
    assert body["code"] == "invariant-violation" and "ended" in body["detail"]
    body = problem(client.post(f"/calls/{unknown}/queue", json={"queue": "power"}), 404)
    assert body["code"] == "not-found"
    problem(client.post("/agents/nobody/ready"), 404)
    problem(client.get("/agents/nobody"), 404)
    problem(client.get(f"/calls/{unknown}"), 404)
    problem(client.get(f"/calls/{unknown}/events"), 404)
    problem(client.get("/no/such/route"), 404)
    problem(client.delete("/wallboard"), 405)

    body = problem(client.post(f"/calls/{cid}/queue", json={}), 422)
    assert body["field"] == "queue" and "queue" in body["detail"]
    body = problem(client.post(f"/calls/{cid}/survey", json={"score": "five"}), 422)
    assert body["field"] == "score"
    body = problem(client.post("/calls", json={"external_id": "x", "dialed_number": "1",
                                               "caller_numbr": "1"}), 422)
    assert body["field"] == "caller_numbr"
    body = problem(client.post("/calls", json=["not", "an", "object"]), 422)
    body = problem(client.post("/agents"), 422)
    assert body["errors"]
    body = problem(client.post("/calls/not-a-uuid/answer"), 422)
    assert body["field"] == "call_id"
    # Refused by the domain: named field, 422.
    body = problem(client.post("/agents", json={"employee_no": "7002", "name": "Zhao",
                                                "skills": {"power": 99}}), 422)
    assert (body["code"], body["field"]) == ("invalid-value", "skills")
    body = problem(client.post("/agents", json={"employee_no": "7003", "name": "Qian",
                                                "occurred_at": "2026-11-23T10:00:00"}), 422)
    assert body["field"] == "occurred_at"
    body = problem(client.post("/agents", json={"employee_no": "  ", "name": "Sun"}), 422)
    assert body["field"] == "employee_no"
    body = problem(client.post("/work-orders", json={"type": "gossip", "summary": "x"}), 422)
    assert body["field"] == "type"
    # Headers and query parameters.
    problem(client.post("/agents/7001/login", json={"endpoint": "PJSIP/7001"},
                        headers={"If-Match": "yesterday"}), 400)
    body = problem(client.post("/agents/7001/login", json={"endpoint": "PJSIP/7001"},
                               headers={"Idempotency-Key": " "}), 422)
    assert body["field"] == "Idempotency-Key"
    body = problem(client.get("/wallboard", params={"min_position": -1}), 422)
    assert body["field"] == "min_position"
    body = problem(client.get("/wallboard", params={"at": "noon"}), 422)
    assert body["field"] == "at"
    problem(client.get("/wallboard", params={"at": "2026-11-23T10:00:00"}), 422)
    # Sizes: text longer than any real field, a body far over any command's.
    body = problem(client.post("/calls", json={"external_id": "x" * 10_001,
                                               "dialed_number": "1"}), 422)
    assert body["field"] == "external_id" and "10,000" in body["detail"]
    body = problem(client.post("/calls", json={"external_id": "x", "dialed_number": "1",
                                               "trunk": "t" * 10_001}), 422)
    assert body["field"] == "trunk"
    body = problem(client.post("/calls", content=b'{"external_id":"' + b"x" * (2 << 20) + b'"}',
                               headers={"content-type": "application/json"}), 413)
    assert body["code"] == "body-too-large"

    assert client.lianxin.app.max_position() == head


def test_work_order_invariants_are_conflicts(client):
    wid = ok(client.post("/work-orders", json={"type": "complaint", "summary": "rude"}),
             201)["aggregate_id"]
    body = problem(client.post(f"/work-orders/{wid}/close"), 409)
    assert "resolve it first" in body["detail"]
    ok(client.post(f"/work-orders/{wid}/dispatch", json={"department": "service"}))
    problem(client.post(f"/work-orders/{wid}/accept", json={"department": "other"}), 409)


def test_waiting_for_a_position_that_never_comes_is_a_504(sqlite_client):
    head = sqlite_client.lianxin.app.max_position()
    body = problem(sqlite_client.get("/wallboard", params={"min_position": head + 1000}), 504)
    assert (body["code"], body["min_position"]) == ("read-timeout", head + 1000)


def test_a_lone_surrogate_is_a_422_naming_the_field_and_stores_nothing(client):
    """JSON may escape half of a UTF-16 pair; no UTF-8 store can keep it."""
    ok(client.post("/agents", json={"employee_no": "7002", "name": "Li", "team": "A"}), 201)
    head = client.lianxin.app.max_position()
    body = problem(client.post("/calls", content=b'{"external_id": "s-1", '
                                                  b'"dialed_number": "95598", "trunk": "\\ud800"}',
                               headers={"content-type": "application/json"}), 422)
    assert body["field"] == "trunk" and "surrogate" in body["detail"]
    body = problem(client.post("/agents/7002/not-ready",
                               content=b'{"reason": "lunch \\udfff"}',
                               headers={"content-type": "application/json"}), 422)
    assert body["field"] == "reason"
    assert client.lianxin.app.max_position() == head
    # A valid pair (U+1F600) is text like any other.
    ok(client.post("/calls", content=b'{"external_id": "s-2", "dialed_number": "95598", '
                                      b'"trunk": "\\ud83d\\ude00"}',
                   headers={"content-type": "application/json"}), 201)
