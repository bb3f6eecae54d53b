"""Every action and view over HTTP (problem+json on bad input, nothing stored
changed) and on the command line (non-zero exit naming the field)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from tests.api.conftest import make_client, ok

AT = "2026-11-23T09:00:00+08:00"


@pytest.fixture
def client(lx):
    yield from make_client(lx)


def _problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if field is not None:
        assert field in json.dumps(body), body
    return body


def _count(client) -> int:
    return client.lianxin.app.max_position()


def test_work_order_follow_through_over_http(client):
    fault = {"type": "fault_repair", "summary": "no power", "location": {"transformer": "T-1"},
             "occurred_at": AT}
    first = ok(client.post("/work-orders", json=fault, headers={"Idempotency-Key": "h1"}), 201)
    later = {**fault, "occurred_at": "2026-11-23T09:10:00+08:00"}
    merged = ok(client.post("/work-orders", json=later, headers={"Idempotency-Key": "h2"}), 201)
    assert merged["aggregate_id"] == first["aggregate_id"]
    assert merged["result"]["outcome"] == "merged"
    wo = first["aggregate_id"]
    tick = ok(client.post("/work-orders/timers/tick", params={"now": "2026-11-23T09:21:00+08:00"}))
    # 9:05, 9:10, 9:15, 9:20 were due: one urging standing for the four.
    assert (tick["urged"], tick["missed"], tick["escalated"]) == (1, 3, 1)
    view = ok(client.get(f"/work-orders/{wo}", params={"min_position": _count(client)}))
    assert view["urgings"] == 1 and view["missed_urgings"] == 3 and view["linked_reports"] == 1
    assert [(u["kind"], u["seq"], u["missed"]) for u in view["urging_history"]] == [
        ("urging", 4, 3), ("escalation", 4, 0)]
    assert view["links"][0]["link_id"] == "cmd:h2"
    by_number = ok(client.get(f"/work-orders/{view['number']}"))
    assert by_number["work_order_id"] == wo
    box = ok(client.get("/work-orders/inbox", params={"now": "2026-11-23T09:21:00+08:00"}))
    assert [o["work_order_id"] for o in box["overdue"]] == [wo]
    assert ok(client.get("/work-orders/urgings"))[0]["work_order_id"] == wo
    ok(client.post(f"/work-orders/{wo}/pause", json={"reason": "no access", "occurred_at": AT}))
    ok(client.post(f"/work-orders/{wo}/resume", json={"occurred_at": "2026-11-23T09:30:00+08:00"}))
    split = ok(client.post(f"/work-orders/{wo}/split", json={"link_id": "cmd:h2"}))
    assert split["aggregate_id"] != wo
    status = ok(client.get(f"/work-orders/status/{view['number']}"))
    assert status == {"number": view["number"], "status": "open"}


def test_referrals_callbacks_outages_and_handovers_over_http(client):
    ref = ok(client.post("/work-orders/referrals", json={
        "type": "complaint", "summary": "street light out", "partner": "12345",
        "reference": "SZ-2026-0001", "occurred_at": AT}), 201)
    wo = ref["aggregate_id"]
    ok(client.post(f"/work-orders/{wo}/refer", json={"partner": "119", "reference": "F-77"}))
    ok(client.post(f"/work-orders/{wo}/reply", json={"partner": "12345", "text": "fixed"}))
    ok(client.post(f"/work-orders/{wo}/resolve", json={"resolution": "fixed",
                                                       "occurred_at": "2026-11-23T10:00:00+08:00"}))
    ok(client.post(f"/work-orders/{wo}/callback-attempts", json={
        "result": "reached", "satisfaction": 5, "occurred_at": "2026-11-23T15:00:00+08:00"}))
    view = ok(client.get(f"/work-orders/{wo}", params={"min_position": _count(client)}))
    assert (view["referral_partner"], view["referral_reference"]) == ("12345", "SZ-2026-0001")
    assert view["callback_state"] == "reached" and view["satisfaction"] == 5
    ok(client.post("/outages", json={"reference": "TD-1", "kind": "planned",
                                     "areas": ["feeder:F12"], "start": "2026-11-24T08:00:00+08:00",
                                     "end": "2026-11-24T18:00:00+08:00", "reason": "upgrade",
                                     "occurred_at": AT}), 201)
    board = ok(client.get("/outages", params={"now": AT, "min_position": _count(client)}))
    assert board[0]["reference"] == "TD-1" and board[0]["short_notice"] is True
    assert ok(client.get("/outages", params={"area": "F12", "now": AT}))[0]["reference"] == "TD-1"
    ok(client.post("/outages/TD-1/revise", json={"start": "2026-11-24T08:00:00+08:00",
                                                 "end": "2026-11-24T20:00:00+08:00",
                                                 "reason": "more work"}))
    ho = ok(client.post("/handovers", json={"from_shift": "day", "to_shift": "night",
                                            "occurred_at": "2026-11-23T20:00:00+08:00"}), 201)
    ok(client.post(f"/handovers/{ho['aggregate_id']}/acknowledge", json={"by": "2001"}))
    got = ok(client.get(f"/handovers/{ho['aggregate_id']}",
                        params={"min_position": _count(client)}))
    assert got["acknowledged_by"] == "2001" and got["snapshot"]["open_orders"] == []
    assert ok(client.get("/handovers/snapshot"))["open_calls"] == []
    assert len(ok(client.get("/handovers"))) == 1
    assert ok(client.get("/work-orders/callbacks")) == []


def test_a_handover_takes_its_lists_from_the_read_models_never_from_the_client(client):
    wo = ok(client.post("/work-orders", json={"type": "complaint", "summary": "s",
                                              "occurred_at": AT}), 201)["aggregate_id"]
    before = _count(client)
    for name in ("open_orders", "overdue_orders", "open_calls", "pending_callbacks"):
        body = _problem(client.post("/handovers", json={
            "from_shift": "day", "to_shift": "night", name: ["FAKE"]}), 422, name)
        assert body["field"] == name
    assert _count(client) == before
    # Without lists the server fills them in: the real open order is there.
    ho = ok(client.post("/handovers", json={"from_shift": "day", "to_shift": "night",
                                            "occurred_at": "2026-11-23T10:00:00+08:00"}), 201)
    got = ok(client.get(f"/handovers/{ho['aggregate_id']}",
                        params={"min_position": _count(client)}))
    number = ok(client.get(f"/work-orders/{wo}"))["number"]
    assert got["snapshot"]["open_orders"] == [number]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["CreateHandoverBody"]
    assert "open_orders" not in schema["properties"]


def test_callbacks_are_reassigned_and_outage_answers_listed_over_http(client):
    wo = ok(client.post("/work-orders", json={"type": "complaint", "summary": "s",
                                              "occurred_at": AT},
                        headers={"X-Actor": "1001"}), 201)["aggregate_id"]
    ok(client.post(f"/work-orders/{wo}/resolve", json={"resolution": "done"}))
    ok(client.post(f"/work-orders/{wo}/reassign-callback", json={"assignee": "1002"}))
    mine = ok(client.get("/work-orders/callbacks", params={"agent": "1002",
                                                           "min_position": _count(client)}))
    assert [r["work_order_id"] for r in mine] == [wo]
    _problem(client.post(f"/work-orders/{wo}/reassign-callback", json={"assignee": "1002"}),
             409)
    _problem(client.post(f"/work-orders/{wo}/reassign-callback", json={}), 422, "assignee")
    ok(client.post("/outages", json={"reference": "TD-8", "kind": "temporary",
                                     "areas": ["feeder:F8"], "start": AT,
                                     "end": "2026-11-23T18:00:00+08:00", "reason": "fault",
                                     "occurred_at": AT}), 201)
    answer = ok(client.post("/work-orders", json={
        "type": "fault_repair", "summary": "dark", "location": {"feeder": "F8"},
        "occurred_at": "2026-11-23T10:00:00+08:00"}), 201)
    assert answer["result"]["outcome"] == "outage_information" and answer["new_events"] == 1
    listed = ok(client.get("/outages/TD-8/enquiries", params={"min_position": _count(client)}))
    assert listed["enquiries"] == 1 and listed["answered"][0]["area"] == "feeder:f8"
    _problem(client.get("/outages/TD-404/enquiries"), 404)


def test_bad_input_is_a_problem_and_changes_nothing(client):
    wo = ok(client.post("/work-orders", json={"type": "complaint", "summary": "s",
                                              "occurred_at": AT}), 201)["aggregate_id"]
    before = _count(client)
    _problem(client.post("/work-orders/referrals", json={
        "type": "complaint", "summary": "s", "partner": "999", "reference": "x"}), 422, "partner")
    _problem(client.post("/outages", json={"reference": "TD-2", "kind": "sometimes",
                                           "areas": ["feeder:F1"], "start": AT, "end": AT,
                                           "reason": "r"}), 422, "kind")
    _problem(client.post("/outages", json={"reference": "TD-3", "kind": "planned",
                                           "areas": ["feeder:F1"], "start": "2026-11-24T08:00:00",
                                           "end": "2026-11-24T09:00:00", "reason": "r"}),
             422, "start")
    _problem(client.post(f"/work-orders/{wo}/resume", json={}), 409)
    _problem(client.post(f"/work-orders/{uuid4()}/pause", json={"reason": "r"}), 404)
    _problem(client.post(f"/work-orders/{wo}/split", json={"link_id": "nope"}), 404, "link_id")
    _problem(client.post(f"/work-orders/{wo}/callback-attempts", json={"result": "maybe"}), 409)
    _problem(client.post(f"/work-orders/{wo}/pause", json={"reason": "r", "colour": "red"}),
             422, "colour")
    _problem(client.post("/outages/TD-404/cancel", json={"reason": "r"}), 404)
    _problem(client.post(f"/handovers/{uuid4()}/acknowledge", json={"by": "x"}), 404)
    _problem(client.get("/work-orders/inbox", params={"now": "2026-11-23T09:00:00"}), 422, "now")
    _problem(client.post("/work-orders/timers/tick", params={"now": "2026-11-23T09:00:00"}),
             422, "now")
    _problem(client.get("/work-orders/does-not-exist"), 404)
    assert _count(client) == before


def test_the_command_line(tmp_path: Path, monkeypatch):
    from lianxin.cli import app

    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "cli-key")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> dict | str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return json.loads(result.stdout) if code == 0 else result.output

    run("outages", "publish", "--reference", "TD-5", "--area", "feeder:F5",
        "--start", "2026-11-23T08:00:00+08:00", "--end", "2026-11-23T18:00:00+08:00",
        "--reason", "upgrade", "--at", "2026-11-10T08:00:00+08:00")
    answer = run("work-orders", "intake", "--type", "fault_repair", "--summary", "dark",
                 "--location", "feeder=F5", "--at", AT)
    assert answer["aggregate_id"] is None
    assert answer["result"]["outcome"] == "outage_information"
    opened = run("work-orders", "intake", "--type", "fault_repair", "--summary", "dark",
                 "--location", "feeder=F6", "--customer", "phone=13800000000", "--at", AT,
                 "--key", "cli-1")
    wo = opened["aggregate_id"]
    assert run("work-orders", "tick", "--now", "2026-11-23T09:06:00+08:00")["urged"] == 1
    assert run("work-orders", "tick", "--now", "2026-11-23T09:06:00+08:00")["urged"] == 0
    inbox = run("work-orders", "inbox", "--now", "2026-11-23T09:06:00+08:00")
    assert [o["work_order_id"] for o in inbox["overdue"]] == [wo]
    assert run("work-orders", "show", wo)["urgings"] == 1
    number = run("work-orders", "show", wo)["number"]
    assert run("work-orders", "status", number)["status"] == "open"
    run("work-orders", "pause", wo, "--reason", "waiting")
    run("work-orders", "resume", wo)
    assert run("outages", "list", "--now", AT)[0]["reference"] == "TD-5"
    ho = run("handover", "create", "--from", "day", "--to", "night", "--at", AT)
    assert ho["open_orders"] and ho["overdue_orders"] == []
    run("handover", "acknowledge", ho["handover_id"], "--by", "2001")
    assert run("handover", "list")[0]["acknowledged_by"] == "2001"
    shown = run("handover", "show", ho["handover_id"])
    assert shown["acknowledged_by"] == "2001" and shown["snapshot"]["open_orders"] == [number]
    assert run("handover", "snapshot", "--now", AT)["open_orders"] == [number]
    assert "handover_id" in run("handover", "show", "nope", code=2)
    assert "not found" in run("handover", "show", str(uuid4()), code=1)
    assert run("outages", "enquiries", "TD-5")["enquiries"] == 1
    # Errors exit non-zero and name the field or option.
    assert "--location" in run("work-orders", "intake", "--type", "fault_repair",
                               "--summary", "x", "--location", "F5", code=2)
    assert "kind" in run("outages", "publish", "--reference", "TD-6", "--kind", "often",
                         "--area", "feeder:F5", "--start", AT, "--end", AT, "--reason", "r",
                         code=1)
    assert "--now" in run("work-orders", "tick", "--now", "2026-11-23T09:06:00", code=2)
    assert "work_order_id" in run("work-orders", "pause", "not-an-id", "--reason", "r", code=2)
    run("work-orders", "resolve", wo, "--resolution", "fixed")
    assert "satisfaction" in run("work-orders", "callback", wo, "--result", "busy",
                                 "--satisfaction", "4", code=1)
    assert run("work-orders", "callback", wo, "--result", "busy", "--reason", "engaged",
               )["new_events"] == 1
    assert run("work-orders", "callbacks")[0]["callback_attempts"] == 1
    run("work-orders", "reassign-callback", wo, "--to", "1002", "--team", "vip")
    (task,) = run("work-orders", "callbacks", "--agent", "1002")
    assert (task["work_order_id"], task["callback_team"]) == (wo, "vip")
    assert "already assigned" in run("work-orders", "reassign-callback", wo, "--to", "1002",
                                     code=1)
