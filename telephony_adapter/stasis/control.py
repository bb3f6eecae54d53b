"""Agent and supervisor actions that need Asterisk: hold, transfers,
three-way conference, listen/whisper (snoop), barge, force hang-up.

Each action records its command and makes the ARI requests. Where Asterisk
reports the outcome itself (a party answering, a snoop starting), the tracker
records it from the event; where it does not (``POST /channels/{id}/hold``
produces no ``ChannelHold``), the command is issued here.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from commands import messages as m
from domain.agent import AgentState
from domain.call import TRANSFER_TARGETS
from domain.errors import InvalidValue, InvariantViolation, NotFound
from telephony_adapter.ari.errors import AriError
from telephony_adapter.stasis.flow import CallPlan, _short
from telephony_adapter.stasis.tracker import TRANSFERRED_OUT, CallView

if TYPE_CHECKING:
    from telephony_adapter.stasis.app import StasisApp


def _consulting(leg: Any) -> bool:
    """A consult leg still in progress: not gone, not being hung up."""
    return leg.role == "consult" and not leg.released and not leg.canceled


class CallControl:
    def __init__(self, app: StasisApp) -> None:
        if app.flow is None:
            raise InvariantViolation("the Stasis app runs in observe mode: no call control")
        self.app = app
        self.flow = app.flow
        self.tracker = app.tracker

    # -- lookup ------------------------------------------------------------------
    def _view(self, call_id: UUID | str) -> tuple[CallView, CallPlan]:
        for view in self.tracker.calls.values():
            if str(view.call_id) == str(call_id) or view.external_id == str(call_id):
                plan = self.flow.plans.get(view.external_id)
                if not view.live or plan is None or plan.mode == "gone":
                    raise InvariantViolation(f"call {call_id} is over", call_id=str(call_id))
                return view, plan
        raise NotFound(f"no live call {call_id} on this telephony adapter", id=str(call_id))

    def _talking(self, call_id: UUID | str) -> tuple[CallView, CallPlan]:
        view, plan = self._view(call_id)
        if view.state not in ("connected", "held") or not plan.bridge:
            raise InvariantViolation(f"call {call_id} is {view.state}, not connected to an agent",
                                     call_id=str(call_id))
        return view, plan

    async def _duplicate(self, call_id: UUID | str, key: str | None) -> bool:
        """A retried request (same Idempotency-Key) that was applied: nothing
        to do again, and no error for the client that retried."""
        if not key:
            return False
        for view in self.tracker.calls.values():
            if str(view.call_id) == str(call_id) or view.external_id == str(call_id):
                call = await asyncio.to_thread(self.app.service.get, view.call_id)
                return call.has_applied(key)
        return False

    def _now(self) -> datetime:
        return self.app.clock()

    def _cid(self, plan: CallPlan, what: str, key: str | None) -> str:
        return key or plan.next_id(what)

    async def _run(self, *cmds: m.Command) -> None:
        # Through the flow's lock: the same ordering as ARI events.
        results = await self.app.submit(list(cmds))
        for res in results:
            if isinstance(res, Exception):
                raise res

    async def _ari(self, method: str, path: str, **params: Any) -> Any:
        res = await self.flow.ari(method, path, **params)
        if isinstance(res, AriError):
            raise InvariantViolation(f"Asterisk refused {method} {path}: {res}")
        return res

    # -- hold ----------------------------------------------------------------------
    async def hold(self, call_id: UUID | str, *, by: str = "agent", key: str | None = None) -> None:
        if await self._duplicate(call_id, key):
            return None
        view, plan = self._talking(call_id)
        if view.state != "connected":
            raise InvariantViolation(f"call {call_id} is already on hold")
        async with self.flow.lock_for(view.external_id):
            await self._run(m.HoldCall(call_id=view.call_id, by=by, occurred_at=self._now(),
                                       command_id=self._cid(plan, "hold", key)))
            view.state = "held"
            # the caller hears music; the agent stays in the bridge
            await self._ari("POST", f"/bridges/{plan.bridge}/removeChannel",
                            channel=view.external_id)
            await self.flow.start_moh(plan)

    async def unhold(self, call_id: UUID | str, *, by: str = "agent",
                     key: str | None = None) -> None:
        if await self._duplicate(call_id, key):
            return None
        view, plan = self._talking(call_id)
        if view.state != "held":
            raise InvariantViolation(f"call {call_id} is not on hold")
        async with self.flow.lock_for(view.external_id):
            await self._run(m.ResumeCall(call_id=view.call_id, by=by, occurred_at=self._now(),
                                         command_id=self._cid(plan, "unhold", key)))
            view.state = "connected"
            await self.flow.stop_moh(plan)
            await self._ari("POST", f"/bridges/{plan.bridge}/addChannel",
                            channel=view.external_id)

    # -- transfers ---------------------------------------------------------------
    async def transfer(self, call_id: UUID | str, target_type: str, target: str, *,
                       key: str | None = None) -> None:
        """Blind transfer: the agent leg is released at once; the caller goes
        to a queue, straight to another agent, or out of the center."""
        if target_type not in TRANSFER_TARGETS - {"ivr"}:
            raise InvalidValue("target_type must be queue, agent or external", field="target_type")
        if not target:
            raise InvalidValue("target is required", field="target")
        if target_type == "queue" and target not in self.flow.acd.queues:
            raise InvalidValue(f"unknown queue {target}", field="target")
        if await self._duplicate(call_id, key):
            return None
        view, plan = self._talking(call_id)
        if target_type == "agent":
            await self._require_free(target)
        async with self.flow.lock_for(view.external_id):
            now = self._now()
            old_leg = view.agent_leg
            cmds: list[m.Command] = [m.TransferCall(call_id=view.call_id, kind="blind",
                                                    target_type=target_type, target=target,
                                                    occurred_at=now,
                                                    command_id=self._cid(plan, "transfer", key))]
            if target_type == "external":
                cmds.append(m.EndCall(call_id=view.call_id, hung_up_by="transfer",
                                      cause=TRANSFERRED_OUT, occurred_at=now,
                                      command_id=plan.next_id("end")))
            await self._run(*cmds)
            self._release_leg(view, old_leg)
            await self._ari("POST", f"/bridges/{plan.bridge}/removeChannel",
                            channel=view.external_id)
            if old_leg:
                await self.flow.ari("DELETE", f"/channels/{old_leg}")
            if target_type == "external":
                view.state = "ended"
                # out of the center: the dialplan takes the caller to the number
                await self.flow.ari("POST", f"/channels/{view.external_id}/continue",
                                    context="transfer-target", extension=target, priority=1)
                await self.flow._release(view.external_id)
                return
            view.state = "queued"
            if target_type == "queue":
                await self.flow.enqueue(plan, target, now, record=False)
            else:
                plan.mode = "queue"
                await self.flow.start_moh(plan)
                await self.flow.ring_directly(view.external_id, target, now)

    async def _require_free(self, employee_no: str) -> None:
        """A blind transfer goes to an agent who can take the caller now: one
        on a break, in wrap-up or already on the phone is refused before the
        caller is let go (a consultation reaches a colleague who is not ready)."""
        agent, why_not = await self.flow.direct_target(employee_no)
        if agent is None:
            raise NotFound(f"agent {employee_no} not found")
        if why_not is not None:
            raise InvariantViolation(f"agent {employee_no} is {why_not}")

    def _release_leg(self, view: CallView, channel: str | None) -> None:
        if channel and channel in view.legs:
            view.legs[channel].released = True
        view.agent_leg = None

    async def consult(self, call_id: UUID | str, employee_no: str) -> str:
        """Attended transfer, first half: the caller waits with music while
        the agent talks to the colleague."""
        view, plan = self._talking(call_id)
        if any(_consulting(leg) for leg in view.legs.values()):
            raise InvariantViolation("a consultation is already in progress")
        flow = self.flow
        if employee_no in flow.consulting or flow.acd.ringing_for(employee_no) is not None:
            # the ACD is ringing them for a waiting caller, or another agent
            # is calling them: their record may not show it yet
            raise InvariantViolation(f"agent {employee_no} is being called already")
        # Out of routing before anything is awaited: otherwise the ACD could
        # offer them a waiting caller while we read their record.
        flow.consulting.add(employee_no)
        flow.acd.agent_unavailable(employee_no)
        try:
            return await self._call_colleague(view, plan, employee_no)
        except BaseException:
            await flow.resync_agent(employee_no)  # routing follows their record again
            raise

    async def _call_colleague(self, view: CallView, plan: CallPlan, employee_no: str) -> str:
        colleague = await self.flow.agent(employee_no)
        if colleague is None or colleague.state != AgentState.READY:
            # completing would route the caller to them: refuse now, not after
            # the agent has talked the colleague through the case
            state = colleague.state.value if colleague is not None else "unknown"
            raise InvariantViolation(f"agent {employee_no} is {state}, not ready to take a call")
        async with self.flow.lock_for(view.external_id):
            if view.state == "connected":
                await self._run(m.HoldCall(call_id=view.call_id, by="agent",
                                           occurred_at=self._now(),
                                           command_id=plan.next_id("hold")))
                view.state = "held"
                await self._ari("POST", f"/bridges/{plan.bridge}/removeChannel",
                                channel=view.external_id)
                await self.flow.start_moh(plan)
            channel = await self.flow.originate(view.external_id, employee_no,
                                                self.flow.phone_of(colleague, employee_no),
                                                self.flow.config.queues[0].ring_timeout_s,
                                                role="consult")
            if channel is None:
                raise InvariantViolation(f"agent {employee_no} cannot be called")
            return channel

    def _consult_leg(self, view: CallView):
        for leg in view.legs.values():
            if _consulting(leg):
                return leg
        raise InvariantViolation("no consultation in progress")

    async def complete_transfer(self, call_id: UUID | str, *, key: str | None = None) -> None:
        """Attended transfer, second half: the colleague takes the caller."""
        if await self._duplicate(call_id, key):
            return None
        view, plan = self._talking(call_id)
        leg = self._consult_leg(view)
        if not leg.answered:
            raise InvariantViolation("the colleague has not answered yet")
        async with self.flow.lock_for(view.external_id):
            now = self._now()
            old_leg = view.agent_leg
            # The colleague's alert and answer were recorded when Asterisk
            # reported them (ConsultAlerted / ConsultAnswered): the transfer
            # hands the call to their leg, nothing more.
            await self._run(
                m.TransferCall(call_id=view.call_id, kind="attended", target_type="agent",
                               target=leg.employee_no, to_leg_id=leg.channel, occurred_at=now,
                               command_id=self._cid(plan, "transfer", key)))
            # their record shows them on this call now (ON_CALL): it keeps
            # them out of routing, the consultation no longer has to
            self.flow.consulting.discard(leg.employee_no)
            self._release_leg(view, old_leg)
            leg.role, leg.alerted = "agent", True
            self.tracker.channels[leg.channel] = (view.external_id, "agent")
            view.agent_leg, view.state = leg.channel, "connected"
            plan.agent_channel = leg.channel
            await self.flow.stop_moh(plan)
            await self._ari("POST", f"/bridges/{plan.bridge}/addChannel",
                            channel=view.external_id)
            if old_leg:
                await self.flow.ari("DELETE", f"/channels/{old_leg}")

    async def cancel_consult(self, call_id: UUID | str) -> None:
        """The agent takes the caller back; the colleague's leg, if it is
        still up or ringing, is hung up. Also the way back after the
        colleague never answered (their leg is already gone)."""
        view, plan = self._talking(call_id)
        leg = next((lg for lg in view.legs.values() if _consulting(lg)), None)
        tried = any(lg.role == "consult" for lg in view.legs.values())
        if leg is None and not (tried and view.state == "held"):
            raise InvariantViolation("no consultation in progress")
        if leg is not None:
            async with self.flow.lock_for(view.external_id):
                # the tracker records the leg's end (ConsultEnded by the agent,
                # or ConsultMissed canceled) when Asterisk reports it gone
                leg.canceled = True
                await self.flow.ari("DELETE", f"/channels/{leg.channel}")
                await self.flow.resync_agent(leg.employee_no)
        if view.state == "held":
            await self.unhold(call_id)

    # -- conference ------------------------------------------------------------------
    async def add_party(self, call_id: UUID | str, endpoint: str, party: str) -> str:
        if "/" not in endpoint:
            raise InvalidValue("endpoint must look like PJSIP/1003", field="endpoint")
        view, plan = self._talking(call_id)
        async with self.flow.lock_for(view.external_id):
            channel = f"party-{_short(view.external_id + party + plan.next_id('party'))}"
            self.tracker.expect_leg(channel, view.external_id, party, "party")
            await self._ari("POST", "/channels", endpoint=endpoint, app=self.app.app_name,
                            appArgs=f"party,{party},{view.external_id}", channelId=channel,
                            timeout=30)
            return channel

    async def remove_party(self, call_id: UUID | str, party: str) -> None:
        view, _ = self._talking(call_id)
        for leg in view.legs.values():
            if leg.role == "party" and leg.employee_no == party and not leg.released:
                await self.flow.ari("DELETE", f"/channels/{leg.channel}")
                return
        raise NotFound(f"{party} is not in this call's conference")

    # -- supervision -------------------------------------------------------------------
    async def monitor(self, call_id: UUID | str, supervisor_id: str, mode: str = "listen",
                      endpoint: str | None = None) -> str:
        """Listen (spy on both directions) or whisper (the agent hears the
        supervisor, the caller does not) through a snoop on the agent leg."""
        if mode not in ("listen", "whisper"):
            raise InvalidValue("mode must be listen or whisper (barge has its own action)",
                               field="mode")
        view, plan = self._talking(call_id)
        target = view.agent_leg or view.external_id
        snoop_id = f"snoop-{_short(view.external_id + supervisor_id + plan.next_id('snoop'))}"
        await self._ari("POST", f"/channels/{target}/snoop", spy="both",
                        whisper="out" if mode == "whisper" else "none", app=self.app.app_name,
                        appArgs=f"supervisor,{supervisor_id},{mode},{view.external_id}",
                        snoopId=snoop_id)
        if endpoint:
            await self._connect_listener(view, plan, snoop_id, supervisor_id, endpoint)
        return snoop_id

    async def _connect_listener(self, view: CallView, plan: CallPlan, snoop_id: str,
                                supervisor_id: str, endpoint: str) -> None:
        bridge = f"monitor-{snoop_id}"
        self.flow.listeners[f"listen-{snoop_id}"] = (bridge, snoop_id)
        await self._ari("POST", "/bridges", type="mixing", bridgeId=bridge, name=bridge)
        await self._ari("POST", f"/bridges/{bridge}/addChannel", channel=snoop_id)
        await self._ari("POST", "/channels", endpoint=endpoint, app=self.app.app_name,
                        appArgs=f"listener,{supervisor_id},{view.external_id}",
                        channelId=f"listen-{snoop_id}", timeout=30)

    async def stop_monitor(self, call_id: UUID | str, supervisor_id: str) -> None:
        view, _ = self._view(call_id)
        channels = [ch for ch, sup in view.snoops.items() if sup == supervisor_id]
        if not channels:
            raise NotFound(f"{supervisor_id} is not monitoring this call")
        for ch in channels:
            await self.flow.ari("DELETE", f"/channels/{ch}")

    async def barge(self, call_id: UUID | str, supervisor_id: str, endpoint: str) -> str:
        """The supervisor joins the conversation: their phone is called and
        put into the call's bridge (recorded as a barge monitor)."""
        if "/" not in endpoint:
            raise InvalidValue("endpoint must look like PJSIP/9001", field="endpoint")
        view, plan = self._talking(call_id)
        channel = f"barge-{_short(view.external_id + supervisor_id + plan.next_id('barge'))}"
        await self._ari("POST", "/channels", endpoint=endpoint, app=self.app.app_name,
                        appArgs=f"barge,{supervisor_id},barge,{view.external_id}",
                        channelId=channel, timeout=30)
        return channel

    async def force_hangup(self, call_id: UUID | str, supervisor_id: str, *,
                           key: str | None = None) -> None:
        if await self._duplicate(call_id, key):
            return None
        view, plan = self._view(call_id)
        async with self.flow.lock_for(view.external_id):
            await self._run(m.ForceDisconnect(call_id=view.call_id, supervisor_id=supervisor_id,
                                              occurred_at=self._now(),
                                              command_id=self._cid(plan, "force", key)))
            view.state = "ended"
            self.tracker.mark_hangup(view.external_id, "supervisor", f"forced by {supervisor_id}")
            await self.flow.ari("DELETE", f"/channels/{view.external_id}")
            await self.flow._release(view.external_id)

    # -- status --------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        acd = self.flow.acd
        return {
            "live_calls": [
                {"call_id": str(v.call_id), "channel": v.external_id, "state": v.state,
                 "agent": (v.serving().employee_no if v.serving() else None),
                 "queue": acd.queue_of(v.external_id)}
                for v in self.tracker.live_calls()],
            "queues": {q: acd.waiting(q) for q in acd.queues},
            "ready_agents": acd.ready_agents(),
            "stats": dict(self.app.stats),
        }
