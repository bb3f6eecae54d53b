"""The queue_log cases that do not fit Lianxin's model one to one, and how the
importer keeps every timeline consistent anyway."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from domain.agent import AgentState, agent_id_for
from domain.call import CallState, call_id_for
from telephony_adapter.queue_log import ImportOptions, import_queue_log

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue_log"
CST = ZoneInfo("Asia/Shanghai")


def t(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, CST)


def run(lx, log: str):
    return import_queue_log(lx, log, ImportOptions())


def call(lx, callid: str):
    return lx.app.repository.get(call_id_for(f"queue_log:{callid}"))


def agent(lx, emp: str):
    return lx.app.repository.get(agent_id_for(emp))


def test_ringall_rings_are_serialised_and_a_re_entry_is_a_transfer(sqlite_lianxin):
    log = ("1795140000|1795140000.1|power|NONE|ENTERQUEUE||13800000001|1\n"
           "1795140015|1795140000.1|power|PJSIP/1401|RINGNOANSWER|15000\n"
           "1795140015|1795140000.1|power|PJSIP/1402|RINGNOANSWER|15000\n"
           "1795140020|1795140000.1|power|PJSIP/1403|RINGCANCELED|5000\n"
           "1795140030|1795140000.1|power|PJSIP/1404|CONNECT|30|1795140025.2|5\n"
           "1795140040|NONE|power|PJSIP/1404|PAUSE|Toilet\n"
           "1795140060|1795140000.1|support|NONE|ENTERQUEUE||13800000001|1\n"
           "1795140070|1795140000.1|support|PJSIP/1401|CONNECT|10|1795140065.3|5\n"
           "1795140090|1795140000.1|support|PJSIP/1401|COMPLETECALLER|10|20|1\n")
    assert run(sqlite_lianxin, log).skipped == []
    c = call(sqlite_lianxin, "1795140000.1")
    legs = [(l["agent_id"], l["alerted_at"], l["ended_at"], l["answered_at"] is not None)
            for l in c.legs.values()]
    a = agent_id_for
    assert legs == [
        (a("1401"), t(1795140000), t(1795140015), False),
        (a("1402"), t(1795140015), t(1795140015), False),  # rang alongside: clamped, not rewound
        (a("1403"), t(1795140015), t(1795140020), False),
        (a("1404"), t(1795140025), t(1795140060), True),
        (a("1401"), t(1795140065), t(1795140090), True),
    ]
    assert (c.state, c.transfers, c.queue, c.hung_up_by) == (CallState.ENDED, 1, "support", "caller")
    # The pause asked for during the call lands when the agent is free again.
    paused = agent(sqlite_lianxin, "1404")
    assert (paused.state, paused.reason, paused.state_since) == \
           (AgentState.NOT_READY, "Toilet", t(1795140060))
    assert agent(sqlite_lianxin, "1401").state == AgentState.READY


def test_an_agent_is_ready_until_paused_in_every_queue_it_serves(sqlite_lianxin):
    log = ("1795140000|MANAGER|power|PJSIP/1501|ADDMEMBER|\n"
           "1795140000|MANAGER|billing|PJSIP/1501|ADDMEMBER|\n"
           "1795140100|NONE|power|PJSIP/1501|PAUSE|Training\n")
    run(sqlite_lianxin, log)
    assert agent(sqlite_lianxin, "1501").state == AgentState.READY
    run(sqlite_lianxin, log + "1795140200|NONE|billing|PJSIP/1501|PAUSE|Training\n")
    a = agent(sqlite_lianxin, "1501")
    assert (a.state, a.reason, a.state_since) == (AgentState.NOT_READY, "Training", t(1795140200))


def test_a_call_whose_end_is_missing_is_closed_when_its_agent_takes_the_next(sqlite_lianxin):
    log = ("1795140000|1795140000.1|power|NONE|ENTERQUEUE||13800000001|1\n"
           "1795140010|1795140000.1|power|PJSIP/1601|CONNECT|10|1795140008.2|2\n"
           "1795140100|1795140100.3|power|NONE|ENTERQUEUE||13800000003|1\n"
           "1795140110|1795140100.3|power|PJSIP/1601|CONNECT|10|1795140108.4|2\n"
           "1795140170|1795140100.3|power|PJSIP/1601|COMPLETEAGENT|10|60|1\n")
    summary = run(sqlite_lianxin, log)
    assert summary.skipped == [] and summary.closed_incomplete == ["1795140000.1"]
    lost = call(sqlite_lianxin, "1795140000.1")
    assert (lost.state, lost.hung_up_by, lost.ended_at) == (CallState.ENDED, "system", t(1795140110))
    assert call(sqlite_lianxin, "1795140100.3").hung_up_by == "agent"


def test_the_same_calls_in_another_layout_add_nothing(sqlite_lianxin):
    first = run(sqlite_lianxin, (FIXTURES / "layout_modern.log").read_text())
    head = sqlite_lianxin.app.max_position()
    for name in ("layout_table_export.log", "layout_single_data.csv", "layout_asterisk14.log"):
        again = run(sqlite_lianxin, (FIXTURES / name).read_text())
        assert (again.events_created, again.skipped) == (0, []), name
    assert first.events_created == head == sqlite_lianxin.app.max_position()


def test_a_refused_line_leaves_nothing_half_done(sqlite_lianxin):
    log = ("1795140010|1795140000.1|power|NONE|CONNECT|10|1795140008.2|2\n"
           "1795140070|1795140000.1|power|PJSIP/1701|COMPLETECALLER|10|60|1\n")
    summary = run(sqlite_lianxin, log)
    assert [(s["line"], s["reason"]) for s in summary.skipped] == [(1, "CONNECT names no agent")]
    c = call(sqlite_lianxin, "1795140000.1")  # rebuilt from the COMPLETECALLER alone
    assert (c.state, c.hung_up_by, c.queued_at, c.answered_at) == \
           (CallState.ENDED, "caller", t(1795140000), t(1795140010))


def test_member_names_on_every_line_with_log_membername_as_agent(sqlite_lianxin):
    from telephony_adapter.queue_log import ImportOptions as Options

    log = ("1795140000|MANAGER|power|Li Na|ADDMEMBER|\n"
           "1795140100|1795140100.1|power|NONE|ENTERQUEUE||13800000001|1\n"
           "1795140105|1795140100.1|power|Li Na|CONNECT|5|1795140103.2|2\n"
           "1795140165|1795140100.1|power|Li Na|COMPLETECALLER|5|60|1\n"
           "1795140200|NONE|power|Li Na|PAUSE|Meal\n")
    summary = import_queue_log(sqlite_lianxin, log,
                               Options(agent_map={"Li Na": ("1001", "Li Na")}, team="A"))
    assert summary.skipped == [] and summary.agents_created == 1
    a = agent(sqlite_lianxin, "1001")
    assert (a.name, a.team, a.state, a.reason) == ("Li Na", "A", AgentState.NOT_READY, "Meal")
    (leg,) = call(sqlite_lianxin, "1795140100.1").legs.values()
    assert leg["agent_id"] == agent_id_for("1001")
