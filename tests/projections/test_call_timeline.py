"""Call timeline (every event with offsets, no personal data) and call state."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands import messages as m
from domain.errors import NotFound
from queries.calls import call_events, get_call, live_calls
from tests.projections.scenario import at, full_call, offer, staff

CALLER = "13912345678"


def test_every_event_in_order_with_offsets_and_no_pii(lianxin):
    lx, svc = lianxin, lianxin.commands
    staff(svc, "1001")
    call = offer(svc, "tl-1", 100, caller=CALLER)
    svc.handle(m.EnterIvr(call_id=call, menu="main", occurred_at=at(101)))
    svc.handle(m.ChooseMenuOption(call_id=call, menu="main", digits="2", target="power",
                                  occurred_at=at(104.5)))
    svc.handle(m.QueueCall(call_id=call, queue="power", priority=1, occurred_at=at(105),
                           actor="ivr"))
    full_call(svc, call, "1001", 110)
    svc.handle(m.AnswerSurvey(call_id=call, score=5, occurred_at=at(190)))
    wo = svc.handle(m.OpenWorkOrder(type="fault_repair", summary=f"no power, call {CALLER}",
                                    call_id=call, customer={"phone": CALLER},
                                    occurred_at=at(200), command_id="wo-1")).aggregate_id
    lx.read_models().run_once()
    events = call_events(lx, call)
    assert [e["event_type"] for e in events] == [
        "Offered", "IvrEntered", "MenuChoiceMade", "Queued", "AgentAlerted", "Answered",
        "Held", "Resumed", "Ended", "WrapUpCompleted", "SurveyAnswered", "WorkOrderLinked"]
    assert [e["offset_s"] for e in events] == [0, 1, 4.5, 5, 10, 13, 30, 40, 70, 85, 90, 100]
    assert [e["version"] for e in events] == list(range(1, 13))
    assert events[3]["actor"] == "ivr"
    assert events[3]["fields"]["queue"] == "power" and events[3]["fields"]["priority"] == 1
    assert events[2]["fields"]["digits"] == "2"
    assert events[-1]["fields"]["work_order_id"] == str(wo)
    assert all("pii" not in e["fields"] for e in events)
    # Nowhere in the read-model file: not in the timeline, not in any table.
    lx.read_models().close()
    lx.parts.pop("read_models")
    raw = b"".join(p.read_bytes() for p in Path(lx.settings.read_models_path).parent.glob(
        "read_models.sqlite*"))
    assert CALLER.encode() not in raw


def test_call_state_follows_the_call(lianxin):
    lx, svc = lianxin, lianxin.commands
    staff(svc, "1001")
    call = offer(svc, "st-1", 0)
    svc.handle(m.QueueCall(call_id=call, queue="power", occurred_at=at(2)))
    svc.handle(m.AlertAgent(call_id=call, employee_no="1001", occurred_at=at(4)))
    lx.read_models().run_once()
    row = get_call(lx, call)
    assert (row["state"], row["queue"], row["employee_no"], row["live"]) == (
        "ringing", "power", "1001", True)
    assert [c["call_id"] for c in live_calls(lx)] == [str(call)]
    svc.handle(m.AnswerCall(call_id=call, occurred_at=at(6)))
    svc.handle(m.HoldCall(call_id=call, occurred_at=at(10)))
    lx.read_models().run_once()
    assert get_call(lx, call)["state"] == "held"
    svc.handle(m.ResumeCall(call_id=call, occurred_at=at(12)))
    svc.handle(m.EndCall(call_id=call, hung_up_by="caller", occurred_at=at(30)))
    svc.handle(m.CompleteWrapUp(call_id=call, employee_no="1001", dispositions=["a", "b"],
                                occurred_at=at(40)))
    lx.read_models().run_once()
    row = get_call(lx, call)
    assert (row["state"], row["hung_up_by"], row["dispositions"], row["live"]) == (
        "ended", "caller", ["a", "b"], False)
    assert row["answered_at"] == "2026-11-23T02:00:06.000000+00:00"
    assert row["version"] == lx.app.repository.get(call).version
    assert live_calls(lx) == []


def test_abandon_stage_and_unknown_call(lianxin):
    lx, svc = lianxin, lianxin.commands
    call = offer(svc, "ab-1", 0)
    svc.handle(m.QueueCall(call_id=call, queue="power", occurred_at=at(1)))
    svc.handle(m.EndCall(call_id=call, hung_up_by="caller", occurred_at=at(50)))
    lx.read_models().run_once()
    row = get_call(lx, call)
    assert (row["state"], row["abandon_stage"]) == ("abandoned", "queue")
    with pytest.raises(NotFound):
        get_call(lx, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFound):
        call_events(lx, "00000000-0000-0000-0000-000000000000")
