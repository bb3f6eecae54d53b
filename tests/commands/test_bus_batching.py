"""The batching command bus: commands that arrive together are committed
together, yet each caller gets its own outcome or error; a failing command
leaves no trace; two writers (two CallCenter instances, as two processes
would be) racing on one aggregate never corrupt it. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from eventsourcing.persistence import OperationalError

from commands import messages as m
from commands.errors import ConcurrencyConflict
from commands.handlers import handler_for
from domain.call import Call, CallState, call_id_for
from domain.errors import InvariantViolation, NotFound
from lianxin.wiring import build

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def offer(ext: str) -> m.OfferCall:
    return m.OfferCall(external_id=ext, dialed_number="95598", caller_number="13800000000",
                       command_id=f"{ext}:offer", occurred_at=at(0))


def connected_call(svc, ext: str = "ch-1", agent: str = "1001"):
    svc.handle(m.RegisterAgent(employee_no=agent, name="Li Na", team="A",
                               skills={"power": 3}, occurred_at=at(0)))
    svc.handle(m.LogIn(employee_no=agent, endpoint=f"PJSIP/{agent}", occurred_at=at(0)))
    svc.handle(m.MakeReady(employee_no=agent, occurred_at=at(1)))
    cid = svc.handle(offer(ext)).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(5)))
    svc.handle(m.AlertAgent(call_id=cid, employee_no=agent, occurred_at=at(9)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(12)))
    return cid


def stored_events(app, aggregate_id):
    return list(app.events.get(aggregate_id))


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class Gate:
    """A handler wrapper that holds the bus's leader until released, so that
    the commands sent meanwhile queue up and form the next batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def wrap(self, handler):
        def gated(uow, cmd):
            self.entered.set()
            assert self.release.wait(10)
            return handler(uow, cmd)
        return gated


def run_in_thread(fn, *args):
    box: dict[str, object] = {}

    def target():
        try:
            box["ok"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            box["err"] = exc

    t = threading.Thread(target=target)
    t.start()
    return t, box


def test_concurrent_commands_share_one_commit_and_each_caller_gets_its_own_result(lianxin):
    svc, bus = lianxin.commands, lianxin.commands.bus
    gate = Gate()
    first = offer("first")
    leader, leader_box = run_in_thread(bus.execute, gate.wrap(handler_for(first)), first)
    assert gate.entered.wait(5)

    ghost = call_id_for("never-offered")
    cmds = [offer(f"ch-{i}") for i in range(8)]
    cmds.insert(3, m.EnterIvr(call_id=ghost, menu="main", occurred_at=at(1)))  # NotFound
    cmds.insert(6, offer("ch-0"))  # a retry of ch-0's offer: a duplicate, no new event
    commits_before = bus.commits
    threads = []
    for c in cmds:
        threads.append((c, *run_in_thread(svc.handle, c)))
        # keep arrival order (the retry must come after the original)
        wait_until(lambda n=len(threads): bus.queued == n)
    gate.release.set()
    leader.join(10)
    for _, t, _ in threads:
        t.join(10)

    assert "ok" in leader_box
    # the leader's command alone, then everything that queued behind it at once
    assert bus.commits - commits_before == 2
    outcomes = {}
    for c, _, box in threads:
        if isinstance(c, m.EnterIvr):
            assert isinstance(box.get("err"), NotFound)
            continue
        out = box["ok"]
        assert out.aggregate_id == call_id_for(c.external_id)
        outcomes.setdefault(c.external_id, []).append(out)
    positions = {o.position for outs in outcomes.values() for o in outs}
    assert positions == {lianxin.app.max_position()}  # one commit: one position
    original, retry = outcomes["ch-0"]
    assert (original.new_events, original.duplicate) == (1, False)
    assert (retry.new_events, retry.duplicate) == (0, True)
    for i in range(8):
        assert len(stored_events(lianxin.app, call_id_for(f"ch-{i}"))) == 1
    assert stored_events(lianxin.app, ghost) == []


def test_a_failing_command_in_a_batch_leaves_no_events_and_the_others_commit(lianxin):
    svc, bus = lianxin.commands, lianxin.commands.bus
    cid = connected_call(svc)
    version = lianxin.app.repository.get(cid).version

    def hold_then_crash(uow, cmd):
        # changes the call (a Held event is pending) and then fails: the
        # bus must not commit the hold, nor keep the held state in memory
        call = uow.get(Call, cmd.call_id)
        call.hold(occurred_at=at(30))
        raise RuntimeError("handler bug after a change")

    cmds = [m.StartMonitor(call_id=cid, supervisor_id="s1", mode="listen", occurred_at=at(20)),
            m.HoldCall(call_id=cid),
            m.ResumeCall(call_id=cid, occurred_at=at(31)),  # refused: the call is not held
            m.AddConferenceParty(call_id=cid, party="expert", occurred_at=at(32))]
    handlers = [handler_for(c) for c in cmds]
    handlers[1] = hold_then_crash
    results = bus.execute_many(zip(handlers, cmds))
    monitor, crash, resume, party = results
    assert isinstance(crash, RuntimeError)
    assert isinstance(resume, InvariantViolation)  # the crashed hold is not seen
    assert monitor.new_events == 1 and party.new_events == 1
    assert monitor.position == party.position == lianxin.app.max_position()

    types = [type(e).__name__ for e in stored_events(lianxin.app, cid)[version:]]
    assert types == ["MonitorStarted", "ConferencePartyJoined"]
    # the next command sees the stored state, not the half-applied hold
    out = svc.handle(m.HoldCall(call_id=cid, occurred_at=at(40)))
    assert out.new_events == 1
    assert lianxin.app.repository.get(cid).state == CallState.HELD


def test_a_store_failure_reports_to_every_caller_and_keeps_nothing(lianxin, monkeypatch):
    svc = lianxin.commands
    cid = connected_call(svc)
    before = lianxin.app.max_position()
    recorder = lianxin.app.recorder
    real_insert = recorder.insert_events

    def broken(*args, **kwargs):
        raise OperationalError("disk full")

    monkeypatch.setattr(recorder, "insert_events", broken)
    results = svc.handle_many([
        m.HoldCall(call_id=cid, occurred_at=at(20), command_id="h1"),
        m.ResumeCall(call_id=cid, occurred_at=at(21), command_id="r1"),
    ])
    assert all(isinstance(r, OperationalError) for r in results)
    assert lianxin.app.max_position() == before
    monkeypatch.setattr(recorder, "insert_events", real_insert)
    # the client retries with the same keys: applied once, from the stored state
    again = svc.handle_many([
        m.HoldCall(call_id=cid, occurred_at=at(20), command_id="h1"),
        m.ResumeCall(call_id=cid, occurred_at=at(21), command_id="r1"),
    ])
    assert [r.new_events for r in again] == [1, 1]
    assert lianxin.app.repository.get(cid).state == CallState.CONNECTED


def test_async_callers_are_batched_and_get_their_own_outcomes(lianxin):
    svc = lianxin.commands

    async def main():
        return await asyncio.gather(
            *(svc.handle_async(offer(f"aio-{i}")) for i in range(20)),
            svc.handle_async(m.EnterIvr(call_id=call_id_for("nope"), menu="main")),
            return_exceptions=True)

    commits_before = svc.bus.commits
    *offers, missing = asyncio.run(main())
    assert isinstance(missing, NotFound)
    assert [o.aggregate_id for o in offers] == [call_id_for(f"aio-{i}") for i in range(20)]
    assert all(o.new_events == 1 for o in offers)
    # submitted together from one loop: far fewer commits than commands
    assert svc.bus.commits - commits_before < 20


def test_two_call_centers_racing_on_one_call_never_corrupt_it(settings):
    """Two CallCenter instances on one database: two processes' worth of
    writers, each with its own write cache, racing on the same call."""
    a, b = build(settings), build(settings)
    try:
        cid = connected_call(a.commands)
        b.commands.handle(m.StartMonitor(call_id=cid, supervisor_id="sb", mode="listen",
                                         occurred_at=at(13)))  # b caches the call too
        n = 12
        results: dict[str, list] = {"a": [], "b": []}

        def writer(name, lx):
            for i in range(n):
                cmd = m.AddConferenceParty(call_id=cid, party=f"{name}{i}",
                                           command_id=f"{name}-{i}", occurred_at=at(20 + i))
                try:
                    results[name].append((cmd, lx.commands.handle(cmd)))
                except ConcurrencyConflict as exc:  # reported, not corrupted
                    results[name].append((cmd, exc))

        ta = threading.Thread(target=writer, args=("a", a))
        tb = threading.Thread(target=writer, args=("b", b))
        ta.start(), tb.start()
        ta.join(60), tb.join(60)

        committed = {c.party for name in results for c, r in results[name]
                     if not isinstance(r, Exception)}
        assert len(committed) >= n  # conflicts are retried: most, usually all, succeed
        fresh = build(settings)
        try:
            call = fresh.app.repository.get(cid)
            events = stored_events(fresh.app, cid)
        finally:
            fresh.close()
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        assert set(call.conference) == committed
        assert call.monitors == {"sb": "listen"}

        # each instance acts on the latest state, not on what it cached
        b.commands.handle(m.EndCall(call_id=cid, hung_up_by="caller", occurred_at=at(90)))
        with pytest.raises(InvariantViolation):
            a.commands.handle(m.AddConferenceParty(call_id=cid, party="late",
                                                   occurred_at=at(91)))
    finally:
        a.close()
        b.close()


def test_a_domain_error_from_stale_cached_state_is_retried_on_fresh_state(settings):
    a, b = build(settings), build(settings)
    try:
        a.commands.handle(m.RegisterAgent(employee_no="7", name="Wang", team="A",
                                          skills={"power": 3}, occurred_at=at(0)))
        a.commands.handle(m.LogIn(employee_no="7", endpoint="PJSIP/7", occurred_at=at(0)))
        a.commands.handle(m.MakeReady(employee_no="7", occurred_at=at(1)))
        cid = b.commands.handle(offer("stale")).aggregate_id
        b.commands.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(5)))
        # b's cache has the call queued; a rings the agent and connects it
        a.commands.handle(m.AlertAgent(call_id=cid, employee_no="7", occurred_at=at(9)))
        a.commands.handle(m.AnswerCall(call_id=cid, occurred_at=at(12)))
        # on b's stale copy a hold is refused (not connected); on fresh state it is fine
        out = b.commands.handle(m.HoldCall(call_id=cid, occurred_at=at(20)))
        assert out.new_events == 1
        assert a.app.repository.get(cid).state == CallState.HELD
    finally:
        a.close()
        b.close()


def test_a_commit_listener_cannot_deadlock_or_undo_a_commit(sqlite_lianxin):
    svc = sqlite_lianxin.commands
    seen: list[BaseException] = []

    def listener(position):
        try:
            svc.handle(offer("from-listener"))  # would wait for its own batch
        except RuntimeError as exc:
            seen.append(exc)
        raise ValueError("listener bug")

    svc.bus.on_commit(listener)
    out = svc.handle(offer("ch-1"))
    assert out.new_events == 1 and out.position == sqlite_lianxin.app.max_position()
    assert len(seen) == 1
    assert stored_events(sqlite_lianxin.app, call_id_for("from-listener")) == []


def test_a_cold_writer_loads_a_batch_in_one_query_with_the_same_results(settings, monkeypatch):
    a = build(settings)
    try:
        ids = [a.commands.handle(offer(f"cold-{i}")).aggregate_id for i in range(5)]
        b = build(settings)  # another process: nothing cached
        try:
            loads = []
            real_get = b.app.repository.get
            monkeypatch.setattr(b.app.repository, "get",
                                lambda *args, **kw: loads.append(args) or real_get(*args, **kw))
            results = b.commands.handle_many(
                [m.EnterIvr(call_id=i, menu="main", occurred_at=at(1)) for i in ids]
                + [offer("cold-0"), offer("cold-new"),
                   m.EnterIvr(call_id=call_id_for("cold-missing"), menu="main")])
            *ivr, again, new, missing = results
            assert [r.new_events for r in ivr] == [1] * 5
            assert again.duplicate and again.new_events == 0
            assert new.new_events == 1 and new.aggregate_id == call_id_for("cold-new")
            assert isinstance(missing, NotFound)  # confirmed by the store, not guessed
            assert loads == [(call_id_for("cold-missing"),)]
            for i in ids:
                assert a.app.repository.get(i).state == CallState.IVR
        finally:
            b.close()
    finally:
        a.close()


def test_a_submitted_command_cancelled_before_it_starts_leaves_no_trace(sqlite_lianxin):
    bus = sqlite_lianxin.commands.bus
    gate = Gate()
    first = offer("first")
    leader, box = run_in_thread(bus.execute, gate.wrap(handler_for(first)), first)
    assert gate.entered.wait(5)
    ivr = m.EnterIvr(call_id=call_id_for("nope"), menu="main")
    kept = bus.submit(handler_for(first), offer("kept"))
    dropped = bus.submit(handler_for(first), offer("dropped"))
    failing = bus.submit(handler_for(ivr), ivr)
    assert dropped.cancel()
    gate.release.set()
    leader.join(10)
    assert kept.result(10).aggregate_id == call_id_for("kept")
    assert isinstance(failing.exception(10), NotFound)
    assert stored_events(sqlite_lianxin.app, call_id_for("dropped")) == []
    assert len(stored_events(sqlite_lianxin.app, call_id_for("kept"))) == 1


def test_unstorable_text_fails_only_its_own_command_in_a_batch(tmp_path):
    """A lone surrogate is refused before its handler runs: the commands
    committed with it in one batch are not failed with it."""
    from commands import messages as m
    from domain.errors import InvalidValue
    from lianxin.wiring import build
    from tests.conftest import make_settings

    lx = build(make_settings(tmp_path / "home"))
    try:
        outcomes = lx.commands.handle_many([
            m.OfferCall(external_id="u-1", dialed_number="95598"),
            m.OfferCall(external_id="u-2", dialed_number="95598", trunk="bad \ud800"),
            m.OfferCall(external_id="u-3", dialed_number="95598",
                        caller_number="13800000000"),
        ])
        assert isinstance(outcomes[1], InvalidValue) and outcomes[1].context["field"] == "trunk"
        assert [o.new_events for o in (outcomes[0], outcomes[2])] == [1, 1]
        assert lx.app.max_position() == outcomes[2].position
    finally:
        lx.close()
