"""Every transition and invariant of the Call aggregate, without I/O."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.call import Call, CallState, call_id_for
from domain.errors import InvalidValue, InvariantViolation

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def offered(external_id: str = "ch-1") -> Call:
    return Call.offer(external_id=external_id, dialed_number="95598", trunk="trunk-1",
                      caller_hash="h", caller_number="13800000000", occurred_at=at(0))


def connected(agent=None) -> tuple[Call, object]:
    call = offered()
    call.enter_ivr("main", at(1))
    call.enqueue("power", at(5))
    agent = agent or uuid4()
    call.alert_agent(agent, "leg-1", "PJSIP/1001", at(10))
    call.answer("leg-1", at(14))
    return call, agent


def names(call: Call) -> list[str]:
    return [type(e).__name__ for e in call.collect_events()]


def test_offer_derives_the_conversation_id_from_the_telephony_id():
    assert offered("abc").id == call_id_for("abc") == offered("abc").id
    assert offered("abc").id != offered("abd").id


def test_caller_number_is_kept_only_in_the_pii_field():
    call = offered()
    (event,) = call.collect_events()
    assert event.pii == {"caller_number": "13800000000"}
    assert "13800000000" not in repr({k: v for k, v in event.__dict__.items() if k != "pii"})


def test_offer_refuses_naive_times_and_missing_numbers():
    with pytest.raises(InvalidValue, match="timezone"):
        Call.offer(external_id="x", dialed_number="95598", trunk="", caller_hash="",
                   caller_number=None, occurred_at=datetime(2026, 1, 1))
    with pytest.raises(InvalidValue, match="dialed_number"):
        Call.offer(external_id="x", dialed_number="", trunk="", caller_hash="",
                   caller_number=None, occurred_at=at(0))


def test_full_lifecycle_records_each_step_as_an_event():
    call, agent = connected()
    call.hold(at(30))
    call.resume(at(45))
    call.start_recording("rec-1", "bridge-1", at(14))
    call.stop_recording("rec-1", at(60), duration_s=46.0)
    call.end("agent", "normal", at(60), cause_code=16)
    call.complete_wrap_up(agent, ["billing"], at(90))
    call.answer_survey(5, at(70))
    assert names(call) == [
        "Offered", "IvrEntered", "Queued", "AgentAlerted", "Answered", "Held", "Resumed",
        "RecordingStarted", "RecordingStopped", "Ended", "WrapUpCompleted", "SurveyAnswered",
    ]
    assert call.state == CallState.ENDED
    assert call.hold_s == 15
    assert call.answered_at == at(14) and call.ended_at == at(60)
    assert call.hung_up_by == "agent" and call.dispositions == ["billing"]


def test_ivr_choices_and_self_service_build_the_ivr_path():
    call = offered()
    call.enter_ivr("main", at(1))
    call.choose("main", "2", "self_service", at(3))
    call.use_self_service("work_order_status", "found", "2026112300000001", at(9))
    assert call.ivr_path == ["main", "main:2"]
    assert call.self_service == ["work_order_status"]
    with pytest.raises(InvalidValue, match="DTMF"):
        call.choose("main", "x", "", at(10))


def test_menu_choice_needs_the_ivr():
    call = offered()
    with pytest.raises(InvariantViolation):
        call.choose("main", "1", "", at(1))


def test_ring_no_answer_returns_the_caller_to_the_queue_keeping_the_wait_start():
    call = offered()
    call.enqueue("power", at(5))
    call.alert_agent(uuid4(), "leg-1", "PJSIP/1001", at(10))
    call.ring_no_answer("leg-1", "no_answer", at(25))
    assert call.state == CallState.QUEUED and call.agent_id is None
    assert call.queued_at == at(5)  # back at the front: its wait did not restart
    call.alert_agent(uuid4(), "leg-2", "PJSIP/1002", at(26))
    call.answer("leg-2", at(30))
    assert call.legs["leg-1"]["answered_at"] is None
    assert call.legs["leg-2"]["answered_at"] == at(30)


def test_cannot_answer_without_an_alerted_agent_or_after_the_end():
    call = offered()
    call.enqueue("power", at(5))
    with pytest.raises(InvariantViolation):
        call.answer("leg-1", at(6))
    call.end("caller", "normal", at(7))
    with pytest.raises(InvariantViolation, match="abandoned"):
        call.answer("leg-1", at(8))


def test_answering_an_ended_call_is_refused():
    call, _ = connected()
    call.end("caller", "normal", at(50))
    with pytest.raises(InvariantViolation, match="ended"):
        call.answer("leg-1", at(51))


@pytest.mark.parametrize("stage,prepare", [
    ("ivr", lambda c: c.enter_ivr("main", at(1))),
    ("queue", lambda c: c.enqueue("power", at(5))),
    ("ringing", lambda c: (c.enqueue("power", at(5)),
                           c.alert_agent(uuid4(), "leg-1", "PJSIP/1001", at(8)))),
])
def test_caller_hang_up_before_answer_is_an_abandon_at_the_right_stage(stage, prepare):
    call = offered()
    prepare(call)
    call.end("caller", "normal", at(20))
    assert call.state == CallState.ABANDONED and call.abandon_stage == stage
    assert names(call)[-1] == "Abandoned"


def test_leaving_the_ivr_after_self_service_is_not_an_abandon():
    call = offered()
    call.enter_ivr("main", at(1))
    call.use_self_service("outage_info", "found", None, at(5))
    call.end("caller", "normal", at(20))
    assert call.state == CallState.ENDED and call.abandon_stage is None


def test_system_ending_a_queued_call_is_not_an_abandon():
    call = offered()
    call.enqueue("power", at(5))
    call.end("system", "queue timeout", at(200))
    assert call.state == CallState.ENDED


def test_hold_and_resume_rules():
    call, _ = connected()
    with pytest.raises(InvariantViolation):
        call.resume(at(20))
    call.hold(at(20))
    with pytest.raises(InvariantViolation):
        call.hold(at(21))
    call.end("caller", "normal", at(30))  # hanging up on hold closes the hold time
    assert call.hold_s == 10


def test_blind_transfer_to_a_queue_releases_the_leg_and_queues_again():
    call, agent = connected()
    call.transfer("blind", "queue", "billing", at(40))
    assert call.state == CallState.QUEUED and call.queue == "billing"
    assert call.queued_at == at(40) and call.transfers == 1
    assert call.legs["leg-1"]["ended_at"] == at(40)
    second = uuid4()
    call.alert_agent(second, "leg-2", "PJSIP/2001", at(45))
    call.answer("leg-2", at(47))
    assert call.agent_id == second


def test_transfer_validation():
    call, _ = connected()
    with pytest.raises(InvalidValue):
        call.transfer("sideways", "queue", "billing", at(40))
    with pytest.raises(InvalidValue):
        call.transfer("blind", "planet", "mars", at(40))
    fresh = offered()
    with pytest.raises(InvariantViolation):
        fresh.transfer("blind", "queue", "billing", at(2))


def test_conference_parties_join_and_leave():
    call, _ = connected()
    call.add_conference_party("PJSIP/3001", at(20))
    with pytest.raises(InvariantViolation):
        call.add_conference_party("PJSIP/3001", at(21))
    call.remove_conference_party("PJSIP/3001", at(30))
    with pytest.raises(InvariantViolation):
        call.remove_conference_party("PJSIP/3001", at(31))


def test_supervisor_monitoring_and_force_disconnect():
    call, _ = connected()
    with pytest.raises(InvalidValue):
        call.start_monitor("sup-1", "shout", at(20))
    call.start_monitor("sup-1", "listen", at(20))
    call.start_monitor("sup-1", "barge", at(25))  # listen escalated to barge
    assert call.monitors == {"sup-1": "barge"}
    call.stop_monitor("sup-1", at(30))
    with pytest.raises(InvariantViolation):
        call.stop_monitor("sup-1", at(31))
    call.force_disconnect("sup-1", at(40))
    assert call.state == CallState.ENDED and call.hung_up_by == "supervisor"


def test_monitoring_needs_a_conversation():
    call = offered()
    call.enqueue("power", at(5))
    with pytest.raises(InvariantViolation):
        call.start_monitor("sup-1", "listen", at(6))


def test_recording_cannot_start_twice_or_stop_when_not_running():
    call, _ = connected()
    call.start_recording("rec-1", "bridge-1", at(14))
    with pytest.raises(InvariantViolation):
        call.start_recording("rec-1", "bridge-1", at(15))
    call.stop_recording("rec-1", at(20))
    with pytest.raises(InvariantViolation):
        call.stop_recording("rec-1", at(21))


def test_wrap_up_only_after_the_end_and_only_by_an_agent_who_talked():
    call, agent = connected()
    with pytest.raises(InvariantViolation, match="after the call"):
        call.complete_wrap_up(agent, ["x"], at(20))
    call.end("caller", "normal", at(30))
    with pytest.raises(InvariantViolation, match="talked"):
        call.complete_wrap_up(uuid4(), ["x"], at(40))
    with pytest.raises(InvalidValue):
        call.complete_wrap_up(agent, "billing", at(40))  # type: ignore[arg-type]
    call.complete_wrap_up(agent, ["billing"], at(40))
    with pytest.raises(InvariantViolation):
        call.complete_wrap_up(agent, ["billing"], at(41))


def test_survey_rules():
    unanswered = offered()
    unanswered.end("caller", "normal", at(3))
    with pytest.raises(InvariantViolation):
        unanswered.answer_survey(5, at(4))
    call, _ = connected()
    call.end("agent", "normal", at(30))
    for bad in (0, 6, True, "5"):
        with pytest.raises(InvalidValue):
            call.answer_survey(bad, at(31))  # type: ignore[arg-type]
    call.answer_survey(4, at(31))
    assert call.survey_score == 4 and call.survey_scale == 5
    with pytest.raises(InvariantViolation):
        call.answer_survey(5, at(32))


def test_nothing_happens_to_an_ended_call():
    call, _ = connected()
    call.end("caller", "normal", at(30))
    for action in (lambda: call.enqueue("x", at(31)), lambda: call.hold(at(31)),
                   lambda: call.end("agent", "x", at(31)),
                   lambda: call.enter_ivr("main", at(31)),
                   lambda: call.start_recording("r", "b", at(31))):
        with pytest.raises(InvariantViolation):
            action()


def test_queueing_a_connected_call_is_refused():
    call, _ = connected()
    with pytest.raises(InvariantViolation, match="transfer"):
        call.enqueue("billing", at(20))


def test_a_refused_command_leaves_no_event():
    call, _ = connected()
    call.collect_events()
    with pytest.raises(InvariantViolation):
        call.resume(at(20))
    assert call.collect_events() == []


def test_work_orders_link_once():
    call, _ = connected()
    wo = uuid4()
    call.link_work_order(wo, at(20))
    with pytest.raises(InvariantViolation):
        call.link_work_order(wo, at(21))
    assert call.work_orders == [wo]


def test_applied_command_ids_are_remembered():
    call = Call.offer(external_id="c", dialed_number="95598", trunk="", caller_hash="",
                      caller_number=None, occurred_at=at(0), command_id="cmd-1")
    call.enter_ivr("main", at(1), command_id="cmd-2")
    assert call.has_applied("cmd-1") and call.has_applied("cmd-2")
    assert not call.has_applied("cmd-3") and not call.has_applied(None)


def test_a_bad_value_is_named_even_when_the_call_is_in_the_wrong_state():
    """A client sending a wrong enum value learns which field is wrong (422),
    not that the call is busy (409)."""
    queued = offered()
    queued.enter_ivr("main", at(1))
    queued.enqueue("power", at(5))
    with pytest.raises(InvalidValue) as e:
        queued.transfer("sideways", "queue", "billing", at(40))
    assert e.value.context["field"] == "kind"
    with pytest.raises(InvalidValue) as e:
        queued.start_monitor("sup-1", "spy", at(40))
    assert e.value.context["field"] == "mode"
    unanswered = offered()
    with pytest.raises(InvalidValue) as e:
        unanswered.answer_survey(9, at(4))
    assert e.value.context["field"] == "score"
    ended = offered()
    ended.end("caller", "normal", at(3))
    with pytest.raises(InvalidValue) as e:
        ended.end("martian", "normal", at(4))
    assert e.value.context["field"] == "hung_up_by"


def test_a_call_cannot_go_back_in_time_beyond_the_clock_skew_allowed():
    call = offered()
    call.enter_ivr("main", at(100))
    with pytest.raises(InvalidValue) as e:
        call.enqueue("power", at(100 - 61))
    call.choose("main", "2", "power", at(100 - 59))  # a little skew between clocks is fine
    assert e.value.context["field"] == "occurred_at" and "before this call's last event" in str(e.value)
    with pytest.raises(InvalidValue):
        call.end("caller", "normal", datetime(1, 1, 1, tzinfo=timezone.utc))
    call.enqueue("power", at(101))
    assert call.state == CallState.QUEUED


def test_a_conference_party_is_named_in_pii_only():
    call, _ = connected()
    agent = uuid4()
    call.add_conference_party("13600001111", at(20))
    call.add_conference_party("1002", at(21), agent_id=agent)
    call.remove_conference_party("13600001111", at(30))
    assert call.conference == ["1002"]
    joined, other, left = call.collect_events()[-3:]
    assert joined.schema_version == 2 and joined.pii == {"party": "13600001111"}
    assert joined.agent_id is None and other.agent_id == agent
    assert left.pii == {"party": "13600001111"} and not hasattr(left, "party")


def test_an_external_transfer_number_is_kept_in_pii():
    call, _ = connected()
    call.transfer("blind", "external", "057188886666", at(40))
    transferred = call.collect_events()[-1]
    assert transferred.schema_version == 2 and transferred.target == ""
    assert transferred.pii == {"target": "057188886666"}
    queued, _ = connected()
    queued.transfer("blind", "queue", "billing", at(40))
    assert queued.collect_events()[-1].target == "billing" and queued.queue == "billing"


def test_a_call_transferred_outside_the_center_is_live_outside_not_in_the_ivr():
    call, _ = connected()
    call.transfer("blind", "external", "057188886666", at(40))
    assert call.state == CallState.OUTSIDE and call.is_live
    assert (call.agent_id, call.leg_id) == (None, None)
    # the caller talks with the outside party: nothing of the IVR or a queue
    with pytest.raises(InvariantViolation):
        call.choose("main", "1", "queue:power", at(41))
    with pytest.raises(InvariantViolation):
        call.use_self_service("outage_info", "ok", None, at(41))
    with pytest.raises(InvariantViolation):
        call.enqueue("power", at(41))
    with pytest.raises(InvariantViolation):
        call.enter_ivr("main", at(41))
    call.start_recording("rec-2", "bridge:b", at(42))  # the bridge recording may go on
    # the caller hanging up then was served: no abandon
    call.end("caller", "transferred out; the caller hung up", at(90))
    assert call.state == CallState.ENDED and call.abandon_stage is None
    assert names(call)[-1] == "Ended"
    # an IVR target is still the IVR
    back, _ = connected()
    back.transfer("blind", "ivr", "survey", at(40))
    assert back.state == CallState.IVR


def test_an_outbound_calls_dialed_number_is_the_customers_and_kept_in_pii():
    call = Call.offer(external_id="o", dialed_number="13800002222", trunk="", caller_hash="",
                      caller_number=None, direction="outbound", dialed_hash="h-1",
                      occurred_at=at(0))
    (offered,) = call.collect_events()
    assert offered.schema_version == 2 and offered.dialed_number == ""
    assert offered.pii == {"dialed_number": "13800002222"} and offered.dialed_hash == "h-1"
    assert call.dialed_number == "13800002222"
    inbound = Call.offer(external_id="i", dialed_number="95598", trunk="", caller_hash="",
                         caller_number=None, dialed_hash="ignored", occurred_at=at(0))
    (offered,) = inbound.collect_events()
    assert (offered.dialed_number, offered.dialed_hash, offered.pii) == ("95598", "", {})


# -- consultation (attended transfer) -----------------------------------------
def consulting(answered: bool = True) -> tuple[Call, object, object]:
    """A connected call, the caller held, a colleague alerted (and answered)."""
    call, agent = connected()
    call.hold(at(20))
    colleague = uuid4()
    call.alert_consult(colleague, "consult-1", "PJSIP/1002", at(21))
    if answered:
        call.answer_consult("consult-1", at(25))
    return call, agent, colleague


def test_a_consult_leg_is_alerted_and_answered_while_the_caller_waits():
    call, agent, colleague = consulting()
    assert names(call)[-3:] == ["Held", "ConsultAlerted", "ConsultAnswered"]
    # the call stays with the first agent, on hold, during the consultation
    assert call.state == CallState.HELD and call.agent_id == agent and call.leg_id == "leg-1"
    assert call.consult_leg_id == "consult-1"
    assert call.legs["consult-1"]["agent_id"] == colleague
    assert call.legs["consult-1"]["alerted_at"] == at(21)
    assert call.legs["consult-1"]["answered_at"] == at(25)
    assert call.answered_at == at(14)  # the call's answer is the first agent's


def test_a_consultation_may_start_while_connected():
    call, agent = connected()
    call.alert_consult(uuid4(), "consult-1", "", at(20))
    assert call.state == CallState.CONNECTED and call.consult_leg_id == "consult-1"


def test_attended_transfer_hands_the_call_to_the_answered_consult_leg():
    call, agent, colleague = consulting()
    call.collect_events()
    call.transfer("attended", "agent", "1002", at(40), to_leg_id="consult-1")
    (xfer,) = call.collect_events()
    assert type(xfer).__name__ == "Transferred"
    assert (xfer.from_leg_id, xfer.from_agent_id) == ("leg-1", agent)
    assert (xfer.to_leg_id, xfer.to_agent_id) == ("consult-1", colleague)
    # connected to the colleague at once, no second alert or answer
    assert call.state == CallState.CONNECTED
    assert call.agent_id == colleague and call.leg_id == "consult-1"
    assert call.consult_leg_id is None and call.transfers == 1
    assert call.legs["leg-1"]["ended_at"] == at(40)
    assert call.legs["consult-1"]["answered_at"] == at(25)
    assert call.held_since is None and call.hold_s == 20  # the hold ended with the transfer
    # the colleague is now the call's agent: they hold, hang up, wrap up
    call.hold(at(50))
    call.resume(at(52))
    call.end("agent", "normal", at(60))
    assert call.legs["consult-1"]["ended_at"] == at(60)
    call.complete_wrap_up(colleague, ["billing"], at(70))


def test_a_transfer_to_a_consult_leg_is_checked():
    call, _, _ = consulting(answered=False)
    # values first: only an attended transfer to an agent goes to a consult leg
    with pytest.raises(InvalidValue, match="to_leg_id"):
        call.transfer("blind", "agent", "1002", at(30), to_leg_id="consult-1")
    with pytest.raises(InvalidValue, match="to_leg_id"):
        call.transfer("attended", "queue", "billing", at(30), to_leg_id="consult-1")
    with pytest.raises(InvalidValue, match="to_leg_id"):
        call.transfer("attended", "agent", "1002", at(30), to_leg_id="")
    with pytest.raises(InvariantViolation, match="not answered"):
        call.transfer("attended", "agent", "1002", at(30), to_leg_id="consult-1")
    with pytest.raises(InvariantViolation, match="live consult leg"):
        call.transfer("attended", "agent", "1002", at(30), to_leg_id="other-leg")
    # a transfer elsewhere would leave the colleague's leg hanging
    with pytest.raises(InvariantViolation, match="consult leg consult-1 is live"):
        call.transfer("blind", "queue", "billing", at(30))
    fresh, _ = connected()
    with pytest.raises(InvariantViolation, match="live consult leg"):
        fresh.transfer("attended", "agent", "1002", at(30), to_leg_id="consult-1")
    assert call.state == CallState.HELD and call.consult_leg_id == "consult-1"


def test_old_transfers_without_a_consult_leg_keep_their_meaning():
    call, agent = connected()
    call.collect_events()
    call.transfer("attended", "agent", "1002", at(40))
    (xfer,) = call.collect_events()
    assert xfer.to_leg_id is None and xfer.to_agent_id is None
    assert call.state == CallState.QUEUED and call.agent_id is None
    # an event stored before the field existed: the caller waits for the target
    stored = {k: v for k, v in xfer.__dict__.items() if k not in ("to_leg_id", "to_agent_id")}
    old = object.__new__(type(xfer))
    object.__setattr__(old, "__dict__", stored)
    assert old.to_leg_id is None
    replayed, _ = connected()
    replayed.collect_events()
    old.__dict__["originator_version"] = replayed.version + 1
    old.apply(replayed)
    assert replayed.state == CallState.QUEUED and replayed.agent_id is None
    assert replayed.legs["leg-1"]["ended_at"] == at(40)


def test_a_missed_consultation_leaves_the_caller_with_the_agent():
    call, agent, colleague = consulting(answered=False)
    call.consult_missed("consult-1", "no_answer", at(36))
    assert names(call)[-1] == "ConsultMissed"
    assert call.consult_leg_id is None and call.legs["consult-1"]["ended_at"] == at(36)
    assert call.state == CallState.HELD and call.agent_id == agent
    # the agent may consult again, someone else or the same colleague
    call.alert_consult(colleague, "consult-2", "PJSIP/1002", at(40))
    call.consult_missed("consult-2", "busy", at(41))
    call.alert_consult(colleague, "consult-3", "PJSIP/1002", at(42))
    call.consult_missed("consult-3", "canceled", at(43))


def test_a_consultation_that_ends_without_transfer_gives_the_call_back():
    call, agent, colleague = consulting()
    call.resume(at(30))  # the agent takes the caller back
    call.end_consult("consult-1", at(31), ended_by="agent")
    events = call.collect_events()
    assert type(events[-1]).__name__ == "ConsultEnded"
    assert (events[-1].agent_id, events[-1].ended_by) == (colleague, "agent")
    assert call.consult_leg_id is None and call.legs["consult-1"]["ended_at"] == at(31)
    assert call.state == CallState.CONNECTED and call.agent_id == agent
    # the colleague hanging up is the default
    call.alert_consult(colleague, "consult-2", "", at(40))
    call.answer_consult("consult-2", at(41))
    call.end_consult("consult-2", at(45))
    assert call.collect_events()[-1].ended_by == "colleague"


def test_consult_transitions_refuse_the_wrong_state_and_bad_values():
    call, agent = connected()
    colleague = uuid4()
    # values before state
    with pytest.raises(InvalidValue, match="agent_id"):
        call.alert_consult("1002", "consult-1", "", at(20))
    with pytest.raises(InvalidValue, match="leg_id"):
        call.alert_consult(colleague, "", "", at(20))
    with pytest.raises(InvalidValue, match="outcome"):
        call.consult_missed("consult-1", "lost", at(20))
    with pytest.raises(InvalidValue, match="ended_by"):
        call.end_consult("consult-1", at(20), ended_by="nobody")
    with pytest.raises(InvalidValue, match="leg_id"):
        call.answer_consult("", at(20))
    # nothing to answer, miss or end yet
    for act in (lambda: call.answer_consult("consult-1", at(20)),
                lambda: call.consult_missed("consult-1", "no_answer", at(20)),
                lambda: call.end_consult("consult-1", at(20))):
        with pytest.raises(InvariantViolation):
            act()
    with pytest.raises(InvariantViolation, match="themselves"):
        call.alert_consult(agent, "consult-1", "", at(20))
    with pytest.raises(InvariantViolation, match="already exists"):
        call.alert_consult(colleague, "leg-1", "", at(20))
    call.alert_consult(colleague, "consult-1", "", at(20))
    # at most one live consult leg
    with pytest.raises(InvariantViolation, match="already live"):
        call.alert_consult(uuid4(), "consult-2", "", at(21))
    with pytest.raises(InvariantViolation, match="has not answered"):
        call.end_consult("consult-1", at(21))
    with pytest.raises(InvariantViolation, match="live consult leg"):
        call.answer_consult("consult-9", at(21))
    call.answer_consult("consult-1", at(22))
    with pytest.raises(InvariantViolation, match="already answered"):
        call.answer_consult("consult-1", at(23))
    with pytest.raises(InvariantViolation, match="end it instead"):
        call.consult_missed("consult-1", "no_answer", at(23))
    # only during a conversation
    queued = offered()
    queued.enqueue("power", at(5))
    with pytest.raises(InvariantViolation, match="not connected"):
        queued.alert_consult(colleague, "consult-1", "", at(6))
    # the refusals left no event
    assert names(call) == ["Offered", "IvrEntered", "Queued", "AgentAlerted", "Answered",
                           "ConsultAlerted", "ConsultAnswered"]


def test_ending_the_call_ends_a_live_consult_leg():
    call, agent, colleague = consulting()
    call.collect_events()
    call.end("caller", "normal", at(50))
    assert names(call) == ["ConsultEnded", "Ended"]
    assert call.consult_leg_id is None and call.legs["consult-1"]["ended_at"] == at(50)
    ringing, _, _ = consulting(answered=False)
    ringing.collect_events()
    ringing.force_disconnect("sup-1", at(50))
    events = ringing.collect_events()
    assert [type(e).__name__ for e in events] == ["ConsultMissed", "Ended"]
    assert events[0].outcome == "canceled" and events[0].actor == "sup-1"
    assert ringing.state == CallState.ENDED and ringing.consult_leg_id is None
    with pytest.raises(InvariantViolation):
        ringing.alert_consult(colleague, "consult-2", "", at(51))


def test_a_consult_leg_replays_from_its_events():
    call, agent, colleague = consulting()
    call.transfer("attended", "agent", "1002", at(40), to_leg_id="consult-1")
    events = call.collect_events()
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed.state == CallState.CONNECTED and replayed.agent_id == colleague
    assert replayed.legs == call.legs and replayed.consult_leg_id is None


def test_queued_says_why_the_call_entered_the_queue():
    call = offered()
    call.enqueue("repair", at(5))
    call.enqueue("general", at(35), reason="overflow", from_queue="repair")
    queued = [e for e in call.collect_events() if type(e).__name__ == "Queued"]
    assert [(e.queue, e.reason, e.from_queue) for e in queued] == [
        ("repair", None, None), ("general", "overflow", "repair")]
    assert call.queue == "general" and call.queued_at == at(35)


@pytest.mark.parametrize("kw", [
    {"reason": "bored"},
    {"reason": "overflow"},  # from which queue?
    {"reason": "overflow", "from_queue": "general"},  # not another queue
    {"reason": "transfer", "from_queue": "repair"},  # from_queue is an overflow's
    {"from_queue": "repair"},
])
def test_a_queue_reason_must_make_sense(kw):
    call = offered()
    with pytest.raises(InvalidValue):
        call.enqueue("general", at(5), **kw)
