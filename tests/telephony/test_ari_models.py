"""The typed ARI models: faithful to Asterisk's Swagger spec, tolerant of what Asterisk sends."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from telephony_adapter.ari import spec
from telephony_adapter.ari.models import (
    EVENT_TYPES,
    RESOURCE_TYPES,
    BridgeBlindTransfer,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelTransfer,
    ChannelVarset,
    GenericEvent,
    StasisStart,
    parse_event,
)
from tests.telephony.conftest import TRACES

SPEC_DIR = Path(os.environ.get("LIANXIN_ARI_SPEC_DIR",
                               Path(__file__).resolve().parents[3] / "shared" / "asterisk-ari-spec"))
TRACE_FILES = sorted(p for p in TRACES.glob("*.jsonl") if not p.name.endswith(".rest.jsonl"))


def trace_messages(path: Path) -> list[dict]:
    return [json.loads(line)["message"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def swagger() -> spec.SwaggerModels:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"Asterisk ARI spec not present at {SPEC_DIR}")
    return spec.load_models(SPEC_DIR)


def test_the_twelve_captured_traces_are_in_the_fixtures():
    assert len(TRACE_FILES) == 12
    assert (TRACES / "README.md").is_file()


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()) + RESOURCE_TYPES,
                         ids=lambda c: c.__name__)
def test_every_field_a_model_reads_exists_in_the_spec_with_a_compatible_type(cls, swagger):
    assert spec.model_problems(cls, swagger) == []


def test_the_spec_check_catches_a_field_the_spec_does_not_have(swagger):
    class StasisStart2(StasisStart):
        ari_model = "StasisStart"
        started_by: str = ""

    class BadDestroyed(ChannelDestroyed):
        ari_model = "ChannelDestroyed"
        cause: str = ""  # the spec says int

    assert any("started_by" in p for p in spec.model_problems(StasisStart2, swagger))
    assert any("cause" in p for p in spec.model_problems(BadDestroyed, swagger))


@pytest.mark.parametrize("path", TRACE_FILES, ids=lambda p: p.stem)
def test_every_event_of_every_trace_parses_into_its_typed_model(path):
    messages = trace_messages(path)
    assert messages
    for message in messages:
        event = parse_event(message)
        assert not isinstance(event, GenericEvent), (message["type"], getattr(event, "parse_error", ""))
        assert type(event).__name__ == message["type"]
        assert event.raw is message
        assert event.occurred_at is not None and event.occurred_at.tzinfo is not None


@pytest.mark.parametrize("path", TRACE_FILES, ids=lambda p: p.stem)
def test_the_captured_messages_themselves_conform_to_the_spec(path, swagger):
    # Guards the checker used on the simulator's output: real Asterisk passes it.
    for message in trace_messages(path):
        assert spec.json_problems(message, message["type"], swagger) == []


def test_fields_are_read_from_real_events():
    msgs = {m["type"]: m for m in trace_messages(TRACES / "sip_agent_blind_transfer_refer.jsonl")}
    blind = parse_event(msgs["BridgeBlindTransfer"])
    assert isinstance(blind, BridgeBlindTransfer)
    assert blind.channel.id == "agent-1001-4da18189"
    assert blind.replace_channel is not None and blind.replace_channel.name.startswith("Local/2000@internal")
    assert blind.transferee is not None and blind.transferee.caller.number == "13900000006"
    assert blind.bridge is not None and blind.bridge.technology == "native_rtp"
    assert (blind.exten, blind.result, blind.is_external) == ("2000", "Success", True)

    starts = [parse_event(m) for m in trace_messages(TRACES / "sip_agent_blind_transfer_refer.jsonl")
              if m["type"] == "StasisStart"]
    assert [s.args for s in starts] == [[], ["agent", "1001"], []]
    assert starts[1].channel.endpoint == "PJSIP/1001"
    assert starts[2].replace_channel.id == "agent-1001-4da18189"
    assert starts[0].occurred_at == datetime(2026, 11, 22, 13, 29, 57, 193000, tzinfo=timezone.utc)

    transfer = parse_event(next(m for m in trace_messages(TRACES / "sip_agent_transfer_ari_only.jsonl")
                                if m["type"] == "ChannelTransfer"))
    assert isinstance(transfer, ChannelTransfer)
    assert transfer.refer_to.requested_destination.destination == "2000"
    assert transfer.referred_by.source_channel.id == "agent-1001-e3d0c6bc"


def test_a_hangup_request_without_cause_is_kept_as_unknown_not_zero():
    # A carrier BYE gives ChannelHangupRequest with no cause at all (sip_abandon_holding_moh).
    bye = next(m for m in trace_messages(TRACES / "sip_abandon_holding_moh.jsonl")
               if m["type"] == "ChannelHangupRequest")
    event = parse_event(bye)
    assert isinstance(event, ChannelHangupRequest)
    assert event.cause is None and event.soft is None


def test_unknown_fields_are_ignored_and_missing_optional_fields_are_fine():
    event = parse_event({"type": "ChannelDestroyed", "timestamp": "2026-11-22T13:28:33.493+0000",
                         "cause": 16, "cause_txt": "Normal Clearing", "brand_new_field": [1, 2],
                         "channel": {"id": "1.1", "name": "PJSIP/1001-00000001",
                                     "future": {"x": 1}},
                         "application": "lianxin"})
    assert isinstance(event, ChannelDestroyed)
    assert event.cause == 16 and event.tech_cause is None
    assert event.channel.id == "1.1" and event.channel.caller.number == ""
    assert event.raw["brand_new_field"] == [1, 2]


def test_an_unknown_event_type_becomes_a_generic_event_with_its_raw_body():
    event = parse_event({"type": "ChannelMagicHappened", "timestamp": "2026-11-22T13:28:33.493+0000",
                         "application": "lianxin", "magic": True})
    assert isinstance(event, GenericEvent)
    assert event.type == "ChannelMagicHappened" and event.raw["magic"] is True


def test_a_malformed_known_event_degrades_to_generic_instead_of_raising():
    event = parse_event({"type": "ChannelDtmfReceived", "digit": "1", "duration_ms": "long",
                         "application": "lianxin"})
    assert isinstance(event, GenericEvent)
    assert event.type == "ChannelDtmfReceived" and "duration_ms" in (event.parse_error or "")


def test_a_global_varset_has_no_channel():
    event = parse_event({"type": "ChannelVarset", "variable": "GLOBAL_X", "value": "1",
                         "application": "lianxin"})
    assert isinstance(event, ChannelVarset) and event.channel is None
