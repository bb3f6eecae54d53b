"""Importing queue_logs: what a supervisor would find in Lianxin afterwards."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from domain.agent import AgentState, agent_id_for
from domain.call import CallState, call_id_for
from telephony_adapter.queue_log import ImportOptions, import_queue_log, load_agent_map

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue_log"
CST = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 20, tzinfo=CST)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm, second=ss)


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def run(lx: Any, source: str, **options: Any):
    return import_queue_log(lx, source, ImportOptions(**options))


def full_day(lx: Any):
    return run(lx, text("full_day.log"), agent_map=load_agent_map(FIXTURES / "agents.csv"))


def call(lx: Any, callid: str) -> Any:
    return lx.app.repository.get(call_id_for(f"queue_log:{callid}"))


def agent(lx: Any, employee_no: str) -> Any:
    return lx.app.repository.get(agent_id_for(employee_no))


def events(lx: Any, aggregate_id: Any) -> list[Any]:
    return list(lx.app.repository.event_store.get(aggregate_id))


def of(evts: list[Any], name: str) -> list[Any]:
    return [e for e in evts if type(e).__name__ == name]


def outline(lx: Any, callids: list[str]) -> dict[str, tuple]:
    """What a supervisor sees of each call: enough to compare two imports."""
    out = {}
    for cid in callids:
        c = call(lx, cid)
        out[cid] = (c.state, c.hung_up_by, c.abandon_stage, c.queue, c.queued_at, c.answered_at,
                    c.ended_at, c.transfers, sorted((str(l["agent_id"]), l["answered_at"] is not None)
                                                    for l in c.legs.values()))
    return out


ALL_CALLS = ["1795133100.10", "1795133200.12", "1795133400.14", "1795133520.15", "1795133640.16",
             "1795133760.17", "1795134000.19", "1795134300.21", "1795134600.23", "1795135200.26",
             "1795135500.28", "1795135800.29", "1795136400.31", "1795137000.33"]


def test_a_day_of_queue_log_becomes_calls_and_agent_states_and_imports_once(lianxin):
    summary = full_day(lianxin)
    assert summary.skipped == [] and summary.ok
    assert (summary.calls_created, summary.agents_created) == (14, 4)
    assert summary.events_created == lianxin.app.max_position() > 0

    answered = call(lianxin, "1795133100.10")
    assert (answered.state, answered.hung_up_by) == (CallState.ENDED, "caller")
    assert answered.queued_at == at(8, 5) and answered.answered_at == at(8, 5, 8)
    assert answered.ended_at - answered.answered_at == timedelta(seconds=125)
    (leg,) = answered.legs.values()
    assert leg["agent_id"] == agent_id_for("1001") and leg["alerted_at"] == at(8, 5, 5)

    by_agent = call(lianxin, "1795133200.12")  # "Wang Wei" is 1002 through the agent map
    assert by_agent.hung_up_by == "agent"
    assert [l["agent_id"] for l in by_agent.legs.values()] == [agent_id_for("1002")]

    abandoned = call(lianxin, "1795133400.14")
    assert (abandoned.state, abandoned.abandon_stage) == (CallState.ABANDONED, "queue")
    assert abandoned.ended_at - abandoned.queued_at == timedelta(seconds=35)

    for callid, cause in (("1795133520.15", "queue_timeout"), ("1795133640.16", "queue_exit_key:1"),
                          ("1795133760.17", "queue_empty")):
        exited = call(lianxin, callid)
        assert (exited.state, exited.hung_up_by) == (CallState.ENDED, "system"), callid
        (ended,) = of(events(lianxin, exited.id), "Ended")
        assert ended.cause == cause

    rna = call(lianxin, "1795134000.19")  # 1001 did not answer, Wang Wei did
    missed, taken = sorted(rna.legs.values(), key=lambda l: l["alerted_at"])
    assert (missed["agent_id"], missed["answered_at"], missed["alerted_at"]) == \
           (agent_id_for("1001"), None, at(8, 20, 0))
    assert taken["agent_id"] == agent_id_for("1002") and taken["alerted_at"] == at(8, 20, 23)
    assert rna.answered_at - rna.queued_at == timedelta(seconds=27)
    assert [e.outcome for e in of(events(lianxin, rna.id), "RingNoAnswer")] == ["no_answer"]

    out = call(lianxin, "1795134300.21")  # TRANSFER to an extension: out of the queues' sight
    assert (out.state, out.hung_up_by, out.transfers) == (CallState.ENDED, "transfer", 1)
    (xfer,) = of(events(lianxin, out.id), "Transferred")
    assert (xfer.kind, xfer.target_type, xfer.target) == ("blind", "external", "")
    assert xfer.pii == {"target": "8001@from-internal"}  # a number: personal data

    to_queue = call(lianxin, "1795134600.23")  # BLINDTRANSFER then ENTERQUEUE billing
    (xfer,) = of(events(lianxin, to_queue.id), "Transferred")
    assert (xfer.target_type, xfer.target) == ("queue", "billing")
    assert (to_queue.hung_up_by, to_queue.queue, to_queue.transfers) == ("agent", "billing", 1)
    assert [l["agent_id"] for l in to_queue.legs.values()] == [agent_id_for("1003"),
                                                               agent_id_for("1002")]

    attended = call(lianxin, "1795135200.26")
    (xfer,) = of(events(lianxin, attended.id), "Transferred")
    assert xfer.kind == "attended" and xfer.pii["target"].startswith("BRIDGE:5c0b7c5e")
    assert attended.hung_up_by == "transfer"

    hung_up_ringing = call(lianxin, "1795135500.28")
    assert (hung_up_ringing.state, hung_up_ringing.abandon_stage) == (CallState.ABANDONED, "ringing")

    overflow = call(lianxin, "1795135800.29")  # timed out of power, abandoned in billing
    assert (overflow.state, overflow.queue, overflow.abandon_stage) == \
           (CallState.ABANDONED, "billing", "queue")
    assert of(events(lianxin, overflow.id), "Ended") == []

    unreachable = call(lianxin, "1795136400.31")  # RINGNOANSWER|0: 1004 never rang
    assert [l["agent_id"] for l in unreachable.legs.values()] == [agent_id_for("1003")]
    dumped = call(lianxin, "1795137000.33")
    assert [e.outcome for e in of(events(lianxin, dumped.id), "RingNoAnswer")] == ["rejected"]

    states = {emp: agent(lianxin, emp).state for emp in ("1001", "1002", "1003", "1004")}
    assert states == {"1001": AgentState.LOGGED_OUT, "1002": AgentState.READY,
                      "1003": AgentState.READY, "1004": AgentState.LOGGED_OUT}
    assert agent(lianxin, "1002").team == "imported"
    pauses_1001 = [(e.reason, e.occurred_at) for e in of(events(lianxin, agent_id_for("1001")),
                                                         "BecameNotReady")]
    assert ("Auto-Pause", at(8, 20, 15)) in pauses_1001
    lunch = [(type(e).__name__, e.occurred_at) for e in events(lianxin, agent_id_for("1002"))
             if type(e).__name__ in ("BecameNotReady", "BecameReady") and e.occurred_at >= at(8, 55)]
    assert lunch == [("BecameNotReady", at(8, 55)), ("BecameReady", at(9, 25))]

    head = lianxin.app.max_position()
    again = full_day(lianxin)
    assert lianxin.app.max_position() == head
    assert (again.events_created, again.calls_created, again.agents_created) == (0, 0, 0)
    assert again.skipped == [] and again.already_imported == again.commands > 0


def test_a_growing_log_imported_again_and_again_ends_as_one_import(sqlite_lianxin, tmp_path):
    from lianxin.wiring import build
    from tests.conftest import make_settings

    lines = text("full_day.log").splitlines(keepends=True)
    amap = load_agent_map(FIXTURES / "agents.csv")
    for cut in (11, 25, 40, 57, len(lines)):  # cron every few minutes on the live file
        summary = run(sqlite_lianxin, "".join(lines[:cut]), agent_map=amap)
        assert summary.skipped == [], cut
    once = build(make_settings(tmp_path / "once"))
    try:
        full_day(once)
        assert outline(sqlite_lianxin, ALL_CALLS) == outline(once, ALL_CALLS)
        for emp in ("1001", "1002", "1003", "1004"):
            assert agent(sqlite_lianxin, emp).state == agent(once, emp).state
    finally:
        once.close()


def test_a_rotated_log_carries_on_the_calls_the_previous_file_left_open(sqlite_lianxin):
    lines = text("full_day.log").splitlines(keepends=True)
    split = next(i for i, l in enumerate(lines) if "|COMPLETECALLER|8|125|" in l)
    first = run(sqlite_lianxin, "".join(lines[:split]))
    assert "1795133100.10" in first.live_calls
    second = run(sqlite_lianxin, "".join(lines[split:]))
    assert second.skipped == [] and second.reconstructed_calls == 0
    c = call(sqlite_lianxin, "1795133100.10")
    assert (c.state, c.queued_at, c.answered_at, c.ended_at) == \
           (CallState.ENDED, at(8, 5), at(8, 5, 8), at(8, 7, 13))


def test_a_log_that_starts_mid_day_reconstructs_calls_and_makes_agents_ready(sqlite_lianxin):
    log = ("1795140000|1795139950.7|power|PJSIP/1201|CONNECT|50|1795139990.8|10\n"
           "1795140100|1795139950.7|power|PJSIP/1201|COMPLETEAGENT|50|100|1\n"
           "1795140200|1795140190.9|power|PJSIP/1202|COMPLETECALLER|10|30|2\n")
    summary = run(sqlite_lianxin, log, team="night-shift")
    assert summary.skipped == [] and summary.reconstructed_calls == 2
    first = call(sqlite_lianxin, "1795139950.7")
    start = datetime.fromtimestamp(1795140000, CST)
    assert first.queued_at == start - timedelta(seconds=50) and first.answered_at == start
    (leg,) = first.legs.values()
    assert leg["alerted_at"] == start - timedelta(seconds=10)
    second = call(sqlite_lianxin, "1795140190.9")  # no CONNECT at all: answer from calltime
    assert second.answered_at == datetime.fromtimestamp(1795140170, CST)
    assert second.queued_at == datetime.fromtimestamp(1795140160, CST)
    for emp in ("1201", "1202"):
        a = agent(sqlite_lianxin, emp)
        assert (a.state, a.team, a.endpoint) == (AgentState.READY, "night-shift", f"PJSIP/{emp}")


def test_an_asterisk_restart_ends_the_calls_in_progress(sqlite_lianxin):
    log = ("1795140000|1795140000.1|power|NONE|ENTERQUEUE||13800000001|1\n"
           "1795140010|1795140000.1|power|PJSIP/1301|CONNECT|10|1795140008.2|2\n"
           "1795140020|1795140020.3|power|NONE|ENTERQUEUE||13800000003|1\n"
           "1795140100|NONE|NONE|NONE|QUEUESTART|\n")
    summary = run(sqlite_lianxin, log)
    assert summary.skipped == [] and summary.live_calls == []
    for callid in ("1795140000.1", "1795140020.3"):
        c = call(sqlite_lianxin, callid)
        assert (c.state, c.hung_up_by) == (CallState.ENDED, "system")
        (ended,) = of(events(sqlite_lianxin, c.id), "Ended")
        assert ended.cause == "asterisk_restart"
        assert ended.occurred_at == datetime.fromtimestamp(1795140100, CST)
    assert agent(sqlite_lianxin, "1301").state == AgentState.READY


def test_malformed_lines_are_reported_by_number_and_the_rest_is_imported(sqlite_lianxin):
    summary = run(sqlite_lianxin, text("with_errors.log"))
    assert [(s["line"], s.get("field")) for s in summary.skipped] == \
           [(3, "event"), (4, "holdtime"), (6, "time"), (9, "callid"), (10, None)]
    assert "already ended at line 5" in summary.skipped[-1]["reason"]
    assert not summary.ok and summary.lines_imported == 8
    # The bad CONNECT is made good by COMPLETECALLER's own holdtime/calltime.
    first = call(sqlite_lianxin, "1795392100.1")
    assert (first.state, first.hung_up_by) == (CallState.ENDED, "caller")
    assert first.ended_at - first.answered_at == timedelta(seconds=100)
    assert call(sqlite_lianxin, "1795392400.4").state == CallState.ABANDONED
    assert call(sqlite_lianxin, "1795392700.6").hung_up_by == "agent"


def test_a_dry_run_counts_what_an_import_would_create_and_writes_nothing(sqlite_lianxin):
    dry = run(sqlite_lianxin, text("small_day.log"), dry_run=True)
    assert sqlite_lianxin.app.max_position() == 0
    real = run(sqlite_lianxin, text("small_day.log"))
    assert (dry.calls_created, dry.agents_created, dry.events_created) == \
           (real.calls_created, real.agents_created, real.events_created) == (10, 2, real.events_created)
    assert real.events_created == sqlite_lianxin.app.max_position() > 0


def test_older_layouts_import_to_the_same_calls(tmp_path):
    from lianxin.wiring import build
    from tests.conftest import make_settings

    seen = {}
    for name in ("layout_modern.log", "layout_asterisk14.log", "layout_table_export.log",
                 "layout_single_data.csv"):
        lx = build(make_settings(tmp_path / name))
        try:
            summary = run(lx, text(name))
            assert summary.skipped == [], name
            seen[name] = {cid: (c.state, c.hung_up_by, c.queued_at, c.answered_at, c.ended_at)
                          for cid in ("1795305700.1", "1795305900.3", "1795306100.5", "1795306300.7")
                          for c in [call(lx, cid)]}
            assert agent(lx, "3001").state == AgentState.READY
        finally:
            lx.close()
    modern = seen.pop("layout_modern.log")
    for name, calls in seen.items():
        assert calls == modern, name
