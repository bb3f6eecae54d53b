"""Events are forever: a v1 SurveyAnswered stored before the scale field
existed still loads, and means a score on the 1-5 keypad scale."""

import json
from datetime import datetime, timezone

from eventsourcing.persistence import StoredEvent

from commands import messages as m
from domain.call import Call

T = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def _answered_call(svc):
    svc.handle(m.RegisterAgent(employee_no="7", name="Zhao", skills={"power": 1}))
    svc.handle(m.LogIn(employee_no="7", endpoint="PJSIP/7"))
    svc.handle(m.MakeReady(employee_no="7"))
    cid = svc.handle(m.OfferCall(external_id="up-1", dialed_number="95598",
                                 occurred_at=T)).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="7"))
    svc.handle(m.AnswerCall(call_id=cid))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="agent"))
    return cid


def test_a_stored_v1_survey_answer_is_upcast_on_read(lianxin):
    app, svc = lianxin.app, lianxin.commands
    call_id = _answered_call(svc)
    call = app.repository.get(call_id)
    # Write the survey answer exactly as v1 of the event class stored it:
    # no ``scale`` and no ``class_version`` in the state.
    event = Call.SurveyAnswered(originator_id=call_id, originator_version=call.version + 1,
                                timestamp=T, score=4, question="overall", scale=5,
                                occurred_at=T, command_id=None, actor=None)
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    del state["scale"]
    v1 = StoredEvent(originator_id=stored.originator_id,
                     originator_version=stored.originator_version,
                     topic=stored.topic, state=json.dumps(state).encode())
    app.recorder.insert_events([v1])

    reloaded = app.repository.get(call_id)
    assert reloaded.survey_score == 4 and reloaded.survey_scale == 5
    last = list(app.events.get(call_id))[-1]
    assert type(last).__name__ == "SurveyAnswered" and last.scale == 5
    assert last.schema_version == 2


def test_new_survey_answers_are_stored_as_v2(lianxin):
    app, svc = lianxin.app, lianxin.commands
    call_id = _answered_call(svc)
    svc.handle(m.AnswerSurvey(call_id=call_id, score=5))
    stored = app.recorder.select_events(call_id, desc=True, limit=1)[0]
    state = json.loads(stored.state)
    assert state["class_version"] == 2 and state["scale"] == 5



def _store_as_v1(app, event, to_v1) -> None:
    """Store ``event`` as v1 of its class wrote it: ``to_v1`` turns the
    current state back into the v1 state (which has no class_version)."""
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    to_v1(state)
    app.recorder.insert_events([StoredEvent(
        originator_id=stored.originator_id, originator_version=stored.originator_version,
        topic=stored.topic, state=json.dumps(state).encode())])


def test_a_stored_v1_agent_registration_moves_the_name_into_pii(lianxin):
    from eventsourcing.utils import get_topic

    from domain.agent import Agent, agent_id_for
    from queries.agents import get_agent
    from queries.work_orders import fresh

    app = lianxin.app
    agent_id = agent_id_for("8")

    def v1(state):
        state["name"] = state.pop("pii")["name"]

    _store_as_v1(app, Agent.Registered(
        originator_id=agent_id, originator_version=1, timestamp=T,
        originator_topic=get_topic(Agent), employee_no="8", team="A", skills={"power": 3},
        pii={"name": "Qian Li"}, occurred_at=T, command_id="reg-8", actor=None), v1)
    assert b"Qian Li" in app.recorder.select_events(agent_id)[0].state  # the v1 bytes stay
    agent = app.repository.get(agent_id)
    assert (agent.name, agent.employee_no, agent.skills) == ("Qian Li", "8", {"power": 3})
    (registered,) = app.events.get(agent_id)
    assert registered.schema_version == 2 and registered.pii == {"name": "Qian Li"}
    assert not hasattr(registered, "name")
    # The board still shows the name, read from ``pii``.
    lianxin.commands.handle(m.LogIn(employee_no="8", endpoint="PJSIP/8"))
    fresh(lianxin)
    assert get_agent(lianxin, "8")["name"] == "Qian Li"


def test_new_agent_registrations_keep_the_name_in_pii_only(lianxin):
    from domain.agent import agent_id_for

    lianxin.commands.handle(m.RegisterAgent(employee_no="9", name="Sun Wei", skills={}))
    stored = lianxin.app.recorder.select_events(agent_id_for("9"))[0]
    state = json.loads(stored.state)
    assert state["class_version"] == 2 and state["pii"] == {"name": "Sun Wei"}
    assert "name" not in state


def test_stored_v1_conference_parties_move_into_pii(lianxin):
    app, svc = lianxin.app, lianxin.commands
    svc.handle(m.RegisterAgent(employee_no="7", name="Zhao", skills={"power": 1}))
    svc.handle(m.LogIn(employee_no="7", endpoint="PJSIP/7"))
    svc.handle(m.MakeReady(employee_no="7"))
    cid = svc.handle(m.OfferCall(external_id="conf-1", dialed_number="95598",
                                 occurred_at=T)).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="7"))
    svc.handle(m.AnswerCall(call_id=cid))
    version = app.repository.get(cid).version

    def v1(state):
        state["party"] = state.pop("pii")["party"]
        del state["agent_id"]

    for n, (cls, party) in enumerate([(Call.ConferencePartyJoined, "13600001111"),
                                      (Call.ConferencePartyJoined, "engineer-77"),
                                      (Call.ConferencePartyLeft, "13600001111")], start=1):
        _store_as_v1(app, cls(originator_id=cid, originator_version=version + n, timestamp=T,
                              agent_id=None, pii={"party": party}, occurred_at=T,
                              command_id=None, actor=None), v1)
    call = app.repository.get(cid)
    assert call.conference == ["engineer-77"]
    old = [e for e in app.events.get(cid) if "ConferenceParty" in type(e).__name__]
    assert [(e.schema_version, e.pii, e.agent_id) for e in old] == [
        (2, {"party": "13600001111"}, None), (2, {"party": "engineer-77"}, None),
        (2, {"party": "13600001111"}, None)]
    # A v2 leave of a party that joined in v1.
    svc.handle(m.RemoveConferenceParty(call_id=cid, party="engineer-77"))
    assert app.repository.get(cid).conference == []
    # The timeline shows the party as it always did.
    from queries.calls import call_events
    from queries.work_orders import fresh

    fresh(lianxin)
    shown = [e["fields"] for e in call_events(lianxin, cid)
             if e["event_type"].startswith("ConferenceParty")]
    assert [f["party"] for f in shown] == ["13600001111", "engineer-77", "13600001111",
                                           "engineer-77"]
    assert all("pii" not in f for f in shown)



def test_a_conference_party_that_is_an_agent_is_named_by_its_agent_id_too(lianxin):
    from domain.agent import agent_id_for

    app, svc = lianxin.app, lianxin.commands
    svc.handle(m.RegisterAgent(employee_no="7", name="Zhao", skills={"power": 1}))
    svc.handle(m.RegisterAgent(employee_no="1002", name="Zhou", skills={}))
    svc.handle(m.LogIn(employee_no="7", endpoint="PJSIP/7"))
    svc.handle(m.MakeReady(employee_no="7"))
    cid = svc.handle(m.OfferCall(external_id="conf-2", dialed_number="95598",
                                 occurred_at=T)).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="power"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="7"))
    svc.handle(m.AnswerCall(call_id=cid))
    svc.handle(m.AddConferenceParty(call_id=cid, party="1002"))
    svc.handle(m.AddConferenceParty(call_id=cid, party="13600001111"))
    joined = [e for e in app.events.get(cid) if type(e).__name__ == "ConferencePartyJoined"]
    assert [(e.agent_id, e.pii["party"]) for e in joined] == [
        (agent_id_for("1002"), "1002"), (None, "13600001111")]


def test_a_stored_v1_outbound_offer_and_external_transfer_move_the_numbers_into_pii(lianxin):
    from eventsourcing.utils import get_topic

    from domain.call import call_id_for
    from queries.calls import call_events, get_call
    from queries.work_orders import fresh

    app, svc = lianxin.app, lianxin.commands
    cid = call_id_for("out-v1")

    def offered_v1(state):
        pii = state["pii"]
        state["dialed_number"] = pii.pop("dialed_number")
        del state["dialed_hash"]

    _store_as_v1(app, Call.Offered(
        originator_id=cid, originator_version=1, timestamp=T, originator_topic=get_topic(Call),
        external_id="out-v1", dialed_number="", dialed_hash="", trunk="", direction="outbound",
        caller_hash="", pii={"dialed_number": "13800002222"}, occurred_at=T, command_id=None,
        actor=None), offered_v1)
    call = app.repository.get(cid)
    assert call.dialed_number == "13800002222" and call.dialed_hash == ""
    (offered,) = app.events.get(cid)
    assert offered.schema_version == 2 and offered.dialed_number == ""
    assert offered.pii == {"dialed_number": "13800002222"}

    svc.handle(m.RegisterAgent(employee_no="7", name="Zhao", skills={"power": 1}))
    svc.handle(m.LogIn(employee_no="7", endpoint="PJSIP/7"))
    svc.handle(m.MakeReady(employee_no="7"))
    svc.handle(m.QueueCall(call_id=cid, queue="power"))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="7"))
    svc.handle(m.AnswerCall(call_id=cid))
    call = app.repository.get(cid)

    def transferred_v1(state):
        state["target"] = state.pop("pii")["target"]

    _store_as_v1(app, Call.Transferred(
        originator_id=cid, originator_version=call.version + 1, timestamp=T, kind="blind",
        target_type="external", target="", pii={"target": "057188886666"},
        from_leg_id=call.leg_id, from_agent_id=call.agent_id, occurred_at=T, command_id=None,
        actor=None), transferred_v1)
    last = list(app.events.get(cid))[-1]
    assert (last.schema_version, last.target, last.pii) == (2, "", {"target": "057188886666"})
    assert app.repository.get(cid).transfers == 1
    # in the outside conversation now; every stored v1 external transfer is
    # followed by the call's end, which it replays to as before
    assert app.repository.get(cid).state.value == "outside"
    svc.handle(m.EndCall(call_id=cid, hung_up_by="caller", cause="transferred out"))
    replayed = app.repository.get(cid)
    assert (replayed.state.value, replayed.abandon_stage) == ("ended", None)
    # Readers see the numbers as they always did.
    fresh(lianxin)
    assert get_call(lianxin, cid)["dialed_number"] == "13800002222"
    fields = {e["event_type"]: e["fields"] for e in call_events(lianxin, cid)}
    assert fields["Offered"]["dialed_number"] == "13800002222"
    assert fields["Transferred"]["target"] == "057188886666"
    assert get_call(lianxin, cid)["state"] == "ended"


def test_new_outbound_offers_store_the_number_in_pii_and_its_pseudonym(lianxin):
    from domain.base import pseudonymise

    app, svc = lianxin.app, lianxin.commands
    cid = svc.handle(m.OfferCall(external_id="out-2", dialed_number="13800002222",
                                 direction="outbound", occurred_at=T)).aggregate_id
    state = json.loads(app.recorder.select_events(cid)[0].state)
    assert state["class_version"] == 2 and state["dialed_number"] == ""
    assert state["pii"] == {"dialed_number": "13800002222"}
    assert state["dialed_hash"] == pseudonymise("13800002222", svc.bus.ctx.pseudonym_key)
    # The same customer calling in has the same pseudonym.
    inbound = svc.handle(m.OfferCall(external_id="in-2", dialed_number="95598",
                                     caller_number="13800002222", occurred_at=T)).aggregate_id
    assert app.repository.get(inbound).caller_hash == state["dialed_hash"]


def _store_as_v1_queued(app, call_id, queue, actor):
    """A Queued exactly as v1 stored it: no ``reason``, ``from_queue`` nor
    ``class_version``."""
    call = app.repository.get(call_id)
    event = Call.Queued(originator_id=call_id, originator_version=call.version + 1,
                        timestamp=T, queue=queue, priority=0, required_skills={},
                        at_front=False, occurred_at=T, command_id=None, actor=actor,
                        reason=None, from_queue=None)
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    del state["reason"], state["from_queue"]
    app.recorder.insert_events([StoredEvent(originator_id=stored.originator_id,
                                            originator_version=stored.originator_version,
                                            topic=stored.topic,
                                            state=json.dumps(state).encode())])


def test_a_stored_v1_overflow_is_upcast_with_its_reason_from_the_actor(lianxin):
    app, svc = lianxin.app, lianxin.commands
    cid = svc.handle(m.OfferCall(external_id="up-q1", dialed_number="95598",
                                 occurred_at=T)).aggregate_id
    _store_as_v1_queued(app, cid, "repair", None)
    _store_as_v1_queued(app, cid, "general", "acd-overflow:repair")
    _store_as_v1_queued(app, cid, "power", "agent-7")
    queued = [e for e in app.events.get(cid) if type(e).__name__ == "Queued"]
    assert [(e.queue, e.reason, e.from_queue) for e in queued] == [
        ("repair", None, None), ("general", "overflow", "repair"), ("power", None, None)]
    assert all(e.schema_version == 2 for e in queued)
    assert app.repository.get(cid).queue == "power"


def test_new_queued_events_carry_their_reason_as_v2(lianxin):
    app, svc = lianxin.app, lianxin.commands
    cid = svc.handle(m.OfferCall(external_id="up-q2", dialed_number="95598",
                                 occurred_at=T)).aggregate_id
    svc.handle(m.QueueCall(call_id=cid, queue="repair"))
    svc.handle(m.QueueCall(call_id=cid, queue="general", reason="overflow", from_queue="repair"))
    states = [json.loads(s.state) for s in app.recorder.select_events(cid)][-2:]
    assert [(s["class_version"], s["reason"], s["from_queue"]) for s in states] == [
        (2, None, None), (2, "overflow", "repair")]
