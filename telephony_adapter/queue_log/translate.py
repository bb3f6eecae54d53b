"""From queue_log records to the commands the live adapter sends.

The queue_log is a summary written after the fact: there is no line when an
agent's phone starts ringing, none when after-call work ends, and the agent
state is spread over membership and pause lines per queue. The translator
keeps a small model of every call and agent in the file and fills those gaps
in documented ways (docs/queue-log-import.md):

* An alert happens ``ringtime`` before CONNECT, RINGNOANSWER or RINGCANCELED,
  but never before the call's or the agent's previous step, so that every
  aggregate's timeline stays in order (``ringall`` queues ring several members
  at once; Lianxin's call has one agent leg at a time, so they are
  serialised).
* An agent is *ready* when logged in (a member of some queue, or an
  AGENTLOGIN) and not paused in every queue it belongs to. Changes that land
  in the same second are settled together (PAUSE in three queues, or the
  autopause that follows a RINGNOANSWER, give one state change).
* Asterisk routed the call to the agent, so the agent was available: before
  an alert the agent is implicitly registered, logged in and made ready when
  the model says otherwise (a log that starts mid-day).
* A call whose first line is not ENTERQUEUE started before the log did: its
  offer and queue entry are reconstructed from the waiting time the line
  carries; an answered call missing its CONNECT gets its answer from
  ``calltime``.
* A queue exit or transfer followed later in the file by an ENTERQUEUE of the
  same caller is an overflow to that queue, not the end of the call.
* A Lianxin agent takes one call at a time: when the log offers an agent a
  call while still showing it on another, that other call's closing line is
  missing, and the call is closed there with a cause saying so.

Every command's id derives from the line that caused it (``Record.key``), so
importing a file again, or a longer copy of it, adds nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from uuid import UUID

from commands import messages as m
from commands.import_messages import SyncImportedAgent
from domain.call import call_id_for
from telephony_adapter.queue_log.agents import AgentDirectory, AgentRef
from telephony_adapter.queue_log.parser import TOLERATED_EVENTS, Record

ACTOR = "queue_log"
EXIT_CAUSES = {"EXITWITHTIMEOUT": "queue_timeout", "EXITEMPTY": "queue_empty",
               "EXITWITHKEY": "queue_exit_key"}
_NO_NUMBER = {"", "unknown", "anonymous", "<unknown>", "restricted", "private"}


def external_id_for(callid: str) -> str:
    return f"queue_log:{callid}"


class Reject(Exception):
    """This line cannot be applied given what the file said before it."""


@dataclass
class Step:
    command: Any
    line_no: int
    event: str


@dataclass
class Skipped:
    line_no: int
    event: str
    reason: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line_no, "event": self.event, "reason": self.reason}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class _Call:
    callid: str
    call_id: UUID
    state: str  # queued | ringing | connected | ended
    queue: str
    last: datetime
    leg: str | None = None
    agent: str | None = None  # employee number of the alerted/connected agent
    ended_line: int | None = None


@dataclass
class _Agent:
    ref: AgentRef
    endpoint: str
    members: set[str] = field(default_factory=set)
    paused: dict[str, str] = field(default_factory=dict)
    paused_all: str | None = None
    agent_login: bool = False
    last_reason: str = "paused"
    busy: str | None = None  # callid while ringing or talking
    believed: str | None = None  # what Lianxin holds, as far as this import knows
    last: datetime | None = None
    dirty_at: datetime | None = None
    dirty_key: str = ""
    dirty_line: int = 0

    def target(self) -> tuple[str, str]:
        present = self.agent_login or bool(self.members) or self.paused_all is not None
        if not present:
            return "logged_out", ""
        if self.paused_all is not None:
            return "not_ready", self.paused_all
        if self.members and all(q in self.paused for q in self.members):
            return "not_ready", self.last_reason
        return "ready", ""


@dataclass
class Translation:
    steps: list[Step] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    tolerated: Counter = field(default_factory=Counter)
    calls_in_file: int = 0
    reconstructed_calls: int = 0
    overflows: int = 0
    live_calls: list[str] = field(default_factory=list)
    closed_incomplete: list[str] = field(default_factory=list)


StoredCall = Callable[[str], Any]  # external id -> Call aggregate or None
StoredAgentNo = Callable[[UUID], "str | None"]  # agent id -> employee number


class Translator:
    def __init__(self, directory: AgentDirectory, *, team: str = "",
                 stored_call: StoredCall | None = None,
                 stored_agent_no: StoredAgentNo | None = None) -> None:
        self.directory = directory
        self.team = team
        self.stored_call = stored_call
        self.stored_agent_no = stored_agent_no
        self.calls: dict[str, _Call] = {}
        self.agents: dict[str, _Agent] = {}
        self.dids: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.out = Translation()
        self._enters: dict[str, list[int]] = {}
        self._lines_of: dict[str, list[int]] = {}
        self._records: list[Record] = []

    # -- driver ----------------------------------------------------------------
    def run(self, records: list[Record]) -> Translation:
        # Stable: lines written in the same microsecond keep the file's order.
        self._records = sorted(records, key=lambda r: r.micros)
        for i, r in enumerate(self._records):
            if r.event == "ENTERQUEUE":
                self._enters.setdefault(r.callid, []).append(i)
            if r.has_call:
                self._lines_of.setdefault(r.callid, []).append(i)
        for i, r in enumerate(self._records):
            self._settle_due(r.when)
            handler = getattr(self, f"_on_{r.event.lower()}", None)
            if handler is None:
                kind = r.event if r.event in TOLERATED_EVENTS else f"unknown:{r.event}"
                self.out.tolerated[kind] += 1
                continue
            before = len(self.out.steps)
            try:
                handler(r, i)
            except Reject as exc:
                del self.out.steps[before:]
                self.out.skipped.append(Skipped(r.line_no, r.event, str(exc)))
        for emp in sorted(self.dirty):
            self._settle(self.agents[emp])
        self.out.live_calls = sorted(c.callid for c in self.calls.values() if c.state != "ended")
        return self.out

    def _emit(self, r: Record, cmd: Any) -> None:
        self.out.steps.append(Step(cmd, r.line_no, r.event))

    # -- calls -----------------------------------------------------------------
    def _at(self, c: _Call, when: datetime) -> datetime:
        c.last = max(c.last, when)
        return c.last

    def _known_call(self, callid: str) -> _Call | None:
        """The call as this file has told it so far, or, for a call the file
        joins mid-way, as an earlier import left it if still live. An ended
        stored call is not used: the lines are then either the same ones again
        (their commands are duplicates) or late ones the domain refuses."""
        c = self.calls.get(callid)
        if c is not None or self.stored_call is None:
            return c
        stored = self.stored_call(external_id_for(callid))
        if stored is None or not stored.is_live:
            return None
        c = self._from_store(callid, stored)
        self.calls[callid] = c
        return c

    def _from_store(self, callid: str, call: Any) -> _Call:
        """A call an earlier file started (the log was rotated mid-call)."""
        state = getattr(call.state, "value", str(call.state))
        mapped = {"ringing": "ringing", "connected": "connected", "held": "connected"}.get(
            state, "queued")
        c = _Call(callid, call.id, mapped, call.queue or "", call.last_at, leg=call.leg_id)
        if mapped in ("ringing", "connected") and call.agent_id and self.stored_agent_no:
            emp = self.stored_agent_no(call.agent_id)
            if emp:
                c.agent = emp
                a = self.agents.get(emp)
                if a is None:
                    a = self.agents[emp] = _Agent(AgentRef(emp, emp, ""), "")
                a.busy, a.believed = callid, "on_call" if mapped == "connected" else "ringing"
        return c

    def _offer(self, r: Record, start: datetime, callerid: str) -> _Call:
        call_id = call_id_for(external_id_for(r.callid))
        caller = callerid.strip()
        self._emit(r, m.OfferCall(
            external_id=external_id_for(r.callid), dialed_number=self.dids.get(r.callid) or r.queue,
            caller_number=None if caller.lower() in _NO_NUMBER else caller,
            occurred_at=start, command_id=f"{r.key}:offer", actor=ACTOR))
        self._emit(r, m.QueueCall(call_id=call_id, queue=r.queue, occurred_at=start,
                                  command_id=f"{r.key}:queue", actor=ACTOR))
        c = _Call(r.callid, call_id, "queued", r.queue, start)
        self.calls[r.callid] = c
        self.out.calls_in_file += 1
        return c

    def _call(self, r: Record, waited_s: int | None) -> _Call:
        """The line's call; reconstructed when it began before the log."""
        c = self._known_call(r.callid)
        if c is None:
            c = self._offer(r, r.when - timedelta(seconds=waited_s or 0), "")
            self.out.reconstructed_calls += 1
        elif c.state == "ended":
            raise Reject(f"call {r.callid} already ended at line {c.ended_line}")
        return c

    def _later_enter(self, callid: str, i: int) -> Record | None:
        return self._after(self._enters.get(callid, []), i)

    def _next_line(self, callid: str, i: int) -> Record | None:
        return self._after(self._lines_of.get(callid, []), i)

    def _after(self, idx: list[int], i: int) -> Record | None:
        k = bisect_right(idx, i)
        return self._records[idx[k]] if k < len(idx) else None

    # -- agents ----------------------------------------------------------------
    def _agent(self, r: Record) -> _Agent:
        ref = self.directory.resolve(r.agent)
        if ref is None:
            raise Reject(f"{r.event} names no agent")
        a = self.agents.get(ref.employee_no)
        if a is None:
            a = self.agents[ref.employee_no] = _Agent(ref, ref.endpoint)
        elif not a.endpoint and ref.endpoint:
            a.endpoint = ref.endpoint
        return a

    def _mark(self, a: _Agent, when: datetime, r: Record) -> None:
        a.dirty_at, a.dirty_key, a.dirty_line = when, r.key, r.line_no
        self.dirty.add(a.ref.employee_no)

    def _settle_due(self, now: datetime) -> None:
        for emp in sorted(self.dirty):
            a = self.agents[emp]
            if a.dirty_at is not None and a.dirty_at < now:
                self._settle(a)

    def _settle(self, a: _Agent) -> None:
        if a.dirty_at is None or a.busy is not None:
            return  # a busy agent settles when its call lets it go
        when = max(a.dirty_at, a.last or a.dirty_at)
        self._sync(a, when, f"{a.dirty_key}:settle", a.dirty_line)
        a.dirty_at = None
        self.dirty.discard(a.ref.employee_no)

    def _sync(self, a: _Agent, when: datetime, command_id: str, line_no: int) -> None:
        state, reason = a.target()
        want = f"not_ready:{reason}" if state == "not_ready" else state
        if a.believed == want:
            return
        self.out.steps.append(Step(SyncImportedAgent(
            employee_no=a.ref.employee_no, name=a.ref.name, team=self.team, target=state,
            reason=reason, endpoint=a.endpoint, occurred_at=when, command_id=command_id,
            actor=ACTOR), line_no, "agent-state"))
        a.believed, a.last = want, when

    def _release(self, a: _Agent | None, when: datetime, believed: str, r: Record) -> None:
        if a is None:
            return
        a.busy, a.believed, a.last = None, believed, when
        self._mark(a, when, r)

    def _free(self, r: Record, a: _Agent, c: _Call) -> None:
        """Asterisk offers this call to ``a`` while the file still has ``a``
        on another call: that call's closing line is missing (a malformed or
        lost line). A Lianxin agent takes one call at a time, so the other call
        is closed here, with a cause that says so."""
        other = self.calls.get(a.busy or "")
        if other is None or other is c:
            return
        if other.state == "ringing":
            self._end_ring(r, other, "canceled", f"cancel:{other.callid}")
        elif other.state == "connected":
            self._end(r, other, "system", "end_missing_from_log", suffix=f"end:{other.callid}")
            self.out.closed_incomplete.append(other.callid)
        a.busy = None

    def _alert(self, r: Record, c: _Call, a: _Agent, when: datetime) -> None:
        if a.busy is not None and a.busy != c.callid:
            self._free(r, a, c)
        self._settle(a)
        # Asterisk rang the agent for this queue: it was a member, not paused there.
        queue = c.queue or r.queue
        a.members.add(queue)
        a.paused.pop(queue, None)
        a.paused_all = None
        at = max(when, c.last, a.last or when)
        self._sync(a, at, f"{r.key}:ready", r.line_no)
        leg = f"ql-{a.ref.employee_no}-{r.micros}"
        self._emit(r, m.AlertAgent(call_id=c.call_id, employee_no=a.ref.employee_no, leg_id=leg,
                                   endpoint=a.endpoint or None, occurred_at=self._at(c, at),
                                   command_id=f"{r.key}:alert", actor=ACTOR))
        c.state, c.leg, c.agent = "ringing", leg, a.ref.employee_no
        a.busy, a.believed, a.last = c.callid, "ringing", at
        a.dirty_at = None
        self.dirty.discard(a.ref.employee_no)

    def _end_ring(self, r: Record, c: _Call, outcome: str, suffix: str) -> None:
        at = self._at(c, r.when)
        self._emit(r, m.ReportRingNoAnswer(call_id=c.call_id, leg_id=c.leg, outcome=outcome,
                                           occurred_at=at, command_id=f"{r.key}:{suffix}",
                                           actor=ACTOR))
        believed = "ready" if outcome == "canceled" else "not_ready:ring_no_answer"
        self._release(self.agents.get(c.agent or ""), at, believed, r)
        c.state, c.leg, c.agent = "queued", None, None

    def _ring(self, r: Record, c: _Call, a: _Agent, ring_s: float) -> None:
        """Make ``a`` the agent ringing on ``c`` (cancelling another's ring)."""
        if c.state == "connected":
            raise Reject(f"call {r.callid} is already connected to agent {c.agent}")
        if c.state == "ringing" and c.agent == a.ref.employee_no:
            return
        if c.state == "ringing":
            self._end_ring(r, c, "canceled", "cancel")
        self._alert(r, c, a, r.when - timedelta(seconds=ring_s))

    def _answer(self, r: Record, c: _Call, a: _Agent, when: datetime, suffix: str) -> None:
        self._emit(r, m.AnswerCall(call_id=c.call_id, leg_id=c.leg, occurred_at=self._at(c, when),
                                   command_id=f"{r.key}:{suffix}", actor=ACTOR))
        c.state = "connected"
        a.believed, a.last = "on_call", c.last

    def _connected(self, r: Record, talk_s: int | None) -> tuple[_Call, _Agent | None]:
        """The call of a line that ends a conversation (COMPLETE*, transfers);
        its alert and answer are reconstructed if the file lacks the CONNECT."""
        hold, talk = r.values.get("holdtime") or 0, talk_s or 0
        known = self._known_call(r.callid)
        if known is not None and known.state == "connected":
            return known, self.agents.get(known.agent or "")
        a = self._agent(r)  # refuses before anything changes
        c = self._call(r, hold + talk)
        answered = r.when - timedelta(seconds=talk)
        self._ring(r, c, a, talk)
        self._answer(r, c, a, answered, "answer")
        return c, a

    def _end(self, r: Record, c: _Call, hung_up_by: str, cause: str, suffix: str = "end") -> None:
        at = self._at(c, r.when)
        self._emit(r, m.EndCall(call_id=c.call_id, hung_up_by=hung_up_by, cause=cause,
                                wrap_up=False, occurred_at=at, command_id=f"{r.key}:{suffix}",
                                actor=ACTOR))
        if c.state in ("ringing", "connected"):
            self._release(self.agents.get(c.agent or ""), at, "ready", r)
        c.state, c.leg, c.agent, c.ended_line = "ended", None, None, r.line_no

    # -- call lines ------------------------------------------------------------
    def _on_did(self, r: Record, i: int) -> None:
        if r.values.get("did"):
            self.dids[r.callid] = r.values["did"]
        self.out.tolerated["DID"] += 1

    def _on_enterqueue(self, r: Record, i: int) -> None:
        c = self.calls.get(r.callid)
        if c is None:
            self._offer(r, r.when, r.values.get("callerid", ""))
            return
        if c.state == "ended":
            raise Reject(f"call {r.callid} already ended; it cannot enter queue {r.queue}")
        # a second ENTERQUEUE: after a transfer, or back in line (the log does
        # not say whether a dialplan overflow sent it: not counted as one)
        reason = "transfer" if c.state == "connected" else "requeue"
        if c.state == "connected":
            # A transfer the log did not write (Local channels lose TRANSFER rows).
            at = self._at(c, r.when)
            self._emit(r, m.TransferCall(call_id=c.call_id, kind="blind", target_type="queue",
                                         target=r.queue, wrap_up=False, occurred_at=at,
                                         command_id=f"{r.key}:transfer", actor=ACTOR))
            self._release(self.agents.get(c.agent or ""), at, "ready", r)
            c.leg, c.agent = None, None
        elif c.state == "ringing":
            self._end_ring(r, c, "canceled", "cancel")
        self._emit(r, m.QueueCall(call_id=c.call_id, queue=r.queue, occurred_at=self._at(c, r.when),
                                  reason=reason, command_id=f"{r.key}:queue", actor=ACTOR))
        c.state, c.queue = "queued", r.queue

    def _on_connect(self, r: Record, i: int) -> None:
        a = self._agent(r)
        c = self._call(r, r.values["holdtime"])
        self._ring(r, c, a, r.values.get("ringtime") or 0)
        self._answer(r, c, a, r.when, "answer")

    def _on_completecaller(self, r: Record, i: int) -> None:
        c, _ = self._connected(r, r.values["calltime"])
        self._end(r, c, "caller", "normal")

    def _on_completeagent(self, r: Record, i: int) -> None:
        c, _ = self._connected(r, r.values["calltime"])
        self._end(r, c, "agent", "normal")

    def _on_abandon(self, r: Record, i: int) -> None:
        c = self._call(r, r.values.get("waittime"))
        if c.state == "connected":
            raise Reject(f"call {r.callid} was answered; it cannot be abandoned")
        self._end(r, c, "caller", "abandon")

    def _exit(self, r: Record, i: int, cause: str) -> None:
        c = self._call(r, r.values.get("waittime"))
        if c.state == "connected":
            raise Reject(f"call {r.callid} was answered; it cannot leave the queue")
        if c.state == "ringing":
            self._end_ring(r, c, "canceled", "cancel")
        if self._later_enter(r.callid, i) is not None:
            self.out.overflows += 1  # the caller goes on to another queue
            return
        self._end(r, c, "system", cause)

    def _on_exitwithtimeout(self, r: Record, i: int) -> None:
        self._exit(r, i, EXIT_CAUSES["EXITWITHTIMEOUT"])

    def _on_exitempty(self, r: Record, i: int) -> None:
        self._exit(r, i, EXIT_CAUSES["EXITEMPTY"])

    def _on_exitwithkey(self, r: Record, i: int) -> None:
        self._exit(r, i, f"{EXIT_CAUSES['EXITWITHKEY']}:{r.values['key']}")

    def _on_ringnoanswer(self, r: Record, i: int) -> None:
        ms = r.values["ringtime_ms"]
        if ms == 0:
            # app_queue writes 0 for a member it could not call at all (busy,
            # unreachable): no phone rang, so there is nothing to record.
            self.out.tolerated["RINGNOANSWER:not-rung"] += 1
            return
        a = self._agent(r)
        c = self._call(r, None)
        self._ring(r, c, a, ms / 1000)
        self._end_ring(r, c, "no_answer", "rna")

    def _on_ringcanceled(self, r: Record, i: int) -> None:
        # The caller hung up while this member rang: when the call's next line
        # is the ABANDON, the call is abandoned at the ringing stage (which
        # frees the agent); otherwise this member's ring ends here.
        a = self._agent(r)
        c = self._call(r, None)
        self._ring(r, c, a, r.values["ringtime_ms"] / 1000)
        nxt = self._next_line(r.callid, i)
        if nxt is None or nxt.event != "ABANDON":
            self._end_ring(r, c, "canceled", "cancel")

    def _on_agentdump(self, r: Record, i: int) -> None:
        a = self._agent(r)
        c = self._call(r, None)
        self._ring(r, c, a, 0)
        self._end_ring(r, c, "rejected", "dump")

    def _transfer(self, r: Record, i: int, kind: str, target: str) -> None:
        c, a = self._connected(r, r.values.get("calltime"))
        nxt = self._later_enter(r.callid, i)
        at = self._at(c, r.when)
        ttype, tgt = ("queue", nxt.queue) if nxt is not None else ("external", target or "unknown")
        self._emit(r, m.TransferCall(call_id=c.call_id, kind=kind, target_type=ttype, target=tgt,
                                     wrap_up=False, occurred_at=at,
                                     command_id=f"{r.key}:transfer", actor=ACTOR))
        self._release(self.agents.get(c.agent or ""), at, "ready", r)
        c.leg, c.agent = None, None
        if nxt is not None:
            c.state, c.queue = "queued", nxt.queue
            return
        # The caller left the queues' sight: Lianxin closes the call here.
        c.state = "transferred"
        self._end(r, c, "transfer", f"{kind}_transfer")

    def _on_transfer(self, r: Record, i: int) -> None:
        v = r.values
        self._transfer(r, i, "blind", "@".join(x for x in (v["extension"], v["context"]) if x))

    _on_blindtransfer = _on_transfer

    def _on_attendedtransfer(self, r: Record, i: int) -> None:
        v = r.values
        self._transfer(r, i, "attended", f"{v['method']}:{v['target']}")

    # -- agent lines -----------------------------------------------------------
    def _queue_of(self, r: Record) -> str | None:
        return None if r.queue.upper() in ("", "NONE") else r.queue

    def _on_addmember(self, r: Record, i: int) -> None:
        a, q = self._agent(r), self._queue_of(r)
        if q:
            a.members.add(q)
            if r.values.get("paused"):
                a.paused[q] = a.last_reason = "paused"
        self._mark(a, r.when, r)

    def _on_removemember(self, r: Record, i: int) -> None:
        a, q = self._agent(r), self._queue_of(r)
        if q:
            a.members.discard(q)
            a.paused.pop(q, None)
        self._mark(a, r.when, r)

    def _on_pause(self, r: Record, i: int) -> None:
        a, q = self._agent(r), self._queue_of(r)
        reason = r.values.get("reason") or "paused"
        if q:
            a.members.add(q)  # pausing in a queue means being its member
            a.paused[q] = reason
        a.last_reason = reason
        self._mark(a, r.when, r)

    def _on_unpause(self, r: Record, i: int) -> None:
        a, q = self._agent(r), self._queue_of(r)
        if q:
            a.members.add(q)
            a.paused.pop(q, None)
        a.paused_all = None
        self._mark(a, r.when, r)

    def _on_pauseall(self, r: Record, i: int) -> None:
        a = self._agent(r)
        a.paused_all = a.last_reason = r.values.get("reason") or "paused"
        for q in a.members:
            a.paused[q] = a.paused_all
        self._mark(a, r.when, r)

    def _on_unpauseall(self, r: Record, i: int) -> None:
        a = self._agent(r)
        a.paused_all = None
        a.paused.clear()
        self._mark(a, r.when, r)

    def _on_agentlogin(self, r: Record, i: int) -> None:
        a = self._agent(r)
        a.agent_login = True
        if r.values.get("channel") and "/" in r.values["channel"]:
            a.endpoint = a.endpoint or r.values["channel"]
        self._mark(a, r.when, r)

    _on_agentcallbacklogin = _on_agentlogin

    def _on_agentlogoff(self, r: Record, i: int) -> None:
        a = self._agent(r)
        a.agent_login = False
        a.members.clear()
        a.paused.clear()
        a.paused_all = None
        self._mark(a, r.when, r)

    _on_agentcallbacklogoff = _on_agentlogoff

    # -- system lines ----------------------------------------------------------
    def _on_configreload(self, r: Record, i: int) -> None:
        self.out.tolerated["CONFIGRELOAD"] += 1

    def _on_queuestart(self, r: Record, i: int) -> None:
        """app_queue (re)started: calls it was handling are gone."""
        live = [c for c in self.calls.values() if c.state not in ("ended",)]
        if not live:
            self.out.tolerated["QUEUESTART"] += 1
        for c in sorted(live, key=lambda c: c.callid):
            self._end(r, c, "system", "asterisk_restart", suffix=f"end:{c.callid}")
