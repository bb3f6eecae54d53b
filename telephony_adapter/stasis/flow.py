"""What the center decides for each call, executed over ARI.

Answer -> IVR (``domain.ivr``) -> self-service or queue -> music on hold with
position announcements -> the ACD (``domain.routing``) picks an agent ->
originate to the agent's endpoint -> bridge and record on answer -> on an
agent hanging up first, the satisfaction survey.

Decisions are recorded as commands (EnterIvr, ChooseMenuOption,
UseSelfService, QueueCall, AnswerSurvey, MakeNotReady...) stamped with the
time of the ARI event that caused them. Facts (alerting, answer, hang-up) are
the tracker's business. Timers (digit timeouts, ring timeouts, overflow,
announcements) are deadlines on the app's clock checked by one ticker, so
that the simulator's compressed time drives them like real time.

The ACD's view of agents follows the event log (any Agent event reloads
that agent), so readiness set through the HTTP API or CLI reaches routing
without the adapter being told.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from commands import messages as m
from domain.agent import Agent, AgentState
from domain.call import OVERFLOW_ACTOR  # the actor of an overflow: "acd-overflow:<queue left>"
from domain.errors import DomainError
from domain.ivr import Chosen, Entered, IvrSession, Lookup, Play, Step, ToQueue
from domain.routing import Acd
from telephony_adapter.ari.errors import AriError
from telephony_adapter.stasis.selfservice import Answer, SelfServiceDesk
from telephony_adapter.stasis.tracker import Signal

if TYPE_CHECKING:
    from telephony_adapter.stasis.app import StasisApp

log = logging.getLogger(__name__)

TICK_S = 0.05  # real seconds between timer checks
SURVEY_PROMPT = ("custom/survey-rate-1-to-5",)
SURVEY_THANKS = ("auth-thankyou",)
SURVEY_TIMEOUT_S = 10.0
# Asterisk's originate timeout ends an unanswered ring; we hang up ourselves
# only this long after it should have, so a late event is not mistaken for
# silence.
RING_GRACE_S = 30.0


@dataclass
class CallPlan:
    external_id: str
    call_id: Any
    mode: str = "new"  # ivr | queue | announce | talk | survey | bye | gone
    session: IvrSession | None = None
    playlist: deque[str] = field(default_factory=deque)
    playback: str | None = None
    timeout_s: float | None = None  # digit timeout once the prompt has played
    deadline: datetime | None = None
    seq: int = 0
    bridge: str | None = None
    moh: bool = False
    agent_channel: str | None = None
    recordings: int = 0
    # a number reached the service's max_digits and was looked up: the "#"
    # the prompt asked for may still follow, and is not a menu choice
    complete_number: bool = False
    # "" for a call this adapter offered; for one it adopted, what keeps its
    # command and playback ids apart from those of the adapter before it
    lineage: str = ""

    def next_id(self, what: str) -> str:
        self.seq += 1
        return f"flow:{self.external_id}{self.lineage}:{what}:{self.seq}"


class CallFlow:
    def __init__(self, app: StasisApp, *, self_service: Any = None,
                 auto_ready_after_s: float | None = None, tick_s: float = TICK_S) -> None:
        self.app = app
        self.rest = app.rest
        self.config = app.config
        self.tracker = app.tracker
        self.acd = Acd(app.config.queues)
        self.plans: dict[str, CallPlan] = {}
        if self_service is None:
            # the real lookups on the core the app runs on (never a desk
            # without one: every caller would hear "service unavailable")
            if getattr(app, "lianxin", None) is None:
                raise ValueError("the call flow's self-service needs the core it runs on")
            self_service = SelfServiceDesk(app.lianxin)
        self.self_service = self_service
        self.auto_ready_after_s = auto_ready_after_s
        self._ready_at: dict[str, tuple[datetime, str]] = {}
        self._log_position = 0
        self._ticker: asyncio.Task | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self.originated = 0
        self.listeners: dict[str, tuple[str, str]] = {}  # supervisor phone -> (bridge, snoop)
        # colleagues on a consultation: out of routing from the moment we call
        # them, before their record shows them ringing (ConsultAlerted)
        self.consulting: set[str] = set()
        self.endpoints: dict[str, str] = {}  # phone -> employee logged in on it
        app.tracker.agent_of_endpoint = self.endpoints.get
        self.tick_s = tick_s
        # the log is read again only after a commit (ours or an HTTP command's)
        self._log_dirty = True
        app.service.bus.on_commit(self._mark_dirty)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        await self.follow_agents()
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._ticker = None

    def lock_for(self, external_id: str) -> asyncio.Lock:
        """One call's reactions run one at a time (its lane, its timers, the
        control surface); different calls proceed side by side."""
        lock = self._locks.get(external_id)
        if lock is None:
            lock = self._locks[external_id] = asyncio.Lock()
        return lock

    def _mark_dirty(self, position: int) -> None:
        self._log_dirty = True

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                if self._log_dirty:
                    await self.follow_agents()
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the ticker must survive one bad call
                log.exception("flow tick failed")

    def now(self) -> datetime:
        return self.app.clock()

    # -- ARI helpers -------------------------------------------------------------
    async def ari(self, method: str, path: str, **params: Any) -> Any:
        """ARI request where 404/409/422 are the ordinary race of a caller
        hanging up between our decision and our request."""
        try:
            return await self.rest.request(method, path, params={k: v for k, v in params.items()
                                                                  if v is not None})
        except AriError as exc:
            log.debug("ARI %s %s: %s", method, path, exc)
            return exc

    async def submit(self, *cmds: m.Command) -> list[Any]:
        # decisions are recorded in order without holding the call up for the
        # disk; the control surface, which reports outcomes, waits instead
        return await self.app.submit(list(cmds), wait=not self.app.running)

    # -- agents from the event log ---------------------------------------------
    async def follow_agents(self) -> None:
        self._log_dirty = False
        recorder = self.app.service.app.recorder
        changed: set[Any] = set()
        while True:
            batch = await self.app.read(
                lambda: recorder.select_notifications(start=self._log_position, limit=1000,
                                                      inclusive_of_start=False))
            if not batch:
                break
            for n in batch:
                if n.topic.startswith("domain.agent:"):
                    changed.add(n.originator_id)
            self._log_position = batch[-1].id
            if len(batch) < 1000:
                break
        for agent_id in changed:
            agent = await self.app.read(self.app.service.app.repository.get, agent_id)
            self._sync_agent(agent)

    async def resync_agent(self, employee_no: str) -> None:
        """Routing takes an agent back after we held them out of it (a
        consultation that ended without a transfer)."""
        self.consulting.discard(employee_no)
        agent = await self.agent(employee_no)
        if agent is not None:
            self._sync_agent(agent)

    async def agent(self, employee_no: str) -> Agent | None:
        from domain.agent import agent_id_for

        try:
            return await self.app.read(self.app.service.app.repository.get,
                                       agent_id_for(employee_no))
        except Exception:  # noqa: BLE001 - unknown agent: nothing to route
            return None

    def _sync_agent(self, agent: Agent) -> None:
        emp = agent.employee_no
        for phone in [p for p, who in self.endpoints.items() if who == emp]:
            del self.endpoints[phone]
        if agent.endpoint:
            self.endpoints[agent.endpoint] = emp
        if emp in self.consulting:
            # an update to their record (skills, a late event) must not hand
            # a new caller to someone already on the phone with a colleague
            self.acd.agent_unavailable(emp)
            return
        if agent.state == AgentState.READY and agent.endpoint:
            if self.acd.ringing_for(emp) is None:
                self.acd.agent_ready(emp, skills=agent.skills,
                                     ready_since=agent.ready_since or agent.state_since,
                                     endpoint=agent.endpoint)
            self._ready_at.pop(emp, None)
        else:
            self.acd.agent_unavailable(emp)
            if self.auto_ready_after_s is not None and (
                    agent.state == AgentState.WRAP_UP
                    or (agent.state == AgentState.NOT_READY and agent.reason == "ring_no_answer")):
                when = agent.state_since + timedelta(seconds=self.auto_ready_after_s)
                self._ready_at[emp] = (when, agent.state_since.isoformat())
            else:
                self._ready_at.pop(emp, None)

    # -- signals from the tracker ----------------------------------------------
    async def on_signal(self, sig: Signal) -> None:
        async with self.lock_for(sig.external_id):
            handler = getattr(self, f"_on_{sig.kind}", None)
            if handler is not None:
                await handler(sig)

    def _plan(self, ext: str) -> CallPlan | None:
        plan = self.plans.get(ext)
        return plan if plan is not None and plan.mode != "gone" else None

    async def _on_offered(self, sig: Signal) -> None:
        view = self.tracker.calls[sig.external_id]
        plan = CallPlan(sig.external_id, view.call_id)
        self.plans[sig.external_id] = plan
        await self.ari("POST", f"/channels/{sig.external_id}/answer")
        plan.session = IvrSession(self.config.ivr)
        plan.mode = "ivr"
        await self.run_steps(plan, plan.session.start(), sig.at or self.now())

    async def run_steps(self, plan: CallPlan, steps: list[Step], at: datetime) -> None:
        for step in steps:
            if isinstance(step, Entered):
                await self.submit(m.EnterIvr(call_id=plan.call_id, menu=step.menu, occurred_at=at,
                                             command_id=plan.next_id("ivr")))
            elif isinstance(step, Chosen):
                target = f"{step.option.action}:{step.option.target}".rstrip(":")
                await self.submit(m.ChooseMenuOption(call_id=plan.call_id, menu=step.menu,
                                                     digits=step.digit, target=target,
                                                     occurred_at=at,
                                                     command_id=plan.next_id("choice")))
            elif isinstance(step, Play):
                plan.timeout_s = step.timeout_s
                await self.play(plan, step.sounds)
            elif isinstance(step, ToQueue):
                await self.enqueue(plan, step.queue, at)
            elif isinstance(step, Lookup):
                await self.lookup(plan, step, at)

    async def play(self, plan: CallPlan, sounds: tuple[str, ...] | list[str]) -> None:
        await self.stop_playback(plan)
        plan.deadline = None
        plan.playlist = deque(sounds)
        await self._play_next(plan)

    async def _play_next(self, plan: CallPlan) -> bool:
        if not plan.playlist:
            plan.playback = None
            return False
        sound = plan.playlist.popleft()
        media = sound if ":" in sound else f"sound:{sound}"
        pb_id = (f"pb-{plan.external_id}{plan.lineage}-{plan.seq}-{len(plan.playlist)}"
                 f"-{_short(sound)}")
        plan.seq += 1
        plan.playback = pb_id
        res = await self.ari("POST", f"/channels/{plan.external_id}/play", media=media,
                             playbackId=pb_id)
        if isinstance(res, AriError):
            plan.playback = None
            return False
        return True

    async def stop_playback(self, plan: CallPlan) -> None:
        plan.playlist.clear()
        if plan.playback is not None:
            pb, plan.playback = plan.playback, None
            await self.ari("DELETE", f"/playbacks/{pb}")

    async def lookup(self, plan: CallPlan, step: Lookup, at: datetime) -> None:
        answer: Answer = await self.self_service(step.service, step.reference)
        await self.submit(m.UseSelfService(call_id=plan.call_id, service=step.service,
                                           result=answer.result, reference=step.reference,
                                           occurred_at=at, command_id=plan.next_id("selfservice")))
        assert plan.session is not None
        back = plan.session.resume()
        sounds = list(answer.sounds)
        for s in back:
            if isinstance(s, Play):
                sounds.extend(s.sounds)
                plan.timeout_s = s.timeout_s
        await self.play(plan, sounds)

    async def _on_dtmf(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        if plan is None:
            return
        at = sig.at or self.now()
        if plan.mode == "ivr" and plan.session is not None:
            if plan.complete_number and sig.detail == "#":
                plan.complete_number = False
                return
            collecting = plan.session.collecting is not None
            steps = plan.session.digit(sig.detail)
            plan.complete_number = (collecting and sig.detail != "#"
                                    and any(isinstance(st, Lookup) for st in steps))
            if steps:
                plan.deadline = None
                await self.stop_playback(plan)
                await self.run_steps(plan, steps, at)
            elif plan.session.collecting is not None:
                # keying a number: the prompt stops, the digit timer restarts
                await self.stop_playback(plan)
                plan.deadline = at + timedelta(seconds=plan.timeout_s or 6)
        elif plan.mode == "survey" and sig.detail in "12345" and sig.detail:
            plan.deadline = None
            await self.stop_playback(plan)
            await self.submit(m.AnswerSurvey(call_id=plan.call_id, score=int(sig.detail),
                                             occurred_at=at, command_id=plan.next_id("survey")))
            plan.mode = "bye"
            await self.play(plan, SURVEY_THANKS)

    async def _on_playback_finished(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        pb_id, _, state = sig.detail.partition("|")
        if plan is None or pb_id != plan.playback:
            return
        if state == "failed":
            plan.playback = None
            return
        if await self._play_next(plan):
            return
        now = sig.at or self.now()
        if plan.mode in ("ivr", "survey"):
            plan.deadline = now + timedelta(seconds=plan.timeout_s or 6)
        elif plan.mode == "announce":
            plan.mode = "queue"
            await self.start_moh(plan)
        elif plan.mode == "bye":
            await self.hangup_caller(plan, "system", "survey finished")

    async def start_moh(self, plan: CallPlan) -> None:
        queue = self.acd.queue_of(plan.external_id) or self.config.ivr.agent_queue
        await self.ari("POST", f"/channels/{plan.external_id}/moh",
                       mohClass=self.acd.policy(queue).moh_class)
        plan.moh = True

    async def stop_moh(self, plan: CallPlan) -> None:
        if plan.moh:
            plan.moh = False
            await self.ari("DELETE", f"/channels/{plan.external_id}/moh")

    async def hangup_caller(self, plan: CallPlan, by: str, cause: str) -> None:
        self.tracker.mark_hangup(plan.external_id, by, cause)
        plan.deadline = None
        await self.ari("DELETE", f"/channels/{plan.external_id}")

    # -- queue -------------------------------------------------------------------
    async def enqueue(self, plan: CallPlan, queue: str, at: datetime, *,
                      record: bool = True) -> None:
        if record:
            await self.submit(m.QueueCall(call_id=plan.call_id, queue=queue, occurred_at=at,
                                          command_id=plan.next_id("queue")))
        view = self.tracker.calls.get(plan.external_id)
        if view is not None and view.state in ("offered", "ivr"):
            view.state = "queued"
        plan.deadline = None
        await self.stop_playback(plan)
        self.acd.enqueue(plan.external_id, queue, self.now())
        plan.mode = "queue"
        await self.start_moh(plan)
        await self.dispatch()

    async def adopt_queued(self, ext: str, call: Any, *, at_front: bool = False) -> None:
        """A caller a previous adapter left waiting goes back in their queue
        with the wait they already had (the store's ``queued_at``), hears the
        music again and is offered the next free agent."""
        self.tracker.adopt(ext, call.id, "queued")
        plan = self.plans[ext] = CallPlan(ext, call.id, mode="queue",
                                          lineage=f"~{int(self.now().timestamp())}")
        queue = call.queue if call.queue in self.acd.queues else self.config.ivr.agent_queue
        self.acd.enqueue(ext, queue, call.queued_at or self.now(), priority=call.priority,
                         skills=call.required_skills, at_front=at_front)
        await self.start_moh(plan)
        await self.dispatch()

    async def dispatch(self) -> None:
        now = self.now()
        for ov in self.acd.overflows(now):
            plan = self._plan(ov.call_id)
            if plan is not None:
                await self.overflow(plan, ov.from_queue, ov.to_queue, now)
        for rt in self.acd.ring_timeouts(now - timedelta(seconds=RING_GRACE_S)):
            view = self.tracker.calls.get(rt.call_id)
            leg = view.serving() if view is not None else None
            if leg is not None and view.state == "ringing" and not leg.answered:
                # Asterisk's own originate timeout normally fires first; this
                # covers endpoints that never report back. A leg Asterisk shows
                # as up has answered and its StasisStart is on its way: keep it.
                snapshot = await self.ari("GET", f"/channels/{leg.channel}")
                if isinstance(snapshot, dict) and snapshot.get("state") == "Up":
                    continue
                await self.ari("DELETE", f"/channels/{leg.channel}")
            elif leg is None and self.tracker.expected_legs(rt.call_id):
                # Dialled, and Asterisk never said a word about that channel
                # (its events lost, or a request that failed on our side after
                # Asterisk took it): as for a phone that cannot be called, the
                # caller goes back to the front and the agent out of routing.
                await self._unreachable(rt.call_id, rt.employee_no)
        for a in self.acd.assign(now):
            await self.originate(a.call_id, a.employee_no, a.endpoint, a.ring_timeout_s)
        for ann in self.acd.announcements(now):
            plan = self._plan(ann.call_id)
            if plan is None or plan.mode != "queue":
                continue
            plan.mode = "announce"
            await self.stop_moh(plan)
            sounds = (["queue-youarenext"] if ann.position == 1 else
                      ["queue-thereare", f"digits:{ann.position - 1}", "queue-callswaiting"])
            await self.play(plan, sounds)

    async def overflow(self, plan: CallPlan, from_queue: str, to_queue: str,
                       now: datetime) -> None:
        """The caller waited too long in one queue and moves to another: a
        ``Queued`` with ``reason="overflow"`` and the queue left in
        ``from_queue`` (its actor still names the overflow rule, as v1
        overflows, which carry no reason, did)."""
        await self.submit(m.QueueCall(call_id=plan.call_id, queue=to_queue, occurred_at=now,
                                      reason="overflow", from_queue=from_queue,
                                      command_id=plan.next_id("overflow"),
                                      actor=f"{OVERFLOW_ACTOR}:{from_queue}"))
        if plan.mode == "queue" and (self.acd.policy(from_queue).moh_class
                                     != self.acd.policy(to_queue).moh_class):
            # the new queue's music (an announcement under way ends with it)
            await self.start_moh(plan)

    async def originate(self, ext: str, employee_no: str, endpoint: str,
                        ring_timeout_s: float, role: str = "agent") -> str | None:
        plan = self._plan(ext)
        if plan is None:
            await self._back_to_routing(self.acd.remove_call(ext))
            return None
        self.originated += 1
        channel = f"agent-{employee_no}-{_short(ext + str(plan.next_id('leg')))}"
        self.tracker.expect_leg(channel, ext, employee_no, role)
        res = await self.ari("POST", "/channels", endpoint=endpoint, app=self.app.app_name,
                             appArgs=f"{role},{employee_no},{ext}", channelId=channel,
                             timeout=max(1, int(round(ring_timeout_s))),
                             callerId=f'"Queue" <{employee_no}>')
        if isinstance(res, AriError):
            # The phone cannot even be called: keep the caller at the front,
            # and take the agent out of routing until they sort it out.
            self.tracker.forget_expected(channel)
            if role == "agent":
                await self._unreachable(ext, employee_no)
            return None
        if self._plan(ext) is None:
            # The caller left while the request was on its way (their release
            # found no channel to hang up): this phone would ring for nobody.
            # Still expected for that call: events already on their way must
            # not be taken for a ring of another waiting caller.
            await self.ari("DELETE", f"/channels/{channel}")
            if role == "agent":
                await self._back_to_routing(employee_no)
            return None
        plan.agent_channel = channel if role == "agent" else plan.agent_channel
        return channel

    async def _unreachable(self, ext: str, employee_no: str) -> None:
        plan = self._plan(ext)
        self.acd.ring_no_answer(ext, self.now())  # first: a second dispatch finds nothing due
        for channel in self.tracker.expected_legs(ext):
            await self.ari("DELETE", f"/channels/{channel}")
        await self.submit(m.MakeNotReady(
            employee_no=employee_no, reason="unreachable", occurred_at=self.now(),
            command_id=plan.next_id("unreachable") if plan else None))

    async def direct_target(self, employee_no: str) -> tuple[Agent | None, str | None]:
        """The agent's record, and why a caller cannot be put through to them
        now (None: they can)."""
        agent = await self.agent(employee_no)
        if agent is None:
            return None, "not found"
        if employee_no in self.consulting or self.acd.ringing_for(employee_no) is not None:
            return agent, "being called already"
        if agent.state != AgentState.READY or not agent.endpoint:
            return agent, (f"{agent.state.value}, not ready to take a transfer "
                           "(consult them instead)")
        return agent, None

    async def ring_directly(self, ext: str, employee_no: str, at: datetime) -> bool:
        """A caller transferred straight to an agent: rung if the agent's
        record says ready (and routing is not already ringing or holding them
        for a consultation); otherwise, as when they do not answer, an agent
        of the general queue takes the caller, ahead of the line."""
        agent, why_not = await self.direct_target(employee_no)
        if why_not is not None:
            self.acd.enqueue(ext, self.config.ivr.agent_queue, at, at_front=True)
            await self.dispatch()
            return False
        # rung as routing rings: out of the pool, and the ring followed (a
        # miss puts the caller at the front of the general queue)
        ring = self.acd.ring_direct(ext, employee_no, self.config.ivr.agent_queue, at,
                                    agent.endpoint)
        await self.originate(ext, employee_no, ring.endpoint, ring.ring_timeout_s)
        return True

    async def _on_consult_ended(self, sig: Signal) -> None:
        await self.resync_agent(sig.employee_no)

    async def _on_leg_failed(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        view = self.tracker.calls.get(sig.external_id)
        leg = view.legs.get(sig.channel) if view is not None else None
        if leg is not None and leg.role == "consult":
            # The colleague's phone rang out (or was busy): as with a leg the
            # ACD rang, the tracker's ``ReportConsultMissed`` puts them
            # not-ready (``ring_no_answer``) so nobody else is sent to an
            # empty desk. The call stays on hold with the first agent; routing
            # follows the colleague's record again.
            await self._on_consult_ended(sig)
            return
        if plan is None:
            return
        if sig.detail and self.acd.ringing_agent(sig.external_id) == sig.employee_no:
            self.acd.ring_no_answer(sig.external_id, self.now())
            # their record puts them not ready (ring_no_answer), unless it
            # refused the ring (the call had moved on): then nothing else
            # would bring them back
            await self._back_to_routing(sig.employee_no)
        elif plan.mode == "queue" and self.acd.queue_of(sig.external_id) is None:
            # a ring routing did not start (a leg originated by someone
            # else): an agent of the general queue takes the caller, ahead
            # of the line
            self.acd.enqueue(sig.external_id, self.config.ivr.agent_queue, self.now(),
                             at_front=True)
        plan.agent_channel = None
        await self.dispatch()

    async def _on_leg_answered(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        if plan is None:
            return
        if sig.detail == "party":
            if plan.bridge:
                await self.ari("POST", f"/bridges/{plan.bridge}/addChannel", channel=sig.channel)
            return
        if sig.detail == "consult":
            # the colleague talks with the agent; the caller waits outside the bridge
            if plan.bridge:
                await self.ari("POST", f"/bridges/{plan.bridge}/addChannel", channel=sig.channel)
            return
        self.acd.answered(sig.external_id)
        plan.deadline = None
        await self.stop_playback(plan)
        await self.stop_moh(plan)
        plan.mode = "talk"
        plan.agent_channel = sig.channel
        if plan.bridge is None:
            plan.bridge = f"call-{plan.external_id}"
            self.tracker.claim_bridge(plan.bridge, plan.external_id)
            await self.ari("POST", "/bridges", type="mixing", bridgeId=plan.bridge,
                           name=f"call-{plan.external_id}")
        # a transferred caller waited outside the bridge (music, not the
        # first agent's leg going): both join it
        await self.ari("POST", f"/bridges/{plan.bridge}/addChannel", channel=plan.external_id)
        await self.ari("POST", f"/bridges/{plan.bridge}/addChannel", channel=sig.channel)
        if plan.recordings:
            return  # the bridge recording runs on across transfers
        plan.recordings += 1
        await self.ari("POST", f"/bridges/{plan.bridge}/record",
                       name=f"call-{plan.external_id}-{plan.recordings}", format="wav",
                       ifExists="overwrite")

    async def _on_agent_hung_up(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        if plan is None:
            return
        # The agent hung up first: the caller is still on the line and is
        # asked to rate the call.
        plan.mode = "survey"
        if plan.bridge:
            await self.ari("POST", f"/bridges/{plan.bridge}/removeChannel",
                           channel=plan.external_id)
        plan.timeout_s = SURVEY_TIMEOUT_S
        await self.play(plan, SURVEY_PROMPT)

    async def _on_call_ended(self, sig: Signal) -> None:
        if sig.detail == "agent":
            return  # the survey keeps the caller with us
        if sig.detail == "outside":
            # the outside party the caller was transferred to hung up: the
            # caller is alone in the bridge, in silence; the call is over
            await self.ari("DELETE", f"/channels/{sig.external_id}")
        await self._release(sig.external_id)

    async def _on_call_gone(self, sig: Signal) -> None:
        await self._release(sig.external_id)

    async def _back_to_routing(self, employee_no: str | None) -> None:
        """An agent the ACD was ringing for a call that went away is routed
        again as their record says (ready unless the ring reached it)."""
        if employee_no is None or employee_no in self.consulting:
            return
        # what the lanes submitted without waiting (the ring, its miss) first
        await self.app.settled()
        if employee_no in self.consulting or self.acd.ringing_for(employee_no):
            return
        agent = await self.agent(employee_no)
        if agent is not None:
            self._sync_agent(agent)

    async def _release(self, ext: str) -> None:
        rung = self.acd.remove_call(ext)
        try:
            await self._end_call(ext)
        finally:
            # after the legs are hung up: their phone is free again
            await self._back_to_routing(rung)

    async def _end_call(self, ext: str) -> None:
        plan = self.plans.get(ext)
        if plan is None or plan.mode == "gone":
            return
        plan.mode = "gone"
        plan.deadline = None
        plan.playlist.clear()
        view = self.tracker.calls.get(ext)
        for channel in self.tracker.expected_legs(ext):
            # dialled as the caller hung up: that phone would ring for nobody
            # and be busy when routing offers its agent the next caller
            await self.ari("DELETE", f"/channels/{channel}")
        if view is not None:
            for leg in view.legs.values():
                if not leg.released and leg.channel in self.tracker.channels:
                    await self.ari("DELETE", f"/channels/{leg.channel}")
            if view.outside and view.outside in self.tracker.channels:
                # the caller left a call transferred out: the outside party
                # (the Local channel dialling them) goes too
                await self.ari("DELETE", f"/channels/{view.outside}")
        if plan.bridge:
            await self.ari("DELETE", f"/bridges/{plan.bridge}")
        self.plans.pop(ext, None)
        self._locks.pop(ext, None)

    async def _on_transferred(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        if plan is None:
            return
        target_type, _, target = sig.detail.partition(":")
        view = self.tracker.calls.get(sig.external_id)
        # Whatever took the transferer's seat (a REFER's Local channel) is not
        # where the caller goes: the center routes them itself.
        for ch, (ext, role) in list(self.tracker.channels.items()):
            if ext == sig.external_id and role == "replacement":
                await self.ari("DELETE", f"/channels/{ch}")
        if plan.bridge:
            await self.ari("POST", f"/bridges/{plan.bridge}/removeChannel", channel=plan.external_id)
        del view
        at = sig.at or self.now()
        if target_type == "queue":
            await self.enqueue(plan, target, at, record=False)
        elif target_type == "agent":
            plan.mode = "queue"
            await self.start_moh(plan)
            await self.ring_directly(sig.external_id, target, at)

    async def _on_transferred_out(self, sig: Signal) -> None:
        """The agent's phone transferred the caller to a number outside the
        center. With ``channel`` (a blind REFER, or an attended transfer to an
        outside party) Asterisk already put what reaches that party in our
        bridge, in the agent's seat: the caller talks with them there, the
        bridge and its recording are kept, and the call ends when either
        hangs up. Without (ari-only REFER handling: Asterisk did nothing) the
        dialplan takes the caller on to the number, as for a transfer out
        through the API."""
        plan = self._plan(sig.external_id)
        if plan is None:
            return
        plan.agent_channel, plan.deadline = None, None
        await self._back_to_routing(self.acd.remove_call(sig.external_id))
        if sig.channel:
            plan.mode = "outside"
            await self.stop_playback(plan)
            if plan.moh:
                # held outside the bridge (through the API): back in, with the party
                await self.stop_moh(plan)
            if plan.bridge:
                await self.ari("POST", f"/bridges/{plan.bridge}/addChannel",
                               channel=plan.external_id)
            return
        view = self.tracker.calls.get(sig.external_id)
        await self.stop_playback(plan)
        await self.stop_moh(plan)
        if plan.bridge:
            await self.ari("POST", f"/bridges/{plan.bridge}/removeChannel",
                           channel=plan.external_id)
        if view is not None:
            # the transferer's phone waits for the outcome of its REFER: hang it up
            for leg in view.legs.values():
                if leg.employee_no == sig.employee_no and leg.channel in self.tracker.channels:
                    await self.ari("DELETE", f"/channels/{leg.channel}")
        await self.ari("POST", f"/channels/{plan.external_id}/continue",
                       context="transfer-target", extension=sig.detail, priority=1)
        await self._release(sig.external_id)

    async def _on_taken_over(self, sig: Signal) -> None:
        # An attended transfer by the phone: the channel linking to the
        # colleague already sits in our bridge, in the agent's place. A caller
        # we had put on hold outside the bridge joins them there.
        plan = self._plan(sig.external_id)
        if plan is None:
            return
        plan.agent_channel, plan.mode = sig.channel, "talk"
        if plan.moh:
            await self.stop_moh(plan)
            if plan.bridge:
                await self.ari("POST", f"/bridges/{plan.bridge}/addChannel",
                               channel=plan.external_id)

    @staticmethod
    def phone_of(agent: Agent | None, employee_no: str) -> str:
        """Where an agent is called: the phone they logged in on, else the
        one of their number."""
        return (agent.endpoint if agent is not None else None) or f"PJSIP/{employee_no}"

    async def endpoint_of(self, employee_no: str) -> str:
        return self.phone_of(await self.agent(employee_no), employee_no)

    async def _on_orphan(self, sig: Signal) -> None:
        await self.ari("DELETE", f"/channels/{sig.channel}")

    async def _on_snoop_started(self, sig: Signal) -> None:
        plan = self._plan(sig.external_id)
        if plan is not None and sig.detail == "barge" and plan.bridge:
            await self.ari("POST", f"/bridges/{plan.bridge}/addChannel", channel=sig.channel)

    async def _on_listener(self, sig: Signal) -> None:
        found = self.listeners.get(sig.channel)
        if found is not None:
            await self.ari("POST", f"/bridges/{found[0]}/addChannel", channel=sig.channel)

    async def _on_snoop_ended(self, sig: Signal) -> None:
        # monitoring stopped (or the call ended): the supervisor's phone has
        # nothing left to listen to
        for phone, (_, snoop) in list(self.listeners.items()):
            if snoop == sig.channel:
                await self._drop_listener(phone)

    async def _on_listener_gone(self, sig: Signal) -> None:
        # the supervisor hung up their phone: stop spying on the call
        found = self.listeners.get(sig.channel)
        if found is not None:
            await self.ari("DELETE", f"/channels/{found[1]}")
        await self._drop_listener(sig.channel)

    async def _drop_listener(self, phone: str) -> None:
        found = self.listeners.pop(phone, None)
        if found is None:
            return
        await self.ari("DELETE", f"/channels/{phone}")
        await self.ari("DELETE", f"/bridges/{found[0]}")

    # -- timers --------------------------------------------------------------
    async def tick(self) -> None:
        now = self.now()
        for plan in list(self.plans.values()):
            if plan.deadline is None or plan.deadline > now or plan.mode == "gone":
                continue
            async with self.lock_for(plan.external_id):
                if plan.deadline is None or plan.deadline > now or plan.mode == "gone":
                    continue
                plan.deadline = None
                if plan.mode == "ivr" and plan.session is not None:
                    await self.run_steps(plan, plan.session.timeout(), now)
                elif plan.mode == "survey":
                    await self.hangup_caller(plan, "system", "survey not answered")
        for emp, (when, since) in list(self._ready_at.items()):
            if when <= now:
                self._ready_at.pop(emp, None)
                try:
                    await self.submit(m.MakeReady(employee_no=emp, occurred_at=when,
                                                  command_id=f"auto-ready:{emp}:{since}"))
                except DomainError:
                    pass
        await self.dispatch()

    async def after_reconcile(self, bridges: set[str]) -> None:
        """Live calls whose bridge Asterisk no longer has (destroyed while we
        were not listening) are bridged again; the conversation goes on."""
        for plan in list(self.plans.values()):
            if plan.mode != "talk" or not plan.bridge or plan.bridge in bridges:
                continue
            view = self.tracker.calls.get(plan.external_id)
            leg = view.serving() if view is not None else None
            if leg is None or not view.live:
                continue
            async with self.lock_for(plan.external_id):
                # its recording ended with the bridge, unheard: close it and
                # record the rest of the conversation under a new name
                now = self.now()
                for name in sorted(view.recordings):
                    view.recordings.discard(name)
                    await self.submit(m.StopRecording(
                        call_id=plan.call_id, recording=name, occurred_at=now,
                        cause="lost: bridge gone while disconnected from Asterisk",
                        command_id=plan.next_id("rec-lost")))
                await self.ari("POST", "/bridges", type="mixing", bridgeId=plan.bridge,
                               name=plan.bridge)
                await self.ari("POST", f"/bridges/{plan.bridge}/addChannel",
                               channel=f"{plan.external_id},{leg.channel}")
                plan.recordings += 1
                await self.ari("POST", f"/bridges/{plan.bridge}/record",
                               name=f"call-{plan.external_id}-{plan.recordings}", format="wav",
                               ifExists="overwrite")
        await self.follow_agents()
        # A consultation whose legs ended while we were not listening sent no
        # "consult ended": its colleague would stay out of routing for good.
        held = self.tracker.consulting_employees()
        for employee_no in sorted(self.consulting - held):
            await self.resync_agent(employee_no)
        await self.dispatch()


def _short(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
