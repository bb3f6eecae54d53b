"""Parse Asterisk ``queue_log`` lines into typed records.

A line is ``time|callid|queue|agent|event|data1|data2|...``. What follows the
event depends on the event and on the Asterisk version that wrote it (the
layouts below are those of ``apps/app_queue.c`` across releases, see
docs/queue-log-import.md). Besides the file Asterisk writes, the same rows
come out of the realtime ``queue_log`` table, whose exports differ only in
form: a text timestamp instead of epoch seconds, a single ``data`` column
holding the pipe-joined values (older schema) or ``data1..data5`` padded with
empty columns, commas instead of pipes, and a header row. All of them parse
to the same record.

Parsing never stops at a bad line: it yields a ``LineError`` naming the line
number and the field, and carries on.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

CALL_EVENTS = frozenset({
    "ENTERQUEUE", "CONNECT", "COMPLETECALLER", "COMPLETEAGENT", "ABANDON",
    "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY", "RINGNOANSWER", "RINGCANCELED",
    "TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER", "AGENTDUMP", "DID",
})
AGENT_EVENTS = frozenset({
    "ADDMEMBER", "REMOVEMEMBER", "AGENTLOGIN", "AGENTLOGOFF", "AGENTCALLBACKLOGIN",
    "AGENTCALLBACKLOGOFF", "PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL",
})
SYSTEM_EVENTS = frozenset({"CONFIGRELOAD", "QUEUESTART"})
# Written by Asterisk but carrying nothing Lianxin records: accepted and counted.
TOLERATED_EVENTS = frozenset({"INFO", "SYSCOMPAT", "JOINEMPTY", "JOINUNAVAIL", "FULL"})

NO_CALL_IDS = frozenset({"", "NONE", "MANAGER", "REALTIME"})


class LineError(ValueError):
    """A line that cannot be read. ``field`` names the offending part."""

    def __init__(self, line_no: int, reason: str, field: str | None = None,
                 event: str | None = None) -> None:
        super().__init__(f"line {line_no}: {reason}")
        self.line_no = line_no
        self.reason = reason
        self.field = field
        self.event = event


@dataclass(frozen=True)
class Record:
    line_no: int
    when: datetime
    micros: int  # epoch microseconds: the canonical time, whatever the layout
    callid: str
    queue: str
    agent: str
    event: str
    values: dict[str, Any] = field(default_factory=dict)
    layout: str = "current"  # which generation of the event's fields was read

    @property
    def key(self) -> str:
        """What identifies this line wherever it appears (any file, any
        layout): the base of its commands' idempotency keys."""
        return f"queue_log:{self.callid}:{self.queue}:{self.agent}:{self.event}:{self.micros}"

    @property
    def has_call(self) -> bool:
        return self.callid.upper() not in NO_CALL_IDS


# -- fields -------------------------------------------------------------------
def _int(value: str, name: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"-?\d+", text):
        raise ValueError(f"{name} must be a whole number, got {value!r}", name)
    number = int(text)
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}", name)
    return number


def _opt_int(data: list[str], i: int, name: str) -> int | None:
    if i >= len(data) or data[i].strip() == "":
        return None
    return _int(data[i], name)


def _text(data: list[str], i: int) -> str:
    return data[i].strip() if i < len(data) else ""


def _need(data: list[str], n: int, names: str) -> None:
    if len(data) < n:
        raise ValueError(f"expected {names}, got {len(data)} value(s)", names.split("|")[len(data)])


Decoded = tuple[dict[str, Any], str]


def _enterqueue(d: list[str]) -> Decoded:
    # url|callerid, then |position (Asterisk 1.6+), then |callerid name
    # (log_caller_id_name, Asterisk 16+).
    values = {"url": _text(d, 0), "callerid": _text(d, 1), "position": _opt_int(d, 2, "position"),
              "callerid_name": _text(d, 3)}
    return values, "current" if len(d) >= 3 else "asterisk-1.4"


def _connect(d: list[str]) -> Decoded:
    # holdtime (1.2), |bridgedchanneluniqueid (1.4), |ringtime in seconds (1.6+).
    _need(d, 1, "holdtime")
    values = {"holdtime": _int(d[0], "holdtime"), "bridged_uniqueid": _text(d, 1),
              "ringtime": _opt_int(d, 2, "ringtime")}
    layout = "current" if len(d) >= 3 else ("asterisk-1.4" if len(d) == 2 else "asterisk-1.2")
    return values, layout


def _complete(d: list[str]) -> Decoded:
    _need(d, 2, "holdtime|calltime|origposition")
    return {"holdtime": _int(d[0], "holdtime"), "calltime": _int(d[1], "calltime"),
            "origposition": _opt_int(d, 2, "origposition")}, "current"


def _waited(d: list[str]) -> Decoded:
    # ABANDON / EXITWITHTIMEOUT / EXITEMPTY: position|origposition|waittime;
    # before Asterisk 1.6 the exits wrote the position only.
    _need(d, 1, "position|origposition|waittime")
    values = {"position": _int(d[0], "position"), "origposition": _opt_int(d, 1, "origposition"),
              "waittime": _opt_int(d, 2, "waittime")}
    return values, "current" if len(d) >= 3 else "asterisk-1.4"


def _exitwithkey(d: list[str]) -> Decoded:
    _need(d, 2, "key|position|origposition|waittime")
    key = d[0].strip()
    if not key:
        raise ValueError("key must not be empty", "key")
    values = {"key": key, "position": _int(d[1], "position"),
              "origposition": _opt_int(d, 2, "origposition"), "waittime": _opt_int(d, 3, "waittime")}
    return values, "current" if len(d) >= 4 else "asterisk-1.4"


def _ringtime_ms(d: list[str]) -> Decoded:
    _need(d, 1, "ringtime")
    return {"ringtime_ms": _int(d[0], "ringtime")}, "current"


def _transfer(d: list[str]) -> Decoded:
    # extension|context (1.2), |holdtime|calltime (1.4), |origposition (1.6+);
    # BLINDTRANSFER (Asterisk 12+) keeps the full layout.
    _need(d, 2, "extension|context|holdtime|calltime|origposition")
    values = {"extension": d[0].strip(), "context": d[1].strip(),
              "holdtime": _opt_int(d, 2, "holdtime"), "calltime": _opt_int(d, 3, "calltime"),
              "origposition": _opt_int(d, 4, "origposition")}
    layout = "current" if len(d) >= 5 else ("asterisk-1.4" if len(d) >= 4 else "asterisk-1.2")
    return values, layout


ATTENDED_METHODS = {"BRIDGE": 1, "APP": 1, "LINK": 2}


def _attendedtransfer(d: list[str]) -> Decoded:
    # method|method data...|holdtime|calltime|origposition: BRIDGE|bridge id,
    # APP|application, LINK|channel|channel (log_attended_transfer in app_queue.c).
    _need(d, 4, "method|data|holdtime|calltime|origposition")
    method = d[0].strip().upper()
    tail = d[-3:]
    data = [x.strip() for x in d[1:-3]]
    expected = ATTENDED_METHODS.get(method)
    if expected is not None and len(data) != expected:
        raise ValueError(f"{method} transfers carry {expected} value(s) before holdtime, "
                         f"got {len(data)}", "method")
    values = {"method": method, "target": "|".join(data),
              "holdtime": _int(tail[0], "holdtime"), "calltime": _int(tail[1], "calltime"),
              "origposition": _int(tail[2], "origposition")}
    return values, "current"


def _flag(d: list[str]) -> Decoded:
    return {"paused": _text(d, 0).upper() == "PAUSED"}, "current"


def _reason(d: list[str]) -> Decoded:
    # The pause reason arrived in Asterisk 1.6; older logs write nothing.
    return {"reason": _text(d, 0)}, "current" if d else "asterisk-1.4"


def _channel(d: list[str]) -> Decoded:
    return {"channel": _text(d, 0), "logintime": _opt_int(d, 1, "logintime"),
            "reason": _text(d, 2)}, "current"


def _did(d: list[str]) -> Decoded:
    return {"did": _text(d, 0)}, "current"


def _free(d: list[str]) -> Decoded:
    return {"data": [x for x in d]}, "current"


DECODERS: dict[str, Callable[[list[str]], Decoded]] = {
    "ENTERQUEUE": _enterqueue,
    "CONNECT": _connect,
    "COMPLETECALLER": _complete,
    "COMPLETEAGENT": _complete,
    "ABANDON": _waited,
    "EXITWITHTIMEOUT": _waited,
    "EXITEMPTY": _waited,
    "EXITWITHKEY": _exitwithkey,
    "RINGNOANSWER": _ringtime_ms,
    "RINGCANCELED": _ringtime_ms,
    "TRANSFER": _transfer,
    "BLINDTRANSFER": _transfer,
    "ATTENDEDTRANSFER": _attendedtransfer,
    "ADDMEMBER": _flag,
    "REMOVEMEMBER": _free,
    "PAUSE": _reason,
    "UNPAUSE": _reason,
    "PAUSEALL": _reason,
    "UNPAUSEALL": _reason,
    "AGENTLOGIN": _channel,
    "AGENTCALLBACKLOGIN": _channel,
    "AGENTLOGOFF": _channel,
    "AGENTCALLBACKLOGOFF": _channel,
    "DID": _did,
}


# -- time -----------------------------------------------------------------------
_EPOCH = re.compile(r"^(\d{9,11})(?:\.(\d{1,9}))?$")
_TEXT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([+-]\d{2}:?\d{2}|Z)?$")


def parse_time(text: str, tz: ZoneInfo) -> tuple[datetime, int]:
    """Epoch seconds (fractions allowed) are an instant; a text timestamp from
    a database export is wall-clock time in ``tz`` unless it has an offset."""
    raw = text.strip()
    m = _EPOCH.match(raw)
    if m:
        seconds = int(m.group(1))
        micros = int((m.group(2) or "0").ljust(6, "0")[:6])
        total = seconds * 1_000_000 + micros
        when = datetime.fromtimestamp(seconds, tz).replace(microsecond=micros)
        return when, total
    if _TEXT_TIME.match(raw):
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
        total = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return when.astimezone(tz), total
    raise ValueError(f"time must be epoch seconds or YYYY-MM-DD HH:MM:SS, got {text!r}", "time")


# -- lines ----------------------------------------------------------------------
def _split(line: str) -> list[str]:
    if line.startswith('"') or "," in line.split("|", 1)[0]:
        # A CSV export of the queue_log table: the data column may itself
        # hold the pipe-joined values (the older single-``data`` schema).
        row = next(csv.reader([line]))
        if len(row) >= 5:
            head, rest = row[:5], row[5:]
            data: list[str] = []
            for cell in rest:
                data.extend(cell.split("|"))
            return head + data
    return line.split("|")


def _is_header(parts: list[str]) -> bool:
    return parts[0].strip().lower() == "time" and len(parts) > 4 and parts[4].strip().lower() == "event"


def parse_line(line: str, line_no: int, tz: ZoneInfo) -> Record | None:
    """One record, ``None`` for a blank, comment or header line, or
    ``LineError`` raised with the line number and the field at fault."""
    text = line.strip().lstrip("\ufeff")
    if not text or text.startswith("#"):
        return None
    parts = _split(text)
    if _is_header(parts):
        return None
    if len(parts) < 5:
        raise LineError(line_no, f"expected at least 5 pipe-separated fields "
                                 f"(time|callid|queue|agent|event), got {len(parts)}", "event")
    time_s, callid, queue, agent, event = (p.strip() for p in parts[:5])
    event = event.upper()
    data = list(parts[5:])
    while data and data[-1].strip() == "":
        data.pop()  # database exports pad data1..data5 with empty columns
    if not event:
        raise LineError(line_no, "event is empty", "event")
    try:
        when, micros = parse_time(time_s, tz)
    except ValueError as exc:
        raise LineError(line_no, str(exc.args[0]), "time", event) from None
    if event in CALL_EVENTS and callid.upper() in NO_CALL_IDS:
        raise LineError(line_no, f"{event} needs the caller's uniqueid in callid, got {callid!r}",
                        "callid", event)
    if event in AGENT_EVENTS and agent.upper() in ("", "NONE"):
        raise LineError(line_no, f"{event} needs an agent, got {agent!r}", "agent", event)
    decoder = DECODERS.get(event, _free)
    try:
        values, layout = decoder(data)
    except ValueError as exc:
        name = exc.args[1] if len(exc.args) > 1 else "data"
        raise LineError(line_no, f"{event}: {exc.args[0]}", name, event) from None
    return Record(line_no=line_no, when=when, micros=micros, callid=callid, queue=queue,
                  agent=agent, event=event, values=values, layout=layout)


def parse_lines(lines: Iterable[str], tz: ZoneInfo) -> Iterator[Record | LineError]:
    for line_no, line in enumerate(lines, start=1):
        try:
            record = parse_line(line, line_no, tz)
        except LineError as err:
            yield err
            continue
        if record is not None:
            yield record
