"""State as of a past instant, rebuilt from the events: the wallboard as of
t equals what the live wallboard showed at t."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from commands import messages as m
from domain.errors import InvalidValue, NotFound
from queries.point_in_time import agent_as_of, call_as_of, wallboard_as_of, work_order_as_of
from queries.wallboard import wallboard
from tests.audit.scenario import agents, at


def _steps(svc):
    """A busy quarter hour, as (time, command) in time order."""
    ids = {}

    def offer(key, t):
        ids[key] = svc.handle(m.OfferCall(external_id=key, dialed_number="95598",
                                          occurred_at=at(t))).aggregate_id

    yield 5, lambda: agents(svc, "1001", "1002", t=5)
    yield 10, lambda: offer("a", 10)
    yield 11, lambda: svc.handle(m.QueueCall(call_id=ids["a"], queue="power", occurred_at=at(11)))
    yield 12, lambda: offer("b", 12)
    yield 13, lambda: svc.handle(m.QueueCall(call_id=ids["b"], queue="power", occurred_at=at(13)))
    yield 14, lambda: offer("c", 14)
    yield 15, lambda: svc.handle(m.QueueCall(call_id=ids["c"], queue="water", occurred_at=at(15)))
    yield 20, lambda: svc.handle(m.AlertAgent(call_id=ids["a"], employee_no="1001",
                                              occurred_at=at(20)))
    yield 24, lambda: svc.handle(m.AnswerCall(call_id=ids["a"], occurred_at=at(24)))
    # Late: reported at 28 (after the answer at 24), but the caller arrived at 23.
    yield 28, lambda: (offer("late-a", 23), svc.handle(m.QueueCall(
        call_id=ids["late-a"], queue="power", occurred_at=at(23.5))))
    yield 40, lambda: svc.handle(m.EndCall(call_id=ids["b"], hung_up_by="caller",
                                           occurred_at=at(40)))
    yield 45, lambda: svc.handle(m.MakeNotReady(employee_no="1002", reason="break",
                                                occurred_at=at(45)))
    yield 70, lambda: svc.handle(m.TransferCall(call_id=ids["a"], kind="blind",
                                                target_type="queue", target="water",
                                                occurred_at=at(70)))
    yield 90, lambda: svc.handle(m.EndCall(call_id=ids["c"], hung_up_by="caller",
                                           occurred_at=at(90)))
    yield 92, lambda: svc.handle(m.EndCall(call_id=ids["late-a"], hung_up_by="caller",
                                           occurred_at=at(92)))
    yield 95, lambda: svc.handle(m.MakeReady(employee_no="1001", occurred_at=at(95)))
    yield 300, lambda: svc.handle(m.MakeReady(employee_no="1002", occurred_at=at(300)))
    ids_holder.update(ids)


ids_holder: dict = {}


def test_wallboard_as_of_t_equals_the_live_wallboard_at_t(lianxin):
    runner = lianxin.read_models()
    seen = {}
    moments = [9, 12.5, 16, 22, 30, 44, 60, 80, 94, 200, 400]
    pending = list(moments)
    for t, step in _steps(lianxin.commands):
        while pending and pending[0] < t:
            runner.run_once()
            seen[pending[0]] = wallboard(lianxin, at=at(pending[0]))
            pending.pop(0)
        step()
    runner.run_once()
    for moment in pending:
        seen[moment] = wallboard(lianxin, at=at(moment))
    # Later events exist now; the reconstruction must ignore them.
    assert lianxin.app.max_position() > 20
    for moment, live in seen.items():
        assert wallboard_as_of(lianxin, at(moment)) == live, moment
    # The pictures differ over time (so the comparison is not of empty boards).
    assert seen[16]["totals"]["waiting"] == 3 and seen[30]["totals"]["waiting"] == 3
    assert seen[44]["totals"]["abandoned"] == 1 and seen[80]["totals"]["waiting"] == 3
    assert seen[44]["agents"]["by_state"]["not_ready"] == 0
    assert seen[60]["agents"]["by_state"]["not_ready"] == 1
    # Who was waiting and which agent was in which state, not only counts;
    # the late caller is among them from the instant it arrived.
    ids = ids_holder
    assert [(w["call_id"], w["queue"], w["since"], w["wait_s"])
            for w in seen[30]["waiting_calls"]] == [
        (str(ids["b"]), "power", at(13).isoformat(timespec="microseconds"), 17.0),
        (str(ids["c"]), "water", at(15).isoformat(timespec="microseconds"), 15.0),
        (str(ids["late-a"]), "power", at(23.5).isoformat(timespec="microseconds"), 6.5)]
    assert [w["call_id"] for w in seen[80]["waiting_calls"]] == [
        str(ids["c"]), str(ids["late-a"]), str(ids["a"])]  # a, transferred to water at 70
    assert [(a["employee_no"], a["state"], a["reason"], a["since"])
            for a in seen[60]["agents"]["list"]] == [
        ("1001", "on_call", None, at(24).isoformat(timespec="microseconds")),
        ("1002", "not_ready", "break", at(45).isoformat(timespec="microseconds"))]
    assert [a["state"] for a in seen[94]["agents"]["list"]] == ["wrap_up", "not_ready"]
    assert seen[94]["waiting_calls"][0]["call_id"] == str(ids["a"])


def test_call_agent_and_work_order_as_of(lianxin):
    for _t, step in _steps(lianxin.commands):
        step()
    a = ids_holder["a"]
    assert call_as_of(lianxin, a, at(12))["state"]["state"] == "queued"
    at30 = call_as_of(lianxin, a, at(30))
    assert at30["state"]["state"] == "connected" and at30["state"]["queue"] == "power"
    assert at30["later_events"] > 0
    assert call_as_of(lianxin, a, at(80))["state"]["queue"] == "water"
    assert agent_as_of(lianxin, "1001", at(30))["state"]["state"] == "on_call"
    assert agent_as_of(lianxin, "1001", at(80))["state"]["state"] == "wrap_up"
    assert agent_as_of(lianxin, "1002", at(100))["state"]["reason"] == "break"
    with pytest.raises(NotFound):
        call_as_of(lianxin, a, at(9))  # not offered yet
    with pytest.raises(NotFound):
        agent_as_of(lianxin, "9999", at(100))
    wo = lianxin.commands.handle(m.OpenWorkOrder(type="complaint", summary="late repair",
                                                 occurred_at=at(500))).aggregate_id
    lianxin.commands.handle(m.DispatchWorkOrder(work_order_id=wo, department="ops",
                                                occurred_at=at(600)))
    assert work_order_as_of(lianxin, wo, at(550))["state"]["status"] == "open"
    assert work_order_as_of(lianxin, wo, at(650))["state"]["status"] == "dispatched"


def test_http_as_of_routes(lianxin):
    from lianxin.http import create_app

    for _t, step in _steps(lianxin.commands):
        step()
    client = TestClient(create_app(lianxin))
    reader = {"headers": {"X-Actor": "qa-3"}, "params": {"reason": "complaint 12"}}
    board = client.get(f"/as-of/{at(16).isoformat()}/wallboard", **reader)
    assert board.status_code == 200 and board.json()["totals"]["waiting"] == 3
    call = client.get(f"/as-of/{at(30).isoformat()}/calls/{ids_holder['a']}", **reader)
    assert call.status_code == 200 and call.json()["state"]["state"] == "connected"
    agent = client.get(f"/as-of/{at(30).isoformat()}/agents/1001", **reader)
    assert agent.json()["state"]["state"] == "on_call"
    naive = client.get("/as-of/2026-11-23T09:00:00/wallboard", **reader)
    assert naive.status_code == 422 and naive.json()["field"] == "timestamp"
    bad = client.get("/as-of/yesterday/calls/" + str(ids_holder["a"]), **reader)
    assert bad.status_code == 422
    early = client.get(f"/as-of/{at(1).isoformat()}/calls/{ids_holder['a']}", **reader)
    assert early.status_code == 404
    assert early.headers["content-type"] == "application/problem+json"
    verify = client.get("/audit/verify").json()
    assert verify["ok"] is True and verify["last"] == lianxin.app.max_position()
    assert client.get("/audit/verify", params={"from": 0}).status_code == 422
    with pytest.raises(InvalidValue):
        wallboard_as_of(lianxin, at(16).replace(tzinfo=None))


def test_past_state_reads_are_named_and_recorded_like_timelines(lianxin):
    """Reading a past state needs a reader and a reason; the read is recorded
    in the subject's access log (who, when, which instant; the reason as pii);
    a refused or failed read leaves no record."""
    from eventsourcing.application import AggregateNotFoundError

    from domain.access_log import access_log_id_for
    from lianxin.http import create_app

    for _t, step in _steps(lianxin.commands):
        step()
    client = TestClient(create_app(lianxin))
    a = str(ids_holder["a"])
    when = at(30).isoformat()
    for path in (f"/as-of/{when}/calls/{a}", f"/as-of/{when}/agents/1001",
                 f"/as-of/{when}/wallboard"):
        anonymous = client.get(path, params={"reason": "QA"})
        assert anonymous.status_code == 422 and anonymous.json()["field"] == "X-Actor", path
        no_reason = client.get(path, headers={"X-Actor": "qa-3"})
        assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason", path
    early = client.get(f"/as-of/{at(1).isoformat()}/calls/{a}", params={"reason": "QA"},
                       headers={"X-Actor": "qa-3"})
    assert early.status_code == 404
    with pytest.raises(AggregateNotFoundError):  # nothing recorded so far
        lianxin.app.repository.get(access_log_id_for("call", a))
    for path, subject in ((f"/as-of/{when}/calls/{a}", ("call", a)),
                          (f"/as-of/{when}/agents/1001", ("agent", "1001")),
                          (f"/as-of/{when}/wallboard", ("center", "wallboard"))):
        ok = client.get(path, params={"reason": "complaint 12"}, headers={"X-Actor": "qa-3"})
        assert ok.status_code == 200 and ok.json()["access_recorded_at_position"] > 0, path
        log = lianxin.app.repository.get(access_log_id_for(*subject))
        assert [(x["actor"], x["resource_kind"], x["resource"]) for x in log.accesses] == [
            ("qa-3", "state", when)], path
    wo = lianxin.commands.handle(m.OpenWorkOrder(type="complaint", summary="late repair",
                                                 occurred_at=at(500))).aggregate_id
    got = client.get(f"/as-of/{at(550).isoformat()}/work-orders/{wo}",
                     params={"reason": "audit"}, headers={"X-Actor": "qa-4"})
    assert got.status_code == 200 and got.json()["state"]["status"] == "open"
    log = lianxin.app.repository.get(access_log_id_for("work_order", str(wo)))
    assert [x["actor"] for x in log.accesses] == ["qa-4"]
    # The call's access listing shows the as-of read, with its reason.
    listing = client.get(f"/calls/{a}/accesses", params={"reason": "regulator"},
                         headers={"X-Actor": "dpo"}).json()["accesses"]
    assert [(x["actor"], x["resource_kind"], x["reason"]) for x in listing] == [
        ("qa-3", "state", "complaint 12")]


def test_snapshots_give_the_same_wallboards_even_with_late_events(lianxin):
    from queries import wallboard_snapshots
    from queries.audit_trail import chain_source
    from commands.event_store import occurred_us

    for _t, step in _steps(lianxin.commands):
        step()
    # Recorded last, but it happened at 50 s: a late event.
    late = lianxin.commands.handle(m.OfferCall(external_id="late", dialed_number="95598",
                                               occurred_at=at(50))).aggregate_id
    lianxin.commands.handle(m.QueueCall(call_id=late, queue="power", occurred_at=at(51)))
    assert wallboard_snapshots.build(lianxin, every=4) >= 5
    moments = [9, 12.5, 16, 22, 30, 44, 52, 60, 80, 94, 200, 400]
    for moment in moments:
        plain = wallboard_as_of(lianxin, at(moment), use_snapshots=False)
        assert wallboard_as_of(lianxin, at(moment)) == plain, moment
    # c and both late callers (late-a reported at 28 for 23, late at the end for 50)
    assert wallboard_as_of(lianxin, at(60))["totals"]["waiting"] == 3
    src = chain_source(lianxin)
    try:
        used = wallboard_snapshots.usable(lianxin, occurred_us(at(94).isoformat()), src)
    finally:
        src.close()
    assert used is not None and used[0] >= 20  # the fast path was taken


def test_past_states_show_no_personal_data(lianxin):
    """Nothing of any event's pii appears in a past state, not even where the
    aggregate copies a value out of pii into memory (an outbound call's
    dialed number, an agent's name, whichever the domain keeps)."""
    from domain.agent import agent_id_for
    from queries.replay import stored_events

    svc = lianxin.commands
    agents(svc, "1001", t=5)
    out = svc.handle(m.OfferCall(external_id="out-1", dialed_number="13912345678",
                                 caller_number="95598", direction="outbound",
                                 occurred_at=at(10))).aggregate_id
    inbound = svc.handle(m.OfferCall(external_id="in-1", dialed_number="95598",
                                     caller_number="13800000001",
                                     occurred_at=at(11))).aggregate_id
    for aggregate_id, state in ((out, call_as_of(lianxin, out, at(20))),
                                (inbound, call_as_of(lianxin, inbound, at(20))),
                                (agent_id_for("1001"), agent_as_of(lianxin, "1001", at(20)))):
        personal = {str(v) for _, e in stored_events(lianxin.app, aggregate_id)
                    for v in (getattr(e, "pii", None) or {}).values() if v}
        assert personal or aggregate_id == agent_id_for("1001")
        assert not [v for v in personal if v in str(state)], (state, personal)
    assert call_as_of(lianxin, out, at(20))["state"]["direction"] == "outbound"
