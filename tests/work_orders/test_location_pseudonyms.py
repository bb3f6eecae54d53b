"""A customer's address is personal data: it is stored in ``pii`` only, and
duplicate fault reports are matched on its keyed pseudonym. Orders and fault
locations stored before that (v1, the address in clear operational fields)
still load, still show their address, and still catch the duplicates of
their fault while its merge window is open."""

from __future__ import annotations

import json
from datetime import timedelta

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from commands import messages as m
from domain.base import pseudonymise
from domain.work_order import (
    FaultLocation,
    WorkOrder,
    fault_location_id,
    location_refs,
    work_order_id_for,
)
from queries.work_orders import fresh, get_work_order
from tests.work_orders.conftest import events, local, open_order, order

T0 = local(2026, 11, 23, 9)


def _key(lx) -> str:
    return lx.commands.bus.ctx.pseudonym_key


def _store_as_v1(lx, event, to_v1) -> bytes:
    stored = lx.app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    to_v1(state)
    raw = json.dumps(state).encode()
    lx.app.recorder.insert_events([StoredEvent(
        originator_id=stored.originator_id, originator_version=stored.originator_version,
        topic=stored.topic, state=raw)])
    return raw


def _opened_v1(state: dict) -> None:
    state["location"] = {**state["location"], **state["pii"].pop("location", {})}
    del state["location_refs"]


def _legacy_order(lx, key: str, location: dict[str, str]) -> WorkOrder:
    """An open fault order and its FaultLocation as v1 stored them."""
    wo = WorkOrder.open(type="fault_repair", category="", channel="phone", summary="dark",
                        occurred_at=T0, location=location, key=key,
                        location_refs=location_refs(location, _key(lx)))
    (opened,) = wo.collect_events()
    raw = _store_as_v1(lx, opened, _opened_v1)
    assert b"Pine" in raw  # as v1 stored it
    clear = "address:" + " ".join(location["address"].lower().split())
    created = FaultLocation.Created(
        originator_id=fault_location_id(clear), originator_version=1, timestamp=T0,
        originator_topic=get_topic(FaultLocation), key=clear, work_order_id=wo.id,
        opened_at=T0, pii={}, occurred_at=T0, command_id=None, actor=None)

    def created_v1(state: dict) -> None:
        state["key"] = clear
        del state["pii"]

    _store_as_v1(lx, created, created_v1)
    return wo


def _stored_outside_pii(lx) -> str:
    """Every stored payload, without its ``pii`` object, lower-cased."""
    out = []
    for n in lx.app.recorder.select_notifications(start=1, limit=1_000_000):
        state = json.loads(n.state)
        state.pop("pii", None)
        out.append(json.dumps(state, ensure_ascii=False))
    return "\n".join(out).lower()


def test_a_new_address_is_stored_in_pii_and_matched_on_its_pseudonym(lx):
    first = open_order(lx, "fault_repair", T0, "a1",
                       location={"feeder": "F9", "address": "8 Pine Rd"}).aggregate_id
    ref = pseudonymise("address:8 pine rd", _key(lx))
    (opened,) = events(lx, first, "Opened")
    assert opened.schema_version == 2 and opened.location == {"feeder": "F9"}
    assert opened.pii["location"] == {"address": "8 Pine Rd"}
    assert opened.location_refs == {"address": ref}
    # The place is keyed, and its id derived, from the pseudonym only.
    spot = lx.app.repository.get(fault_location_id(f"address#{ref}"))
    assert spot.work_order_id == first and spot.key == f"address#{ref}"
    assert lx.app.repository.get(fault_location_id("feeder:f9")).work_order_id == first
    assert lx.app.recorder.select_events(fault_location_id("address:8 pine rd")) == []
    # A second report of the same address, however it is typed, merges.
    dup = open_order(lx, "fault_repair", T0 + timedelta(minutes=20), "a2",
                     location={"address": "8  PINE rd"}, summary="still dark")
    assert dup.result.outcome == "merged" and dup.aggregate_id == first
    (linked,) = events(lx, first, "CallerLinked")
    assert linked.location == {} and linked.pii["location"] == {"address": "8  PINE rd"}
    assert linked.location_refs == {"address": ref}
    assert "pine" not in _stored_outside_pii(lx)
    # Readers of the order see its address as before.
    fresh(lx)
    assert get_work_order(lx, first)["location"] == {"feeder": "F9", "address": "8 Pine Rd"}
    assert order(lx, first).location == {"feeder": "F9", "address": "8 Pine Rd"}


def test_a_v1_order_and_fault_location_load_and_still_catch_duplicates(lx):
    old = _legacy_order(lx, "legacy-1", {"address": "8 Pine Rd"})
    clear_id = fault_location_id("address:8 pine rd")
    # Both load; their addresses are now read from ``pii``.
    loaded = order(lx, old.id)
    assert loaded.location == {"address": "8 Pine Rd"} and loaded.location_refs == {}
    (opened,) = events(lx, old.id, "Opened")
    assert opened.location == {} and opened.pii["location"] == {"address": "8 Pine Rd"}
    spot = lx.app.repository.get(clear_id)
    assert spot.work_order_id == old.id and spot.key == "address#"
    (created,) = events(lx, clear_id, "Created")
    assert created.schema_version == 2 and created.pii == {"key": "address:8 pine rd"}
    fresh(lx)
    assert get_work_order(lx, old.id)["location"] == {"address": "8 Pine Rd"}

    # Within the window a report of the same address is merged into the old
    # order, found by its clear key, and nothing new is keyed by the address.
    dup = open_order(lx, "fault_repair", T0 + timedelta(minutes=10), "new-1",
                     location={"address": "8 pine RD"})
    assert dup.result.outcome == "merged" and dup.aggregate_id == old.id
    assert lx.app.repository.get(clear_id).version == 1  # never written again

    # Once that order is resolved, the next report opens an order whose
    # place is keyed by the pseudonym; later reports find that one first.
    lx.commands.handle(m.ResolveWorkOrder(work_order_id=old.id, resolution="fixed",
                                          occurred_at=T0 + timedelta(minutes=30)))
    second = open_order(lx, "fault_repair", T0 + timedelta(minutes=40), "new-2",
                        location={"address": "8 Pine Rd"}).aggregate_id
    assert second != old.id
    ref = pseudonymise("address:8 pine rd", _key(lx))
    assert lx.app.repository.get(fault_location_id(f"address#{ref}")).work_order_id == second
    assert lx.app.repository.get(clear_id).version == 1
    third = open_order(lx, "fault_repair", T0 + timedelta(minutes=50), "new-3",
                       location={"address": "8 Pine Rd"})
    assert third.result.outcome == "merged" and third.aggregate_id == second
    # Only the v1 bytes hold the address outside ``pii``.
    outside = _stored_outside_pii(lx)
    assert outside.count("pine") == 2  # the v1 Opened and the v1 Created


def test_a_v1_caller_link_moves_its_address_into_pii_and_can_be_split(lx):
    target = open_order(lx, "fault_repair", T0, "t1", location={"feeder": "F3"}).aggregate_id
    wo = order(lx, target)
    wo.link_caller("report:legacy", T0 + timedelta(minutes=5),
                   location={"feeder": "F3", "address": "3 Lake Rd"}, summary="flicker",
                   location_refs=location_refs({"address": "3 Lake Rd"}, _key(lx)))
    (linked,) = wo.collect_events()
    _store_as_v1(lx, linked, _opened_v1)
    loaded = order(lx, target)
    link = loaded.links["report:legacy"]
    assert link["location"] == {"feeder": "F3", "address": "3 Lake Rd"}
    (event,) = events(lx, target, "CallerLinked")
    assert event.schema_version == 2 and event.location == {"feeder": "F3"}
    assert event.pii["location"] == {"address": "3 Lake Rd"} and event.location_refs == {}
    from commands import work_order_messages as wm

    out = lx.commands.handle(wm.SplitWorkOrder(work_order_id=target, link_id="report:legacy",
                                               occurred_at=T0 + timedelta(minutes=30)))
    new = order(lx, out.aggregate_id)
    assert new.location == {"feeder": "F3", "address": "3 Lake Rd"}
    (opened,) = events(lx, new.id, "Opened")
    assert opened.location == {"feeder": "F3"}
    assert opened.location_refs == {"address": pseudonymise("address:3 lake rd", _key(lx))}
    assert new.id == work_order_id_for(f"split:{target}:report:legacy")


def test_the_api_takes_and_shows_an_address_as_before(lx):
    from tests.api.conftest import make_client, ok

    for client in make_client(lx):
        body = {"type": "fault_repair", "summary": "no power",
                "location": {"transformer": "T-7", "address": "12 Elm St"},
                "occurred_at": "2026-11-23T09:00:00+08:00"}
        first = ok(client.post("/work-orders", json=body, headers={"Idempotency-Key": "e1"}),
                   201)
        again = ok(client.post("/work-orders", json={
            **body, "location": {"address": "12 elm st"},
            "occurred_at": "2026-11-23T09:05:00+08:00"}, headers={"Idempotency-Key": "e2"}), 201)
        assert again["result"]["outcome"] == "merged"
        assert again["aggregate_id"] == first["aggregate_id"]
        view = ok(client.get(f"/work-orders/{first['aggregate_id']}",
                             params={"min_position": lx.app.max_position()}))
        assert view["location"] == {"transformer": "T-7", "address": "12 Elm St"}
    assert "elm" not in _stored_outside_pii(lx)
