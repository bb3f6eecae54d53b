"""Every transition and invariant of the Agent aggregate."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.agent import Agent, AgentState, agent_id_for
from domain.errors import InvalidValue, InvariantViolation

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def agent() -> Agent:
    return Agent.register(employee_no="1001", name="Li Na", team="A",
                          skills={"power": 5, "billing": 2}, occurred_at=at(0))


def ready() -> Agent:
    a = agent()
    a.log_in("PJSIP/1001", at(1))
    a.make_ready(at(2))
    return a


def test_registration_validates_and_derives_the_id_from_the_employee_number():
    assert agent().id == agent_id_for("1001")
    with pytest.raises(InvalidValue, match="level"):
        Agent.register(employee_no="1", name="x", team="", skills={"power": 11},
                       occurred_at=at(0))
    with pytest.raises(InvalidValue, match="employee_no"):
        Agent.register(employee_no="", name="x", team="", skills={}, occurred_at=at(0))


def test_log_in_starts_not_ready_and_ready_records_the_idle_start():
    a = agent()
    assert a.state == AgentState.LOGGED_OUT
    a.log_in("PJSIP/1001", at(1))
    assert a.state == AgentState.NOT_READY and a.endpoint == "PJSIP/1001"
    with pytest.raises(InvariantViolation):
        a.log_in("PJSIP/1001", at(2))
    a.make_ready(at(3))
    assert a.state == AgentState.READY and a.ready_since == at(3) and a.state_since == at(3)


def test_not_ready_needs_a_reason_and_a_logged_in_agent():
    a = agent()
    with pytest.raises(InvariantViolation):
        a.make_not_ready("break", at(1))
    a.log_in("PJSIP/1001", at(1))
    with pytest.raises(InvalidValue):
        a.make_not_ready("", at(2))
    a.make_not_ready("meal", at(2))
    assert a.state == AgentState.NOT_READY and a.reason == "meal"


def test_a_call_cannot_be_routed_to_an_agent_who_is_not_ready():
    a = agent()
    a.log_in("PJSIP/1001", at(1))
    with pytest.raises(InvariantViolation, match="not ready"):
        a.ring(uuid4(), "leg-1", at(2))


def test_a_consultation_rings_an_agent_who_is_ready_not_ready_or_in_wrap_up():
    # "ready only" is the ACD's rule: a colleague calling about a caller is not routing
    for make in ("ready", "not_ready", "wrap_up"):
        a = ready()
        if make == "not_ready":
            a.make_not_ready("meal", at(3))
        elif make == "wrap_up":
            earlier = uuid4()
            a.ring(earlier, "leg-0", at(3))
            a.connect(earlier, at(4))
            a.release_call(earlier, at(5))
        call = uuid4()
        with pytest.raises(InvalidValue):  # values before state
            a.ring_for_consult(call, "consult-1", datetime(2026, 11, 23, 8, 0))
        a.ring_for_consult(call, "consult-1", at(10))
        assert (a.state, a.call_id) == (AgentState.RINGING, call)
        a.connect(call, at(12))
        assert a.state == AgentState.ON_CALL


def test_a_consultation_does_not_ring_an_agent_logged_out_or_on_the_phone():
    a = agent()
    with pytest.raises(InvariantViolation, match="logged_out"):
        a.ring_for_consult(uuid4(), "consult-1", at(1))
    a = ready()
    call = uuid4()
    a.ring(call, "leg-1", at(3))
    with pytest.raises(InvariantViolation, match="ringing"):
        a.ring_for_consult(uuid4(), "consult-1", at(4))
    a.connect(call, at(5))
    with pytest.raises(InvariantViolation, match="on_call"):
        a.ring_for_consult(uuid4(), "consult-1", at(6))


def test_a_consultation_ringing_during_wrap_up_ends_that_wrap_up():
    a = ready()
    earlier, call = uuid4(), uuid4()
    a.ring(earlier, "leg-0", at(3))
    a.connect(earlier, at(4))
    a.release_call(earlier, at(10))  # wrap-up from 10
    a.ring_for_consult(call, "consult-1", at(20))  # interrupted at 20
    a.miss_call(call, "no_answer", at(35))
    a.make_ready(at(100))
    # not 90 s of wrap-up: it ended when the consultation rang
    assert a.collect_events()[-1].wrap_up_s is None


def test_ring_answer_release_wrap_up_ready_with_wrap_up_duration():
    a = ready()
    call = uuid4()
    a.ring(call, "leg-1", at(10))
    assert a.state == AgentState.RINGING and a.ready_since is None
    a.connect(call, at(13))
    assert a.state == AgentState.ON_CALL
    with pytest.raises(InvariantViolation):
        a.make_not_ready("break", at(20))
    with pytest.raises(InvariantViolation):
        a.log_out(at(20))
    a.release_call(call, at(100))
    assert a.state == AgentState.WRAP_UP
    a.make_ready(at(130))
    events = a.collect_events()
    assert type(events[-1]).__name__ == "BecameReady" and events[-1].wrap_up_s == 30


def test_release_without_wrap_up_goes_straight_to_ready():
    a = ready()
    call = uuid4()
    a.ring(call, "leg-1", at(10))
    a.connect(call, at(11))
    a.release_call(call, at(50), wrap_up=False)
    assert a.state == AgentState.READY and a.ready_since == at(50)


def test_ring_no_answer_puts_the_agent_not_ready_and_a_canceled_ring_back_to_ready():
    a = ready()
    c1, c2 = uuid4(), uuid4()
    a.ring(c1, "leg-1", at(10))
    a.miss_call(c1, "no_answer", at(25))
    assert a.state == AgentState.NOT_READY and a.reason == "ring_no_answer"
    a.make_ready(at(30))
    a.ring(c2, "leg-2", at(31))
    a.miss_call(c2, "canceled", at(33))
    assert a.state == AgentState.READY


def test_connect_and_release_must_name_the_agents_own_call():
    a = ready()
    call = uuid4()
    a.ring(call, "leg-1", at(10))
    with pytest.raises(InvariantViolation):
        a.connect(uuid4(), at(11))
    a.connect(call, at(11))
    with pytest.raises(InvariantViolation):
        a.release_call(uuid4(), at(20))


def test_wrap_up_ending_in_not_ready_records_its_duration():
    a = ready()
    call = uuid4()
    a.ring(call, "l", at(1))
    a.connect(call, at(2))
    a.release_call(call, at(10))
    a.make_not_ready("coaching", at(25))
    assert a.collect_events()[-1].wrap_up_s == 15


def test_log_out_and_skills():
    a = ready()
    a.change_skills({"power": 7}, at(5))
    assert a.skills == {"power": 7}
    with pytest.raises(InvalidValue):
        a.change_skills({"power": 0}, at(6))
    a.log_out(at(10), reason="end of shift")
    assert a.state == AgentState.LOGGED_OUT and a.endpoint is None
    with pytest.raises(InvariantViolation):
        a.log_out(at(11))


def test_the_agents_name_is_personal_data():
    a = agent()
    (registered,) = a.collect_events()
    assert registered.schema_version == 2 and registered.pii == {"name": "Li Na"}
    assert "Li Na" not in repr({k: v for k, v in vars(registered).items() if k != "pii"})
    assert a.name == "Li Na"
