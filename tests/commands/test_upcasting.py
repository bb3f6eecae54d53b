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
