"""What Asterisk reported, as commands on the core.

The tracker only observes: it keeps which channel and bridge belong to which
conversation and turns each meaningful ARI event into commands stamped with
Asterisk's own timestamp (``occurred_at``) and a command id derived from the
event (so a duplicate or replayed event is refused by the aggregate). It
makes no ARI request, which is why captured traces replay through it as they
are, and why the flow (``flow.py``) can drive the same calls live.

Rules drawn from the captured Asterisk 22 traces:

* An inbound call is a ``StasisStart`` without ``args`` (and without
  ``replace_channel``). Agent legs are originated with ``appArgs
  agent,<employee>[,<call>]``; their ``ChannelCreated`` is the alerting, their
  ``StasisStart`` the answer (Asterisk only hands an originated channel to the
  app once it answers).
* An agent leg destroyed before it answered is ring-no-answer: cause 19 (no
  ``Dial NOANSWER`` ever comes), 17 busy, others unavailable.
* ``ChannelHold`` only comes from the phone (re-INVITE sendonly), never from
  ``POST /channels/{id}/hold``: holds we ask for are recorded by the control
  surface, not here.
* A hang-up we asked for through ARI shows as ``ChannelHangupRequest`` with
  ``soft: true, cause: 32`` on the Stasis channel itself; a caller's own
  hang-up does not.
* Bridge ``Recording*`` events arrive twice: the second has the same id and
  is a duplicate by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from uuid import UUID

from commands import messages as m
from domain.call import call_id_for
from telephony_adapter.stasis.config import TelephonyConfig
from telephony_adapter.stasis.events import channel_id, command_id, timestamp

AGENT_CHANNEL = re.compile(r"^agent-(?P<emp>[^-]+)-")
SNOOP_NAME = re.compile(r"^Snoop/(?P<spied>.+)-[0-9a-f]{8}$")

# appArgs roles of channels the app originates itself; anything else
# entering Stasis is an inbound call
OWN_ROLES = {"agent", "consult", "party", "supervisor", "barge", "listener"}

# the cause of the Ended of a call the center transferred out
TRANSFERRED_OUT = "transferred out"

RING_OUTCOME_BY_CAUSE = {19: "no_answer", 18: "no_answer", 17: "busy", 21: "rejected",
                         16: "canceled"}


@dataclass
class Leg:
    channel: str
    employee_no: str
    role: str = "agent"  # agent | consult | party
    alerted: bool = False
    answered: bool = False
    released: bool = False  # transferred away or hung up
    canceled: bool = False  # a consult leg the agent hung up (taking the caller back)


@dataclass
class CallView:
    external_id: str  # the caller's Stasis channel id
    call_id: UUID
    caller_channel: str
    # offered | ivr | queued | ringing | connected | held | outside | ended
    # (outside: the agent's phone transferred the caller out of the center and
    # Asterisk put the outside party, or the Local channel dialling it, in our
    # bridge with them; the call lasts until one of them hangs up)
    state: str = "offered"
    bridge: str | None = None
    outside: str | None = None  # the channel in our bridge reaching the outside party
    legs: dict[str, Leg] = field(default_factory=dict)
    agent_leg: str | None = None  # the leg currently serving the caller
    hangup_by: str | None = None  # set when we ask Asterisk to hang the caller up
    hangup_cause: str | None = None
    ari_hangup_seen: bool = False
    hangup_requested: bool = False
    snoops: dict[str, str] = field(default_factory=dict)  # snoop channel -> supervisor
    recordings: set[str] = field(default_factory=set)
    survey: bool = False  # the caller is taking the post-call survey
    answered: bool = False

    @property
    def live(self) -> bool:
        return self.state != "ended"

    def serving(self) -> Leg | None:
        return self.legs.get(self.agent_leg) if self.agent_leg else None


@dataclass(frozen=True)
class Signal:
    """Something the flow reacts to (not a command)."""

    # offered | leg_answered | leg_failed | consult_ended | agent_hung_up | call_ended |
    # call_gone | transferred | transferred_out | taken_over | orphan | dtmf | playback_finished |
    # snoop_started | snoop_ended | listener | listener_gone
    kind: str
    external_id: str
    channel: str = ""
    employee_no: str = ""
    detail: str = ""
    at: datetime | None = None


@dataclass
class Translation:
    commands: list[m.Command] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)


class CallTracker:
    def __init__(self, config: TelephonyConfig, *, default_queue: str | None = None,
                 actor: str = "asterisk") -> None:
        self.config = config
        self.default_queue = default_queue or config.ivr.agent_queue
        self.actor = actor
        self.calls: dict[str, CallView] = {}
        self.channels: dict[str, tuple[str, str]] = {}  # channel -> (external id, role)
        self.bridges: dict[str, str] = {}  # bridge -> external id
        self.recordings: dict[str, str] = {}  # recording name -> external id
        self._expected: dict[str, tuple[str, str, str]] = {}  # channel -> (ext, employee, role)
        self._replaced: dict[str, str] = {}  # transferer's channel -> what took its seat
        # who is logged in on a phone (``PJSIP/1002``); the app plugs in what
        # the agents' records say, replays fall back to the phone's number
        self.agent_of_endpoint: Callable[[str], str | None] = _agent_by_convention

    # -- what the flow tells us before acting -------------------------------
    def expect_leg(self, channel: str, external_id: str, employee_no: str,
                   role: str = "agent") -> None:
        self._expected[channel] = (external_id, employee_no, role)

    def forget_expected(self, channel: str) -> None:
        self._expected.pop(channel, None)

    def consulting_employees(self) -> set[str]:
        """Colleagues on (or being rung for) a consultation of a live call."""
        out = {emp for ext, emp, role in self._expected.values() if role == "consult"}
        for view in self.calls.values():
            if view.live:
                out.update(leg.employee_no for leg in view.legs.values()
                           if leg.role == "consult" and not leg.released
                           and leg.channel in self.channels)
        return out

    def expected_legs(self, external_id: str) -> list[str]:
        """Legs dialled for this call that Asterisk has not reported yet."""
        return [ch for ch, (ext, _, _) in self._expected.items() if ext == external_id]

    def mark_hangup(self, external_id: str, by: str, cause: str) -> None:
        view = self.calls.get(external_id)
        if view is not None and view.hangup_by is None:
            view.hangup_by, view.hangup_cause = by, cause

    def adopt(self, external_id: str, call_id: UUID, state: str) -> CallView:
        """Follow a caller this tracker never saw arrive (left in Stasis by an
        adapter that stopped): their events are ours from now on."""
        view = CallView(external_id=external_id, call_id=call_id, caller_channel=external_id,
                        state=state)
        self.calls[external_id] = view
        self.channels[external_id] = (external_id, "caller")
        return view

    def claim_bridge(self, bridge: str, external_id: str) -> None:
        self.bridges[bridge] = external_id

    def knows(self, channel: str) -> bool:
        """A channel of a call we follow, or one we are waiting for."""
        return channel in self.channels or channel in self.calls or channel in self._expected

    def call_of_channel(self, channel: str) -> CallView | None:
        owner = self.channels.get(channel)
        return self.calls.get(owner[0]) if owner else None

    def live_calls(self) -> list[CallView]:
        return [c for c in self.calls.values() if c.live]

    # -- helpers ---------------------------------------------------------------
    def _kw(self, ev: dict[str, Any], what: str, subject: str = "") -> dict[str, Any]:
        return {"occurred_at": timestamp(ev), "command_id": command_id(ev, what, subject),
                "actor": self.actor}

    def _ensure_queued(self, view: CallView, ev: dict[str, Any], out: Translation) -> None:
        # A leg offered to a call that never went through our queue (a trace
        # driven by another app, a REFER target): the call was waiting for it.
        if view.state in ("offered", "ivr"):
            out.commands.append(m.QueueCall(call_id=view.call_id, queue=self.default_queue,
                                            **self._kw(ev, "queue")))
            view.state = "queued"

    def _alert(self, view: CallView, leg: Leg, ev: dict[str, Any], out: Translation) -> None:
        if leg.alerted or not view.live:
            return
        self._ensure_queued(view, ev, out)
        if view.state != "queued":
            return
        leg.alerted = True
        out.commands.append(m.AlertAgent(call_id=view.call_id, employee_no=leg.employee_no,
                                         leg_id=leg.channel,
                                         endpoint=_endpoint_of(ev.get("channel") or {}),
                                         **self._kw(ev, "alert", leg.channel)))
        view.state = "ringing"
        view.agent_leg = leg.channel

    def _alert_consult(self, view: CallView, leg: Leg, ev: dict[str, Any],
                       out: Translation) -> None:
        """The colleague's phone rings for a consultation (attended transfer
        through the API) while the caller is connected or held."""
        if leg.alerted or not view.live or view.state not in ("connected", "held"):
            return
        leg.alerted = True
        out.commands.append(m.AlertConsult(call_id=view.call_id, employee_no=leg.employee_no,
                                           leg_id=leg.channel,
                                           endpoint=_endpoint_of(ev.get("channel") or {}),
                                           **self._kw(ev, "consult-alert", leg.channel)))

    def _leg_for_new_channel(self, ev: dict[str, Any], ch: dict[str, Any]) -> tuple[CallView, Leg] | None:
        cid = str(ch.get("id", ""))
        if cid in self.channels:
            owner = self.channels[cid]
            view = self.calls.get(owner[0])
            if view is not None and cid in view.legs:
                return view, view.legs[cid]
            return None
        expected = self._expected.pop(cid, None)
        if expected is not None:
            ext, emp, role = expected
            view = self.calls.get(ext)
        else:
            match = AGENT_CHANNEL.match(cid)
            if not match or cid.endswith("-phone"):
                return None
            emp, role = match.group("emp"), "agent"
            view = self._waiting_call()
        if view is None:
            return None
        leg = Leg(channel=cid, employee_no=emp, role=role)
        view.legs[cid] = leg
        self.channels[cid] = (view.external_id, role)
        return view, leg

    def _waiting_call(self) -> CallView | None:
        # Legs originated by someone else carry no call reference: they are
        # for the caller who has waited longest without an agent.
        for view in self.calls.values():
            if view.live and view.state in ("offered", "ivr", "queued"):
                return view
        return None

    # -- the translation -------------------------------------------------------
    def translate(self, ev: dict[str, Any]) -> Translation:
        out = Translation()
        handler = getattr(self, f"_on_{ev.get('type')}", None)
        if handler is not None:
            handler(ev, out)
        return out

    def _on_StasisStart(self, ev: dict[str, Any], out: Translation) -> None:
        ch = ev.get("channel") or {}
        cid = str(ch.get("id", ""))
        args = [str(a) for a in ev.get("args") or []]
        role = args[0] if args else ""
        if ev.get("replace_channel"):
            # A Local channel taking the transferer's seat: a REFER's target
            # (Local/2000@...) or, for an attended transfer by the phone, the
            # link to the colleague (Local/_attended@transfer...).
            seat = str(ev["replace_channel"].get("id", ""))
            replaced = self.call_of_channel(seat)
            if replaced is not None:
                self.channels[cid] = (replaced.external_id, "replacement")
                self._replaced[seat] = cid
            return
        if role in ("agent", "consult", "party"):
            if len(args) >= 3 and args[2] and cid not in self.channels and cid not in self._expected:
                self._expected[cid] = (args[2], args[1] if len(args) > 1 else "", role)
            found = self._leg_for_new_channel(ev, ch)
            if found is None:
                return
            view, leg = found
            if not view.live:
                # answered after the caller left: nobody to talk to
                out.signals.append(Signal("orphan", view.external_id, cid, leg.employee_no,
                                          at=timestamp(ev)))
                return
            if leg.role == "party":
                leg.answered = True
                out.commands.append(m.AddConferenceParty(call_id=view.call_id,
                                                         party=_party(leg), **self._kw(ev, "conf-join")))
                out.signals.append(Signal("leg_answered", view.external_id, cid, leg.employee_no,
                                          "party", timestamp(ev)))
                return
            if leg.role == "consult":
                self._alert_consult(view, leg, ev, out)
                if not leg.alerted or leg.answered:
                    return
                leg.answered = True
                out.commands.append(m.AnswerConsult(call_id=view.call_id, leg_id=cid,
                                                    **self._kw(ev, "consult-answer")))
                out.signals.append(Signal("leg_answered", view.external_id, cid, leg.employee_no,
                                          "consult", timestamp(ev)))
                return
            self._alert(view, leg, ev, out)
            if view.agent_leg != cid or view.state != "ringing":
                return
            leg.answered = True
            view.state = "connected"
            view.answered = True
            out.commands.append(m.AnswerCall(call_id=view.call_id, leg_id=cid,
                                             **self._kw(ev, "answer")))
            out.signals.append(Signal("leg_answered", view.external_id, cid, leg.employee_no,
                                      "agent", timestamp(ev)))
            return
        if role in ("supervisor", "barge"):
            self._on_supervisor_start(ev, args, out)
            return
        if role in OWN_ROLES:
            # our own helper channels (a supervisor's phone for listening)
            if len(args) >= 3 and args[2] in self.calls:
                self.channels[cid] = (args[2], role)
                out.signals.append(Signal(role, args[2], cid, args[1], at=timestamp(ev)))
            return
        if cid in self.calls:
            return
        view = CallView(external_id=cid, call_id=call_id_for(cid), caller_channel=cid)
        self.calls[cid] = view
        self.channels[cid] = (cid, "caller")
        caller = (ch.get("caller") or {}).get("number") or None
        out.commands.append(m.OfferCall(external_id=cid,
                                        dialed_number=str((ch.get("dialplan") or {}).get("exten") or "unknown"),
                                        caller_number=caller, trunk=_trunk(ch),
                                        **self._kw(ev, "offer")))
        out.signals.append(Signal("offered", cid, cid, at=timestamp(ev)))

    def _on_supervisor_start(self, ev: dict[str, Any], args: list[str], out: Translation) -> None:
        ch = ev.get("channel") or {}
        cid = str(ch.get("id", ""))
        role = args[0]
        supervisor = args[1] if len(args) > 1 and args[1] else "supervisor"
        mode = args[2] if len(args) > 2 and args[2] else ("barge" if role == "barge" else "listen")
        view: CallView | None = None
        if len(args) > 3 and args[3]:
            view = self.calls.get(args[3])
        if view is None:
            spied = SNOOP_NAME.match(str(ch.get("name", "")))
            if spied:
                view = self.call_of_channel(spied.group("spied"))
        if view is None or not view.live:
            return
        self.channels[cid] = (view.external_id, "snoop")
        view.snoops[cid] = supervisor
        if view.state not in ("connected", "held"):
            return
        out.commands.append(m.StartMonitor(call_id=view.call_id, supervisor_id=supervisor,
                                           mode=mode, **self._kw(ev, "monitor")))
        out.signals.append(Signal("snoop_started", view.external_id, cid, supervisor, mode,
                                  timestamp(ev)))

    def _on_ChannelCreated(self, ev: dict[str, Any], out: Translation) -> None:
        found = self._leg_for_new_channel(ev, ev.get("channel") or {})
        if found is None:
            return
        view, leg = found
        if leg.role == "agent":
            self._alert(view, leg, ev, out)
        elif leg.role == "consult":
            self._alert_consult(view, leg, ev, out)

    def _on_ChannelHangupRequest(self, ev: dict[str, Any], out: Translation) -> None:
        view = self.calls.get(channel_id(ev))
        if view is None:
            return
        if not view.hangup_requested and ev.get("soft") and ev.get("cause") == 32:
            view.ari_hangup_seen = True
        view.hangup_requested = True

    def _on_StasisEnd(self, ev: dict[str, Any], out: Translation) -> None:
        cid = channel_id(ev)
        owner = self.channels.get(cid)
        if owner is None:
            return
        view = self.calls.get(owner[0])
        if view is None:
            return
        role = owner[1]
        if role == "snoop":
            supervisor = view.snoops.pop(cid, None)
            if supervisor is not None and view.live and supervisor not in view.snoops.values():
                out.commands.append(m.StopMonitor(call_id=view.call_id, supervisor_id=supervisor,
                                                  **self._kw(ev, "unmonitor")))
            if supervisor is not None:
                out.signals.append(Signal("snoop_ended", view.external_id, cid, supervisor,
                                          at=timestamp(ev)))
        elif role == "listener":
            out.signals.append(Signal("listener_gone", view.external_id, cid, at=timestamp(ev)))
        elif role == "caller" and view.live and not view.hangup_requested:
            # Left Stasis alive (``continue`` into the dialplan): the caller
            # went on to whatever the dialplan does; our part is over.
            out.commands.append(m.EndCall(call_id=view.call_id, hung_up_by="transfer",
                                          cause="left the application for the dialplan",
                                          **self._kw(ev, "end")))
            view.state = "ended"
            out.signals.append(Signal("call_ended", view.external_id, cid, detail="transfer",
                                      at=timestamp(ev)))

    def _on_ChannelDestroyed(self, ev: dict[str, Any], out: Translation) -> None:
        cid = channel_id(ev)
        owner = self.channels.pop(cid, None)
        if owner is None:
            self._expected.pop(cid, None)
            return
        view = self.calls.get(owner[0])
        if view is None:
            return
        role = owner[1]
        cause = int(ev.get("cause") or 0)
        cause_txt = str(ev.get("cause_txt") or "")
        if role == "caller":
            self._caller_gone(view, ev, cause, cause_txt, out)
        elif role in ("agent", "consult", "party"):
            self._leg_gone(view, view.legs.get(cid), ev, cause, cause_txt, out)
        elif role == "outside":
            self._outside_gone(view, cid, ev, cause, out)
        elif role == "snoop":
            supervisor = view.snoops.pop(cid, None)
            if supervisor is not None and view.live and supervisor not in view.snoops.values():
                out.commands.append(m.StopMonitor(call_id=view.call_id, supervisor_id=supervisor,
                                                  **self._kw(ev, "unmonitor")))

    def _caller_gone(self, view: CallView, ev: dict[str, Any], cause: int, cause_txt: str,
                     out: Translation) -> None:
        if not view.live:
            out.signals.append(Signal("call_gone", view.external_id, view.caller_channel,
                                      at=timestamp(ev)))
            return
        if view.state == "outside" and not view.hangup_by:
            # transferred out by the agent's phone: the conversation with the
            # outside party ends with the caller
            who = ("hung up by the application" if view.ari_hangup_seen
                   else "the caller hung up")
            by, text = "transfer", f"{TRANSFERRED_OUT}; {who}"
        elif view.hangup_by:
            by, text = view.hangup_by, view.hangup_cause or cause_txt
        elif cause == 23:
            by, text = "transfer", cause_txt or "Redirected to new destination"
        elif view.ari_hangup_seen:
            by, text = "system", cause_txt or "hung up by the application"
        else:
            by, text = "caller", cause_txt
        out.commands.append(m.EndCall(call_id=view.call_id, hung_up_by=by, cause=text or "normal",
                                      cause_code=cause or None, **self._kw(ev, "end")))
        view.state = "ended"
        out.signals.append(Signal("call_ended", view.external_id, view.caller_channel,
                                  detail=by, at=timestamp(ev)))
        out.signals.append(Signal("call_gone", view.external_id, view.caller_channel,
                                  at=timestamp(ev)))

    def _outside_gone(self, view: CallView, channel: str, ev: dict[str, Any], cause: int,
                      out: Translation) -> None:
        """The outside party a phone transferred the caller to hung up (its
        Local channel in our bridge goes with it): the call is over, and the
        caller, alone in the bridge, is hung up by the flow."""
        if not view.live or view.state != "outside" or view.outside != channel:
            return
        out.commands.append(m.EndCall(call_id=view.call_id, hung_up_by="transfer",
                                      cause=f"{TRANSFERRED_OUT}; the outside party hung up",
                                      cause_code=cause or None,
                                      **self._kw(ev, "end", channel)))
        view.state = "ended"
        view.hangup_by, view.hangup_cause = "transfer", "the outside party hung up"
        out.signals.append(Signal("call_ended", view.external_id, view.caller_channel,
                                  detail="outside", at=timestamp(ev)))

    def _leg_gone(self, view: CallView, leg: Leg | None, ev: dict[str, Any], cause: int,
                  cause_txt: str, out: Translation) -> None:
        if leg is None or leg.released:
            return
        leg.released = True
        if leg.role == "party":
            if leg.answered and view.live:
                out.commands.append(m.RemoveConferenceParty(call_id=view.call_id, party=_party(leg),
                                                            **self._kw(ev, "conf-leave")))
            return
        if leg.role == "consult":
            outcome = _ring_outcome(cause, taken_back=leg.canceled)
            if view.live and leg.alerted and view.state in ("connected", "held"):
                if leg.answered:
                    out.commands.append(m.EndConsult(
                        call_id=view.call_id, leg_id=leg.channel,
                        ended_by="agent" if leg.canceled else "colleague",
                        wrap_up=False,  # they only consulted: back to ready
                        **self._kw(ev, "consult-end")))
                else:
                    out.commands.append(m.ReportConsultMissed(
                        call_id=view.call_id, leg_id=leg.channel, outcome=outcome,
                        **self._kw(ev, "consult-missed")))
            out.signals.append(Signal("leg_failed" if not leg.answered else "consult_ended",
                                      view.external_id, leg.channel, leg.employee_no,
                                      outcome, timestamp(ev)))
            return
        if not view.live:
            return
        if view.agent_leg != leg.channel:
            return
        if not leg.answered:
            if view.state != "ringing":
                return
            outcome = _ring_outcome(cause)
            out.commands.append(m.ReportRingNoAnswer(call_id=view.call_id, leg_id=leg.channel,
                                                     outcome=outcome, **self._kw(ev, "rna")))
            view.state, view.agent_leg = "queued", None
            out.signals.append(Signal("leg_failed", view.external_id, leg.channel,
                                      leg.employee_no, outcome, timestamp(ev)))
            return
        # The agent left while the caller is still there: agent hung up first.
        out.commands.append(m.EndCall(call_id=view.call_id, hung_up_by="agent",
                                      cause=cause_txt or "normal", cause_code=cause or None,
                                      **self._kw(ev, "end")))
        view.state = "ended"
        out.signals.append(Signal("agent_hung_up", view.external_id, leg.channel, leg.employee_no,
                                  at=timestamp(ev)))
        out.signals.append(Signal("call_ended", view.external_id, view.caller_channel,
                                  detail="agent", at=timestamp(ev)))

    def _on_ChannelEnteredBridge(self, ev: dict[str, Any], out: Translation) -> None:
        cid = channel_id(ev)
        bridge = str((ev.get("bridge") or {}).get("id", ""))
        view = self.call_of_channel(cid)
        if view is not None and bridge and self.channels[cid][1] == "caller":
            view.bridge = bridge
            self.bridges[bridge] = view.external_id
            if (ev.get("bridge") or {}).get("bridge_type") == "holding" and view.live:
                # a holding bridge is where callers wait for an agent
                self._ensure_queued(view, ev, out)

    def _hold(self, ev: dict[str, Any], out: Translation, held: bool) -> None:
        cid = channel_id(ev)
        view = self.call_of_channel(cid)
        if view is None or not view.live:
            return
        role = self.channels[cid][1]
        if role == "agent" and view.agent_leg != cid:
            return
        by = "caller" if role == "caller" else "agent"
        if held and view.state == "connected":
            out.commands.append(m.HoldCall(call_id=view.call_id, by=by, **self._kw(ev, "hold")))
            view.state = "held"
        elif not held and view.state == "held":
            out.commands.append(m.ResumeCall(call_id=view.call_id, by=by, **self._kw(ev, "resume")))
            view.state = "connected"

    def _on_ChannelHold(self, ev: dict[str, Any], out: Translation) -> None:
        self._hold(ev, out, True)

    def _on_ChannelUnhold(self, ev: dict[str, Any], out: Translation) -> None:
        self._hold(ev, out, False)

    def _recording_call(self, rec: dict[str, Any]) -> CallView | None:
        name = str(rec.get("name", ""))
        if name in self.recordings:
            return self.calls.get(self.recordings[name])
        kind, _, target = str(rec.get("target_uri", "")).partition(":")
        if kind == "bridge":
            ext = self.bridges.get(target)
            return self.calls.get(ext) if ext else None
        if kind == "channel":
            return self.call_of_channel(target)
        return None

    def _on_RecordingStarted(self, ev: dict[str, Any], out: Translation) -> None:
        rec = ev.get("recording") or {}
        name = str(rec.get("name", ""))
        view = self._recording_call(rec)
        if view is None or not view.live or not name:
            return
        self.recordings[name] = view.external_id
        if name in view.recordings:
            return  # the duplicate Asterisk sends for bridge recordings
        view.recordings.add(name)
        out.commands.append(m.StartRecording(call_id=view.call_id, recording=name,
                                             target=str(rec.get("target_uri", "")),
                                             format=str(rec.get("format") or "wav"),
                                             **self._kw(ev, "rec-start", name)))

    def _on_RecordingFinished(self, ev: dict[str, Any], out: Translation) -> None:
        self._recording_over(ev, out)

    def _on_RecordingFailed(self, ev: dict[str, Any], out: Translation) -> None:
        self._recording_over(ev, out)

    def _recording_over(self, ev: dict[str, Any], out: Translation) -> None:
        rec = ev.get("recording") or {}
        name = str(rec.get("name", ""))
        view = self._recording_call(rec)
        if view is None or name not in view.recordings:
            return
        view.recordings.discard(name)
        duration = rec.get("duration")
        out.commands.append(m.StopRecording(call_id=view.call_id, recording=name,
                                            cause=str(rec.get("state") or "done"),
                                            duration_s=float(duration) if duration is not None else None,
                                            **self._kw(ev, "rec-stop", name)))

    def _transfer(self, ev: dict[str, Any], out: Translation, kind: str, transferer: str,
                  destination: str, seat: str | None = None) -> None:
        view = self.call_of_channel(transferer)
        if view is None or not view.live or view.agent_leg != transferer:
            return
        if view.state not in ("connected", "held"):
            return
        if seat is None:
            # a REFER's Local channel took the transferer's seat in our bridge
            seat = self._replaced.pop(transferer, None)
        target_type, target = self.config.resolve_transfer(destination)
        leg = view.legs.get(transferer)
        if leg is not None:
            leg.released = True
        out.commands.append(m.TransferCall(call_id=view.call_id, kind=kind, target_type=target_type,
                                           target=target, **self._kw(ev, "transfer", transferer)))
        view.agent_leg = None
        if target_type == "external" and seat and self.channels.get(seat, ("",))[0] == view.external_id:
            # Asterisk already connected the caller with the outside party
            # through the channel now in our bridge: the call goes on there
            # (bridge and recording kept) until either of them hangs up.
            self.channels[seat] = (view.external_id, "outside")
            view.outside, view.state = seat, "outside"
            out.signals.append(Signal("transferred_out", view.external_id, seat,
                                      leg.employee_no if leg else "", target, timestamp(ev)))
        elif target_type == "external":
            # nothing reaches the number yet (ari-only REFER handling): the
            # flow sends the caller on through the dialplan; our part ends here
            out.commands.append(m.EndCall(call_id=view.call_id, hung_up_by="transfer",
                                          cause=TRANSFERRED_OUT,  # the number is in Transferred.pii
                                          **self._kw(ev, "end", transferer)))
            view.state = "ended"
            out.signals.append(Signal("transferred_out", view.external_id, "",
                                      leg.employee_no if leg else "", target, timestamp(ev)))
            out.signals.append(Signal("call_ended", view.external_id, view.caller_channel,
                                      detail="transfer", at=timestamp(ev)))
        else:
            view.state = "queued"
            out.signals.append(Signal("transferred", view.external_id, transferer,
                                      leg.employee_no if leg else "", f"{target_type}:{target}",
                                      timestamp(ev)))

    def _on_BridgeBlindTransfer(self, ev: dict[str, Any], out: Translation) -> None:
        self._transfer(ev, out, "blind", channel_id(ev), str(ev.get("exten") or ""))

    def _on_BridgeAttendedTransfer(self, ev: dict[str, Any], out: Translation) -> None:
        """The agent's phone joined the caller with the colleague it had
        called itself (REFER with Replaces). Our bridge is a Stasis bridge,
        which Asterisk neither merges nor swaps: it linked it to the
        colleague's with a Local pair whose ``;1`` took the agent's seat (its
        StasisStart carried ``replace_channel``). The caller is already
        talking with the colleague through that seat, which becomes the
        colleague's leg; the call carries on in the same bridge, recording
        included."""
        if str(ev.get("result") or "") != "Success":
            return
        first = channel_id(ev, "transferer_first_leg")
        view = self.call_of_channel(first)
        if view is None or not view.live or view.agent_leg != first:
            return
        if view.state not in ("connected", "held"):
            return
        target = ev.get("transfer_target") or {}
        seat = self._replaced.pop(first, "")
        employee = self.agent_of_endpoint(_endpoint_of(target)) if target else None
        if not employee or not seat:
            # not one of our agents (or no seat taken in our bridge): the
            # caller was transferred away from the center
            destination = ev.get("destination_application") or _endpoint_of(target)
            self._transfer(ev, out, "attended", first,
                           str(destination or ev.get("destination_type") or ""), seat=seat)
            return
        self._take_over(view, ev, first, seat, employee, _endpoint_of(target), out)

    def _take_over(self, view: CallView, ev: dict[str, Any], transferer: str, seat: str,
                   employee: str, endpoint: str, out: Translation) -> None:
        # The colleague was on the line with the agent already: recorded as
        # the consultation the API would make (the colleague's leg is the
        # seat, alerted and answered at the moment Asterisk reports), then
        # the attended transfer hands the call to that leg. A colleague the
        # domain cannot ring (logged out, busy) makes AlertConsult fail and
        # with it the rest (no live consult leg): the call stays connected
        # with the first agent, never transferred to a leg it does not know.
        # ``seat`` is the channel in our bridge (a Local ;1 for a link).
        kw_alert = self._kw(ev, "consult-alert", seat)
        out.commands.append(m.AlertConsult(call_id=view.call_id, employee_no=employee,
                                           leg_id=seat, endpoint=endpoint, **kw_alert))
        out.commands.append(m.AnswerConsult(call_id=view.call_id, leg_id=seat,
                                            **self._kw(ev, "consult-answer", seat)))
        out.commands.append(m.TransferCall(call_id=view.call_id, kind="attended",
                                           target_type="agent", target=employee, to_leg_id=seat,
                                           **self._kw(ev, "transfer", transferer)))
        old = view.legs.get(transferer)
        if old is not None:
            old.released = True
        view.legs[seat] = Leg(channel=seat, employee_no=employee, alerted=True, answered=True)
        self.channels[seat] = (view.external_id, "agent")
        view.agent_leg, view.state = seat, "connected"
        out.signals.append(Signal("taken_over", view.external_id, seat, employee,
                                  at=timestamp(ev)))

    def _on_ChannelTransfer(self, ev: dict[str, Any], out: Translation) -> None:
        # ari-only REFER handling: the first event is the request; the one
        # carrying ``state`` is our own transfer_progress echoed back.
        if ev.get("state"):
            return
        referred_by = ev.get("referred_by") or {}
        cid = channel_id(ev) or str((referred_by.get("source_channel") or {}).get("id", ""))
        dest = str(((ev.get("refer_to") or {}).get("requested_destination") or {})
                   .get("destination", ""))
        view = self.call_of_channel(cid) if cid else None
        if view is None:
            view = next((v for v in self.live_calls() if v.state in ("connected", "held")), None)
            if view is None or view.agent_leg is None:
                return
            cid = view.agent_leg
        self._transfer(ev, out, "blind", cid, dest)

    def _on_ChannelDtmfReceived(self, ev: dict[str, Any], out: Translation) -> None:
        cid = channel_id(ev)
        view = self.calls.get(cid)
        if view is not None:
            out.signals.append(Signal("dtmf", view.external_id, cid, detail=str(ev.get("digit", "")),
                                      at=timestamp(ev)))

    def _on_PlaybackFinished(self, ev: dict[str, Any], out: Translation) -> None:
        pb = ev.get("playback") or {}
        kind, _, target = str(pb.get("target_uri", "")).partition(":")
        view = self.calls.get(target) if kind == "channel" else None
        if view is not None:
            out.signals.append(Signal("playback_finished", view.external_id, target,
                                      detail=f"{pb.get('id', '')}|{pb.get('state', '')}",
                                      at=timestamp(ev)))

    # -- reconcile -------------------------------------------------------------
    def reconcile(self, live_channels: set[str], cause: str, at: datetime,
                  epoch: str) -> Translation:
        """After a reconnect: every call whose channel vanished while we were
        not listening is closed; live ones continue. ``epoch`` makes the
        command ids unique to this reconnect."""
        out = Translation()
        for view in list(self.calls.values()):
            if not view.live:
                continue
            kw = {"occurred_at": at, "actor": self.actor}
            if view.caller_channel not in live_channels:
                out.commands.append(m.EndCall(call_id=view.call_id, hung_up_by="system", cause=cause,
                                              command_id=f"reconcile:{epoch}:{view.external_id}",
                                              **kw))
                view.state = "ended"
                out.signals.append(Signal("call_ended", view.external_id, view.caller_channel,
                                          detail="system", at=at))
                out.signals.append(Signal("call_gone", view.external_id, view.caller_channel, at=at))
                for ch in [view.caller_channel, *view.legs, *view.snoops]:
                    self.channels.pop(ch, None)
                continue
            if view.state == "outside" and view.outside and view.outside not in live_channels:
                # the outside party hung up while we were not listening
                seat = view.outside
                self.channels.pop(seat, None)
                before = len(out.commands)
                self._outside_gone(view, seat, {"timestamp": at.isoformat()}, 0, out)
                for cmd in out.commands[before:]:
                    cmd.command_id = f"reconcile:{epoch}:{seat}:{type(cmd).__name__}"
                    cmd.occurred_at = at
                continue
            leg = view.serving()
            if leg is not None and leg.channel not in live_channels and not leg.released:
                fake = {"timestamp": at.isoformat(), "channel": {"id": leg.channel}}
                self.channels.pop(leg.channel, None)
                before = len(out.commands)
                self._leg_gone(view, leg, fake, 0, cause, out)
                for cmd in out.commands[before:]:
                    cmd.command_id = f"reconcile:{epoch}:{leg.channel}:{type(cmd).__name__}"
                    cmd.occurred_at = at
        return out


def _ring_outcome(cause: int, *, taken_back: bool = False) -> str:
    """How a leg that never answered ended, from its hang-up cause. A
    ``canceled`` cause there is our own hang-up when the ring timed out (no
    answer); ``taken_back``: the agent hung up their consultation, taking
    the caller back (canceled)."""
    if taken_back:
        return "canceled"
    outcome = RING_OUTCOME_BY_CAUSE.get(cause, "unavailable")
    return "no_answer" if outcome == "canceled" else outcome


def _trunk(ch: dict[str, Any]) -> str:
    name = str(ch.get("name", ""))
    return name.rsplit("-", 1)[0] if "-" in name else name


def _endpoint_of(ch: dict[str, Any]) -> str:
    name = str(ch.get("name", ""))
    if name.startswith("Local/"):
        return name.split("-")[0] if ";" not in name else name.rsplit("-", 1)[0]
    return name.rsplit("-", 1)[0] if "-" in name else name


def _agent_by_convention(endpoint: str) -> str | None:
    """``PJSIP/1002`` -> ``1002``: agents log in on the phone numbered after
    them, which is all a replayed trace can go by."""
    tech, _, resource = endpoint.partition("/")
    return resource if tech and resource.isdigit() else None


def _party(leg: Leg) -> str:
    return leg.employee_no or leg.channel
