"""The ACD's choices: who rings next, overflow, ring-no-answer, announcements."""

from datetime import datetime, timedelta, timezone

import pytest

from domain.errors import InvalidValue
from domain.routing import Acd, QueuePolicy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def acd(**over) -> Acd:
    queues = [
        QueuePolicy("repair", priority=10, skills={"repair": 2}, overflow_after_s=60,
                    overflow_to="general", ring_timeout_s=15, announce_first_s=20,
                    announce_every_s=30),
        QueuePolicy("billing", priority=5, skills={"billing": 1}),
        QueuePolicy("general", priority=0),
    ]
    return Acd(queues)


def ready(a: Acd, emp: str, since: float, **skills: int) -> None:
    a.agent_ready(emp, skills=skills, ready_since=at(since), endpoint=f"PJSIP/{emp}")


def test_longest_idle_qualified_agent_gets_the_call():
    a = acd()
    ready(a, "1001", 5, repair=3)
    ready(a, "1002", 1, repair=3)  # idle longest
    ready(a, "1003", 0, repair=1)  # idle even longer but under-skilled
    a.enqueue("c1", "repair", at(10))
    [assignment] = a.assign(at(10))
    assert (assignment.call_id, assignment.employee_no) == ("c1", "1002")
    assert assignment.endpoint == "PJSIP/1002"
    assert assignment.deadline == at(25)
    assert a.ready_agents() == ["1003", "1001"]


def test_no_qualified_agent_leaves_the_call_waiting():
    a = acd()
    ready(a, "1001", 0, billing=5)
    a.enqueue("c1", "repair", at(1))
    assert a.assign(at(1)) == []
    assert a.waiting() == ["c1"] and a.position("c1") == 1


def test_higher_priority_queue_is_served_first_even_if_it_waited_less():
    a = acd()
    a.enqueue("old-general", "general", at(0))
    a.enqueue("new-repair", "repair", at(30))
    ready(a, "1001", 0, repair=5)
    [first] = a.assign(at(31))
    assert first.call_id == "new-repair"
    ready(a, "1002", 31, repair=5)
    [second] = a.assign(at(32))
    assert second.call_id == "old-general"


def test_within_a_queue_call_priority_then_longest_wait():
    a = acd()
    a.enqueue("c1", "general", at(0))
    a.enqueue("c2", "general", at(5), priority=3)
    a.enqueue("c3", "general", at(10))
    assert a.waiting("general") == ["c2", "c1", "c3"]
    assert [a.position(c) for c in ("c2", "c1", "c3")] == [1, 2, 3]


def test_ring_no_answer_requeues_at_the_front_and_drops_the_agent():
    a = acd()
    a.enqueue("c1", "general", at(0))
    a.enqueue("c2", "general", at(1))
    ready(a, "1001", 0)
    [asg] = a.assign(at(2))
    assert asg.call_id == "c1"
    assert a.ring_timeouts(at(16)) == []
    [rt] = a.ring_timeouts(at(17))
    assert (rt.call_id, rt.employee_no) == ("c1", "1001")
    a.ring_no_answer("c1", at(17))
    assert a.waiting("general") == ["c1", "c2"]  # back at the front, ahead of c2
    assert a.ready_agents() == []  # not ready until they say so
    ready(a, "1002", 17)
    [again] = a.assign(at(18))
    assert (again.call_id, again.employee_no) == ("c1", "1002")


def test_a_ringing_agent_is_not_put_back_by_a_stale_ready():
    a = acd()
    ready(a, "1001", 0)
    a.enqueue("c1", "general", at(1))
    a.assign(at(1))
    ready(a, "1001", 0)  # an older "ready" read from the log after the decision
    a.enqueue("c2", "general", at(2))
    assert a.assign(at(2)) == []


def test_overflow_after_n_seconds_keeps_the_whole_wait():
    a = acd()
    a.enqueue("c1", "repair", at(0))
    a.enqueue("g1", "general", at(30))
    assert a.overflows(at(59)) == []
    [ov] = a.overflows(at(60))
    assert (ov.call_id, ov.from_queue, ov.to_queue) == ("c1", "repair", "general")
    assert a.queue_of("c1") == "general"
    # it waited since 0, longer than g1: first in the general queue
    assert a.waiting("general") == ["c1", "g1"]
    assert a.overflows(at(600)) == []  # general does not overflow further
    ready(a, "1001", 0)  # no repair skill: fine for general
    assert a.assign(at(61))[0].call_id == "c1"


def test_position_announcements_follow_the_schedule():
    a = acd()
    a.enqueue("c1", "repair", at(0))
    a.enqueue("c2", "repair", at(5))
    assert a.announcements(at(19)) == []
    [ann] = a.announcements(at(20))
    assert (ann.call_id, ann.position) == ("c1", 1)
    [ann2] = a.announcements(at(25))
    assert (ann2.call_id, ann2.position) == ("c2", 2)
    assert a.announcements(at(49)) == []
    assert [x.call_id for x in a.announcements(at(50))] == ["c1"]
    assert a.next_deadline() == at(55)


def test_a_call_that_leaves_is_forgotten():
    a = acd()
    a.enqueue("c1", "general", at(0))
    assert a.remove_call("c1") is None  # nobody was being rung for it
    ready(a, "1001", 0)
    assert a.assign(at(1)) == [] and a.position("c1") is None


def test_a_call_that_leaves_while_ringing_names_the_agent_it_held():
    # the adapter reads that agent's record again: the ring may never have reached it
    a = acd()
    ready(a, "1001", 0)
    a.enqueue("c1", "general", at(1))
    [assignment] = a.assign(at(1))
    assert a.ready_agents() == []
    assert a.remove_call("c1") == "1001"
    assert a.ringing_for("1001") is None and a.remove_call("c1") is None


@pytest.mark.parametrize("bad", [
    dict(name="q", overflow_after_s=10),  # overflow without a target
    dict(name="q", overflow_to="q", overflow_after_s=10),
    dict(name="q", ring_timeout_s=0),
    dict(name="q", skills={"x": 11}),
])
def test_inconsistent_queue_policies_are_refused(bad):
    with pytest.raises(InvalidValue):
        QueuePolicy(**bad)


def test_overflow_to_an_unknown_queue_is_refused():
    with pytest.raises(InvalidValue, match="unknown queue"):
        Acd([QueuePolicy("a", overflow_after_s=5, overflow_to="nowhere")])
