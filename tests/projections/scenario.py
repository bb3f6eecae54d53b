"""Call-center traffic for read-model tests: explicit source times, so the
expected figures can be worked out by hand."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from commands import messages as m
from domain.call import call_id_for

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def staff(svc: Any, employee_no: str, team: str = "A", *, when: float = 0.0,
          ready: bool = True) -> None:
    svc.handle(m.RegisterAgent(employee_no=employee_no, name=f"Agent {employee_no}", team=team,
                               skills={"power": 5}, occurred_at=at(when)))
    svc.handle(m.LogIn(employee_no=employee_no, endpoint=f"PJSIP/{employee_no}",
                       occurred_at=at(when)))
    if ready:
        svc.handle(m.MakeReady(employee_no=employee_no, occurred_at=at(when)))


def offer(svc: Any, external_id: str, when: float, caller: str = "13800138000") -> UUID:
    return svc.handle(m.OfferCall(external_id=external_id, dialed_number="95598",
                                  caller_number=caller, trunk="trunk-1",
                                  occurred_at=at(when))).aggregate_id


def queued(svc: Any, external_id: str, queue: str, when: float) -> UUID:
    call_id = offer(svc, external_id, when)
    svc.handle(m.QueueCall(call_id=call_id, queue=queue, occurred_at=at(when)))
    return call_id


def answered_by(svc: Any, call_id: UUID, employee_no: str, alert: float, answer: float) -> None:
    svc.handle(m.AlertAgent(call_id=call_id, employee_no=employee_no, occurred_at=at(alert)))
    svc.handle(m.AnswerCall(call_id=call_id, occurred_at=at(answer)))


def full_call(svc: Any, call_id: UUID, employee_no: str, start: float) -> None:
    """Alert, answer, hold, resume, end by agent, wrap-up: back to ready."""
    answered_by(svc, call_id, employee_no, start, start + 3)
    svc.handle(m.HoldCall(call_id=call_id, occurred_at=at(start + 20)))
    svc.handle(m.ResumeCall(call_id=call_id, occurred_at=at(start + 30)))
    svc.handle(m.EndCall(call_id=call_id, hung_up_by="agent", occurred_at=at(start + 60)))
    svc.handle(m.CompleteWrapUp(call_id=call_id, employee_no=employee_no,
                                dispositions=["resolved"], occurred_at=at(start + 75)))


def busy_day(svc: Any, calls: int, seed: int = 7) -> int:
    """Many calls through a few queues and agents (answered, abandoned,
    transferred, ring-no-answer), submitted in batches like a busy center.
    Returns the number of commands that succeeded."""
    rng = random.Random(seed)
    agents = [f"9{n:03d}" for n in range(8)]
    for no in agents:
        staff(svc, no, team="T" + no[-1])
    pending: list[m.Command] = []
    clock = 100.0
    free = list(agents)
    for n in range(calls):
        clock += rng.uniform(1, 20)
        queue = rng.choice(["power", "billing", "repair"])
        cmds: list[m.Command] = [
            m.OfferCall(external_id=f"busy-{seed}-{n}", dialed_number="95598",
                        caller_number=f"139{n:08d}", occurred_at=at(clock)),
        ]
        pending += cmds
        call_id = call_id_for(f"busy-{seed}-{n}")
        fate = rng.random()
        steps: list[m.Command] = [
            m.EnterIvr(call_id=call_id, menu="main", occurred_at=at(clock + 1)),
            m.ChooseMenuOption(call_id=call_id, menu="main", digits=str(rng.randint(1, 3)),
                               occurred_at=at(clock + 4)),
            m.QueueCall(call_id=call_id, queue=queue, occurred_at=at(clock + 5)),
        ]
        if fate < 0.2:
            steps.append(m.EndCall(call_id=call_id, hung_up_by="caller",
                                   occurred_at=at(clock + 5 + rng.uniform(1, 60))))
            pending += steps
            continue
        pending += steps
        agent = free[n % len(free)]
        wait = rng.uniform(2, 45)
        alert = [m.AlertAgent(call_id=call_id, employee_no=agent, leg_id=f"leg-{n}-a",
                              occurred_at=at(clock + 5 + wait))]
        if fate < 0.3:
            alert += [m.ReportRingNoAnswer(call_id=call_id, leg_id=f"leg-{n}-a",
                                           occurred_at=at(clock + 20 + wait)),
                      m.MakeReady(employee_no=agent, occurred_at=at(clock + 21 + wait)),
                      m.EndCall(call_id=call_id, hung_up_by="caller",
                                occurred_at=at(clock + 30 + wait))]
            pending += alert
            continue
        talk = [
            m.AnswerCall(call_id=call_id, occurred_at=at(clock + 8 + wait)),
            m.StartRecording(call_id=call_id, recording=f"rec-{n}",
                             occurred_at=at(clock + 8 + wait)),
            m.HoldCall(call_id=call_id, occurred_at=at(clock + 30 + wait)),
            m.ResumeCall(call_id=call_id, occurred_at=at(clock + 40 + wait)),
            m.StopRecording(call_id=call_id, recording=f"rec-{n}",
                            occurred_at=at(clock + 90 + wait)),
        ]
        if fate < 0.4:
            talk += [m.TransferCall(call_id=call_id, kind="blind", target_type="queue",
                                    target="repair", wrap_up=False,
                                    occurred_at=at(clock + 91 + wait)),
                     m.EndCall(call_id=call_id, hung_up_by="caller",
                               occurred_at=at(clock + 120 + wait))]
        else:
            talk += [m.EndCall(call_id=call_id, hung_up_by="agent",
                               occurred_at=at(clock + 91 + wait)),
                     m.CompleteWrapUp(call_id=call_id, employee_no=agent,
                                      dispositions=["resolved"],
                                      occurred_at=at(clock + 100 + wait)),
                     m.AnswerSurvey(call_id=call_id, score=rng.randint(1, 5),
                                    occurred_at=at(clock + 110 + wait))]
        pending += alert + talk
    # Submitted together, in order: one commit per few hundred commands.
    for start in range(0, len(pending), 400):
        outcomes = svc.handle_many(pending[start:start + 400])
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors[:3]
    return len(pending)
