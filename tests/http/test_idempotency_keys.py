"""An Idempotency-Key is bound to the request that first used it: a retry of
that request is a duplicate, any other request under the key is a 422
problem that executes nothing, across restarts and API processes, on SQLite
and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from lianxin.http import create_app
from lianxin.wiring import build
from tests.api.conftest import make_client, ok

PROBLEM = "application/problem+json"
WO = {"type": "fault_repair", "summary": "no power", "location": {"area": "east"}}


@pytest.fixture
def client(lianxin):
    yield from make_client(lianxin)


def stored(lx: Any) -> list[Any]:
    return lx.app.recorder.select_notifications(start=1, limit=1_000_000)


def event_count(lx: Any) -> int:
    return len(stored(lx))


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def reused(response: Any, field: str = "Idempotency-Key") -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "https://lianxin.dev/problems/idempotency-key-reused"
    assert (body["status"], body["code"], body["field"]) == (422, "idempotency-key-reused",
                                                             field)
    assert body["title"] == f"{field} is already used" and field in body["detail"]
    return body


def agent(client: Any, no: str) -> None:
    ok(client.post("/agents", json={"employee_no": no, "name": "Li Na", "team": "A"}), 201)
    ok(client.post(f"/agents/{no}/login", json={"endpoint": f"PJSIP/{no}"}))


def state(client: Any, no: str) -> tuple[str, str | None]:
    head = client.lianxin.app.max_position()
    board = ok(client.get(f"/agents/{no}", params={"min_position": head}))
    return board["state"], board["reason"]


def test_a_retry_of_the_same_request_is_a_duplicate(client):
    agent(client, "1001")
    first = ok(client.post("/agents/1001/not-ready", json={"reason": "break"},
                           headers=key("k-1")))
    count = event_count(client.lianxin)
    # The same JSON, written in another order and spacing, is the same request.
    again = ok(client.post("/agents/1001/not-ready", content=b'{ "reason" : "break" }',
                           headers={**key("k-1"), "content-type": "application/json"}))
    assert (first["new_events"], again["new_events"], again["duplicate"]) == (1, 0, True)
    assert again["position"] == first["position"] and event_count(client.lianxin) == count
    # A retried creation answers 200 with the same aggregate.
    opened = ok(client.post("/work-orders", json=WO, headers=key("wo-1")), 201)
    retried = ok(client.post("/work-orders", json=dict(reversed(WO.items())),
                             headers=key("wo-1")), 200)
    assert retried["duplicate"] and retried["aggregate_id"] == opened["aggregate_id"]


def test_the_same_key_with_another_body_is_refused_and_changes_nothing(client):
    agent(client, "1002")
    ok(client.post("/agents/1002/not-ready", json={"reason": "break"}, headers=key("k-2")))
    opened = ok(client.post("/work-orders", json=WO, headers=key("wo-2")), 201)
    wo_id = UUID(opened["aggregate_id"])
    version = client.lianxin.app.repository.get(wo_id).version
    count = event_count(client.lianxin)
    reused(client.post("/agents/1002/not-ready", json={"reason": "meal"}, headers=key("k-2")))
    # A field added to the body is another body too.
    reused(client.post("/agents/1002/not-ready", json={"reason": "break", "actor": "x"},
                       headers=key("k-2")))
    reused(client.post("/work-orders", json={**WO, "summary": "sparks"}, headers=key("wo-2")))
    assert event_count(client.lianxin) == count
    assert state(client, "1002") == ("not_ready", "break")
    assert client.lianxin.app.repository.get(wo_id).version == version
    # The key in the body (command_id) is held to the same rule, named as sent.
    body = {"reason": "training", "command_id": "k-body"}
    ok(client.post("/agents/1002/not-ready", json=body))
    assert ok(client.post("/agents/1002/not-ready", json=body))["duplicate"]
    reused(client.post("/agents/1002/not-ready", json={**body, "reason": "meal"}),
           field="command_id")


def test_the_same_key_on_another_path_is_refused(client):
    agent(client, "1003")
    agent(client, "1004")
    ok(client.post("/agents/1003/not-ready", json={"reason": "break"}, headers=key("k-3")))
    count, other = event_count(client.lianxin), state(client, "1004")
    # Another agent: without the fingerprint this would have run as a new command.
    reused(client.post("/agents/1004/not-ready", json={"reason": "break"}, headers=key("k-3")))
    # Another endpoint of the same agent: without it, a silent duplicate.
    reused(client.post("/agents/1003/logout", json={"reason": "break"}, headers=key("k-3")))
    # A work-order route (lianxin.http.work_orders) shares the key space.
    outage = {"reference": "O-1", "kind": "planned", "areas": ["east"], "reason": "works",
              "start": "2026-12-01T08:00:00+08:00", "end": "2026-12-01T12:00:00+08:00"}
    reused(client.post("/outages", json=outage, headers=key("k-3")))
    assert event_count(client.lianxin) == count
    assert (state(client, "1003"), state(client, "1004")) == (("not_ready", "break"), other)


def test_a_default_the_server_fills_in_does_not_make_a_retry_differ(client):
    """occurred_at defaults to now: it must not be part of what is compared."""
    agent(client, "1005")
    first = ok(client.post("/agents/1005/not-ready", json={"reason": "break"},
                           headers=key("k-5")))
    again = ok(client.post("/agents/1005/not-ready", json={"reason": "break"},
                           headers=key("k-5")))
    assert (first["new_events"], again["duplicate"]) == (1, True)
    # ...while an occurred_at the client sends is part of it.
    reused(client.post("/agents/1005/not-ready", headers=key("k-5"),
                       json={"reason": "break", "occurred_at": "2026-11-23T10:00:00+08:00"}))


def test_a_key_is_remembered_across_a_restart(settings):
    lx = build(settings)
    try:
        for c in make_client(lx):
            agent(c, "1006")
            ok(c.post("/agents/1006/not-ready", json={"reason": "break"}, headers=key("k-6")))
    finally:
        lx.close()
    lx = build(settings)  # a new API process on the same event store
    try:
        for c in make_client(lx):
            count = event_count(lx)
            again = ok(c.post("/agents/1006/not-ready", json={"reason": "break"},
                              headers=key("k-6")))
            assert again["duplicate"]
            reused(c.post("/agents/1006/not-ready", json={"reason": "meal"},
                          headers=key("k-6")))
            assert event_count(lx) == count
    finally:
        lx.close()


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
@pytest.mark.parametrize("same_body", [False, True], ids=["different", "identical"])
def test_racing_first_uses_of_one_key(settings, processes, same_body):
    """Four clients send the first use of a key at the same moment, through
    one API process or two (two apps, each with its own connections to the
    one event store): one request executes, the others are refused (or are
    duplicates when they are the same request)."""
    nodes = [build(settings) for _ in range(processes)]
    senders = 4
    try:
        apps = [create_app(lx) for lx in nodes]
        clients = [TestClient(apps[i % processes], raise_server_exceptions=False)
                   for i in range(senders)]
        # FastAPI builds a route's state on its first request; the apps share
        # the module-level routers, so let that happen one at a time.
        for c in clients:
            assert c.post("/work-orders", json={}).status_code == 422
        rounds = 6
        for n in range(rounds):
            bodies = [{**WO, "summary": "no power" if same_body else f"report {i}"}
                      for i in range(senders)]
            barrier = threading.Barrier(senders)
            answers: list[Any] = [None] * senders

            def send(i: int) -> None:
                barrier.wait()
                answers[i] = clients[i].post("/work-orders", json=bodies[i],
                                             headers=key(f"race-{n}"))

            threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            codes = sorted(a.status_code for a in answers)
            expected = sorted([201] + [200 if same_body else 422] * (senders - 1))
            assert codes == expected, [a.text for a in answers]
            if same_body:
                assert sum(a.json()["duplicate"] for a in answers) == senders - 1
            else:
                for a in answers:
                    if a.status_code == 422:
                        reused(a)
        opened = [n for n in stored(nodes[0]) if n.topic.endswith("WorkOrder.Opened")]
        assert len(opened) == rounds  # one work order per key
    finally:
        for lx in nodes:
            lx.close()


def test_claims_arriving_together_are_each_answered(client):
    """The store writes concurrent claims together; each caller still gets
    the fingerprint stored for its own key, the first one for a shared key."""
    store = client.app.state.idempotency
    barrier = threading.Barrier(16)
    answers: dict[int, str] = {}

    def claim(i: int) -> None:
        barrier.wait()
        answers[i] = store.record("shared" if i % 2 else f"own-{i}", f"fp-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    shared = {answers[i] for i in range(1, 16, 2)}
    assert len(shared) == 1 and shared <= {f"fp-{i}" for i in range(1, 16, 2)}
    assert all(answers[i] == f"fp-{i}" for i in range(0, 16, 2))
    assert store.record("shared", "fp-late") in shared


async def test_telephony_actions_share_the_rule(sqlite_lianxin):
    """A supervisor's hang-up sent under the key of an earlier hold used to
    answer ok and do nothing; now it is refused, and the call goes on."""
    from tests.telephony.test_stasis_control import connected_call

    lx = sqlite_lianxin
    async with connected_call(lx, "1001") as (s, http, ch, call):
        ok(await http.post(f"/telephony/calls/{call.id}/hold", headers=key("tk-1")))
        ok(await http.post(f"/telephony/calls/{call.id}/hold", headers=key("tk-1")))
        r = await http.post(f"/telephony/calls/{call.id}/hangup", headers=key("tk-1"),
                            json={"supervisor_id": "sup-1"})
        reused(r)
        assert s.call(ch).state.value == "held"  # not ended
        s.sim.hangup(ch)
        await s.call_state(ch, "ended")


def test_an_overlong_key_is_refused_before_anything_runs(client):
    agent(client, "1007")
    count = event_count(client.lianxin)
    r = client.post("/agents/1007/not-ready", json={"reason": "break"}, headers=key("k" * 256))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert (r.json()["code"], r.json()["field"]) == ("invalid-value", "Idempotency-Key")
    assert event_count(client.lianxin) == count
    ok(client.post("/agents/1007/not-ready", json={"reason": "break"}, headers=key("k" * 255)))


def test_openapi_documents_the_refusal(sqlite_lianxin):
    for c in make_client(sqlite_lianxin):
        spec = ok(c.get("/openapi.json"))
    for path in ("/agents/{employee_no}/not-ready", "/work-orders/{work_order_id}/pause",
                 "/telephony/calls/{call_id}/hold"):
        answer = spec["paths"][path]["post"]["responses"]["422"]
        assert "idempotency-key-reused" in answer["description"], path
        assert answer["content"][PROBLEM]["schema"]["$ref"] == "#/components/schemas/Problem"


def test_a_key_with_a_control_character_is_refused_and_fails_nobody_else(client):
    """NUL cut a key short in SQLite's JSON functions (a false 'already used'
    for the shorter key later) and made PostgreSQL refuse the whole batch of
    claims written with it."""
    agent(client, "1008")
    count = event_count(client.lianxin)
    r = client.post("/agents/1008/not-ready", json={"reason": "break", "command_id": "a\u0000b"})
    assert r.status_code == 422 and r.json()["field"] == "command_id"
    assert event_count(client.lianxin) == count
    ok(client.post("/agents/1008/not-ready", json={"reason": "break", "command_id": "a"}))

    # A claim the store refuses fails alone, not the claims written with it.
    store = client.app.state.idempotency
    backend, real = store._backend, store._backend.record
    barrier = threading.Barrier(8)

    def record(pairs):
        if any(k == "poison" for k, _ in pairs):
            raise RuntimeError("refused by the store")
        return real(pairs)

    answers: dict[int, Any] = {}

    def claim(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = store.record("poison" if i == 0 else f"fine-{i}", f"fp-{i}")
        except RuntimeError as exc:
            answers[i] = exc

    backend.record = record
    try:
        threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        backend.record = real
    assert isinstance(answers[0], RuntimeError)
    assert all(answers[i] == f"fp-{i}" for i in range(1, 8))
