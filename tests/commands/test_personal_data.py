"""The proof of "personal data only in ``pii``": a realistic day's events
(agents, an inbound call with a conference and an external transfer, an
outbound call, a fault order at a customer's address and a duplicate report
of it) are scanned as stored, and no phone number, name or address may
appear in a payload outside its ``pii`` object.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from commands import messages as m

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)

# label -> the value as entered (searched case-insensitively)
PERSONAL = {
    "agent name": "Zhao Min",
    "second agent name": "Qian Sun",
    "caller number": "13912345678",
    "conference party number": "13600001111",
    "external transfer number": "057188886666",
    "outbound dialed number": "13800002222",
    "customer name": "Wang Fang",
    "customer phone": "13900000000",
    "second customer name": "Li Lei",
    "second customer phone": "13700000000",
    "address": "Pine Rd",  # entered as "8 Pine Rd" and "8  pine RD"
}

def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def a_day(lx) -> None:
    svc = lx.commands
    svc.handle(m.RegisterAgent(employee_no="1001", name="Zhao Min", team="A",
                               skills={"power": 5}, occurred_at=at(0)))
    svc.handle(m.RegisterAgent(employee_no="1002", name="Qian Sun", team="A",
                               skills={"power": 3}, occurred_at=at(0)))
    for no in ("1001", "1002"):
        svc.handle(m.LogIn(employee_no=no, endpoint=f"PJSIP/{no}", occurred_at=at(1)))
        svc.handle(m.MakeReady(employee_no=no, occurred_at=at(2)))

    # Inbound: IVR, queue, answer, a three-way call, then out to another number.
    cid = svc.handle(m.OfferCall(external_id="in-1", dialed_number="95598",
                                 caller_number="13912345678", occurred_at=at(10))).aggregate_id
    svc.handle(m.EnterIvr(call_id=cid, menu="main", occurred_at=at(11)))
    svc.handle(m.ChooseMenuOption(call_id=cid, menu="main", digits="1", target="power",
                                  occurred_at=at(14)))
    svc.handle(m.QueueCall(call_id=cid, queue="power", occurred_at=at(15)))
    svc.handle(m.AlertAgent(call_id=cid, employee_no="1001", occurred_at=at(16)))
    svc.handle(m.AnswerCall(call_id=cid, occurred_at=at(20)))
    svc.handle(m.AddConferenceParty(call_id=cid, party="13600001111", occurred_at=at(40)))
    svc.handle(m.AddConferenceParty(call_id=cid, party="1002", occurred_at=at(45)))
    svc.handle(m.RemoveConferenceParty(call_id=cid, party="13600001111", occurred_at=at(60)))
    svc.handle(m.RemoveConferenceParty(call_id=cid, party="1002", occurred_at=at(61)))
    svc.handle(m.TransferCall(call_id=cid, kind="blind", target_type="external",
                              target="057188886666", occurred_at=at(90)))
    svc.handle(m.EndCall(call_id=cid, hung_up_by="transfer", cause="transferred",
                         occurred_at=at(91)))
    svc.handle(m.CompleteWrapUp(call_id=cid, employee_no="1001", dispositions=["fault"],
                                occurred_at=at(120)))

    # Outbound: the center calls a customer back.
    out = svc.handle(m.OfferCall(external_id="out-1", dialed_number="13800002222",
                                 direction="outbound", occurred_at=at(200))).aggregate_id
    svc.handle(m.EndCall(call_id=out, hung_up_by="agent", occurred_at=at(260)))

    # A fault at the customer's address, reported twice.
    wo = svc.handle(m.OpenWorkOrder(
        type="fault_repair", summary="no power at 8 Pine Rd since 7am", call_id=cid,
        customer={"name": "Wang Fang", "phone": "13900000000"},
        location={"feeder": "F12", "address": "8 Pine Rd"}, occurred_at=at(100),
        command_id="wo-1")).aggregate_id
    dup = svc.handle(m.OpenWorkOrder(
        type="fault_repair", summary="the street is dark",
        customer={"name": "Li Lei", "phone": "13700000000"},
        location={"address": "8  pine RD"}, occurred_at=at(300), command_id="wo-2"))
    assert dup.result.outcome == "merged" and dup.aggregate_id == wo
    svc.handle(m.DispatchWorkOrder(work_order_id=wo, department="repair-east",
                                   occurred_at=at(320)))
    svc.handle(m.AcceptWorkOrder(work_order_id=wo, department="repair-east",
                                 occurred_at=at(400)))
    svc.handle(m.NoteProgress(work_order_id=wo, note="crew met Wang Fang at 8 Pine Rd",
                              occurred_at=at(3000)))
    svc.handle(m.ResolveWorkOrder(work_order_id=wo, resolution="fuse replaced",
                                  note="called 13900000000 to confirm", occurred_at=at(5000)))


def scan(lx) -> tuple[set[tuple[str, str]], set[str]]:
    """(event type, label) of every personal value found in a stored payload
    outside its ``pii`` object; and the labels found inside some ``pii``."""
    outside: set[tuple[str, str]] = set()
    inside: set[str] = set()
    for n in lx.app.recorder.select_notifications(start=1, limit=1_000_000):
        state = json.loads(bytes(n.state))  # the stored bytes: plain JSON here
        pii = state.pop("pii", None)
        rest = json.dumps(state, ensure_ascii=False).lower()
        held = json.dumps(pii, ensure_ascii=False).lower()
        event_type = n.topic.partition(":")[2]
        for label, value in PERSONAL.items():
            needle = " ".join(value.lower().split())
            if needle in " ".join(rest.split()):
                outside.add((event_type, label))
            if needle in " ".join(held.split()):
                inside.add(label)
    return outside, inside


def test_no_personal_data_is_stored_outside_pii(lianxin):
    a_day(lianxin)
    outside, inside = scan(lianxin)
    assert outside == set()
    # The scan is meaningful: every value was stored, in ``pii``.
    assert inside == set(PERSONAL)
