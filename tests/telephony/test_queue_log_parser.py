"""Reading queue_log lines: every event, every layout, every way a line can be bad."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from domain.errors import InvalidValue
from telephony_adapter.queue_log import AgentDirectory, LineError, Record, load_agent_map, parse_lines
from telephony_adapter.queue_log.parser import parse_line

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue_log"
SHANGHAI = ZoneInfo("Asia/Shanghai")

REQUIRED_EVENTS = {
    "ENTERQUEUE", "CONNECT", "COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT",
    "EXITWITHKEY", "EXITEMPTY", "RINGNOANSWER", "RINGCANCELED", "TRANSFER", "BLINDTRANSFER",
    "ATTENDEDTRANSFER", "ADDMEMBER", "REMOVEMEMBER", "AGENTLOGIN", "AGENTLOGOFF", "PAUSE",
    "UNPAUSE", "PAUSEALL", "UNPAUSEALL", "CONFIGRELOAD", "QUEUESTART", "DID", "INFO", "SYSCOMPAT",
}


def parse_file(name: str, tz: ZoneInfo = SHANGHAI) -> tuple[list[Record], list[LineError]]:
    items = list(parse_lines((FIXTURES / name).read_text().splitlines(), tz))
    return ([i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, LineError)])


def test_the_full_day_fixture_covers_every_event_type_and_parses_cleanly():
    records, errors = parse_file("full_day.log")
    assert errors == []
    assert REQUIRED_EVENTS <= {r.event for r in records}
    connect = next(r for r in records if r.event == "CONNECT" and r.callid == "1795133100.10")
    assert connect.values == {"holdtime": 8, "bridged_uniqueid": "1795133105.11", "ringtime": 3}
    assert connect.when == datetime(2026, 11, 20, 8, 5, 8, tzinfo=SHANGHAI)
    xfer = next(r for r in records if r.event == "ATTENDEDTRANSFER")
    assert (xfer.values["method"], xfer.values["holdtime"], xfer.values["calltime"]) == ("BRIDGE", 5, 120)
    key = next(r for r in records if r.event == "EXITWITHKEY")
    assert key.values == {"key": "1", "position": 1, "origposition": 1, "waittime": 22}
    pause = next(r for r in records if r.event == "PAUSEALL")
    assert pause.values["reason"] == "Lunch"


@pytest.mark.parametrize("legacy", ["layout_asterisk14.log", "layout_table_export.log",
                                    "layout_single_data.csv"])
def test_older_layouts_read_the_same_values_as_the_current_one(legacy):
    modern, errors = parse_file("layout_modern.log")
    old, old_errors = parse_file(legacy)
    assert errors == [] and old_errors == []
    assert [(r.micros, r.callid, r.queue, r.agent, r.event) for r in old] == \
           [(r.micros, r.callid, r.queue, r.agent, r.event) for r in modern]
    for new, was in zip(modern, old):
        # A field an older layout lacks reads as missing, never as another value.
        for name, value in was.values.items():
            if value not in (None, "") and name != "reason":
                assert new.values[name] == value, (new.event, name)
        assert was.key == new.key  # so commands collide across layouts: no double import


def test_the_asterisk_14_layout_is_recognised_as_such():
    old, _ = parse_file("layout_asterisk14.log")
    layouts = {r.event: r.layout for r in old}
    assert layouts["CONNECT"] == "asterisk-1.4"
    assert layouts["EXITWITHTIMEOUT"] == "asterisk-1.4"
    assert layouts["TRANSFER"] == "asterisk-1.4"
    connect = next(r for r in old if r.event == "CONNECT")
    assert connect.values["ringtime"] is None and connect.values["holdtime"] == 10


def test_times_with_fractions_and_text_times_in_the_given_zone():
    r = parse_line("1795132800.25|1795132800.1|q|NONE|ENTERQUEUE||123|1", 1, SHANGHAI)
    assert r.micros == 1795132800_250000
    assert r.when == datetime(2026, 11, 20, 8, 0, 0, 250000, tzinfo=SHANGHAI)
    local = parse_line("2026-11-20 08:00:00|1795132800.1|q|NONE|ENTERQUEUE||123|1", 1, SHANGHAI)
    assert local.micros == 1795132800_000000
    utc = parse_line("2026-11-20 08:00:00|1795132800.1|q|NONE|ENTERQUEUE||123|1", 1,
                     ZoneInfo("UTC"))
    assert utc.when == datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    assert utc.micros - local.micros == 8 * 3600 * 1_000_000


@pytest.mark.parametrize("line, field", [
    ("just some text", "event"),
    ("1795132800|1.1|q|NONE", "event"),
    ("noon|1.1|q|NONE|ENTERQUEUE||123|1", "time"),
    ("1795132800|1.1|q|PJSIP/1|CONNECT|abc|x|1", "holdtime"),
    ("1795132800|1.1|q|PJSIP/1|CONNECT|-4|x|1", "holdtime"),
    ("1795132800|1.1|q|PJSIP/1|COMPLETECALLER|4", "calltime"),
    ("1795132800|NONE|q|PJSIP/1|CONNECT|4|x|1", "callid"),
    ("1795132800|NONE|q|NONE|PAUSE|Lunch", "agent"),
    ("1795132800|1.1|q|NONE|EXITWITHKEY||1|1|5", "key"),
    ("1795132800|1.1|q|PJSIP/1|RINGNOANSWER|", "ringtime"),
    ("1795132800|1.1|q|PJSIP/1|ATTENDEDTRANSFER|LINK|a|5|6|1", "method"),
])
def test_a_bad_line_is_reported_with_its_number_and_field(line, field):
    with pytest.raises(LineError) as err:
        parse_line(line, 7, SHANGHAI)
    assert err.value.line_no == 7 and err.value.field == field
    assert str(err.value).startswith("line 7: ")


def test_blank_comment_and_header_lines_are_not_records():
    lines = ["", "# exported 2026-11-20", "time|callid|queuename|agent|event|data",
             "1795132800|NONE|NONE|NONE|QUEUESTART|"]
    assert [r.event for r in parse_lines(lines, SHANGHAI)] == ["QUEUESTART"]


def test_attended_transfer_methods_keep_their_targets():
    link = parse_line("1795132800|1.1|q|PJSIP/1|ATTENDEDTRANSFER|LINK|PJSIP/1-01|PJSIP/2-02|5|60|1",
                      1, SHANGHAI)
    assert link.values["target"] == "PJSIP/1-01|PJSIP/2-02" and link.values["calltime"] == 60
    app = parse_line("1795132800|1.1|q|PJSIP/1|ATTENDEDTRANSFER|APP|VoiceMail|5|60|1", 1, SHANGHAI)
    assert (app.values["method"], app.values["target"]) == ("APP", "VoiceMail")


@pytest.mark.parametrize("field, employee_no", [
    ("PJSIP/1001", "1001"), ("SIP/1001", "1001"), ("Local/1002@from-queue/n", "1002"),
    ("Agent/1004", "1004"), ("PJSIP/1001-0000001a", "1001"), ("1005", "1005"),
    ("Li Na (1006)", "1006"), ("PJSIP/alice", "alice"), ("Li Na", "Li Na"),
])
def test_agent_fields_map_to_employee_numbers(field, employee_no):
    assert AgentDirectory().resolve(field).employee_no == employee_no


def test_an_agent_map_joins_member_names_and_interfaces(tmp_path):
    directory = AgentDirectory(load_agent_map(FIXTURES / "agents.csv"))
    assert directory.resolve("Wang Wei").employee_no == "1002"
    assert directory.resolve("Local/1002@from-queue/n").employee_no == "1002"
    assert directory.resolve("NONE") is None
    as_json = tmp_path / "map.json"
    as_json.write_text('{"Li Na": {"employee_no": "1001", "name": "Li Na"}, "Zhang": "1003"}')
    mapping = load_agent_map(as_json)
    assert mapping == {"Li Na": ("1001", "Li Na"), "Zhang": ("1003", None)}
    bad = tmp_path / "bad.csv"
    bad.write_text("agent,employee_no\nWang Wei,\n")
    with pytest.raises(InvalidValue) as err:
        load_agent_map(bad)
    assert "line 2" in err.value.message and err.value.context["field"] == "agent_map"
