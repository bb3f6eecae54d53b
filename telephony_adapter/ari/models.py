"""Tolerant typed models of ARI resources and events.

Every field mirrors a property of the Swagger model of the same name in Asterisk's
``rest-api/api-docs`` (checked by tests/telephony/test_ari_models.py). Parsing is
deliberately forgiving: unknown fields are ignored (Asterisk adds fields between
versions), every field has a default (Asterisk omits optional ones, and a partial
event is still worth handling), and an event type we do not model becomes a
``GenericEvent`` instead of an error. The original dict stays available as ``.raw``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError


class AriModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False, populate_by_name=True)

    # Name of the Swagger model this class mirrors; None for our own synthetic types.
    ari_model: ClassVar[Optional[str]] = ""

    @classmethod
    def spec_name(cls) -> Optional[str]:
        # Only a class's own declaration counts: subclasses of an abstract helper
        # (ChannelEvent) are real Swagger models again.
        own = cls.__dict__.get("ari_model", "")
        return cls.__name__ if own == "" else own


def parse_ari_time(value: str | None) -> datetime | None:
    """Asterisk writes ``2026-11-22T13:28:33.493+0000``."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- resources -------------------------------------------------------------------------

class CallerID(AriModel):
    name: str = ""
    number: str = ""


class DialplanCEP(AriModel):
    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


class Channel(AriModel):
    id: str = ""
    name: str = ""
    state: str = ""
    protocol_id: str = ""
    caller: CallerID = Field(default_factory=CallerID)
    connected: CallerID = Field(default_factory=CallerID)
    accountcode: str = ""
    dialplan: DialplanCEP = Field(default_factory=DialplanCEP)
    creationtime: str = ""
    language: str = ""
    channelvars: Optional[dict[str, Any]] = None
    caller_rdnis: Optional[str] = None
    tenantid: Optional[str] = None

    @property
    def technology(self) -> str:
        """``PJSIP`` for ``PJSIP/1001-00000009``; ``Local``, ``Snoop``..."""
        return self.name.split("/", 1)[0] if "/" in self.name else ""

    @property
    def endpoint(self) -> str:
        """``PJSIP/1001`` for ``PJSIP/1001-00000009`` (the device an agent logs in with)."""
        if "/" not in self.name:
            return ""
        base = self.name.split(";", 1)[0]
        return base.rsplit("-", 1)[0] if "-" in base.split("/", 1)[1] else base


class Bridge(AriModel):
    id: str = ""
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: list[str] = Field(default_factory=list)
    video_mode: Optional[str] = None
    video_source_id: Optional[str] = None
    creationtime: str = ""
    bridgevars: Optional[dict[str, Any]] = None


class Playback(AriModel):
    id: str = ""
    media_uri: str = ""
    next_media_uri: Optional[str] = None
    target_uri: str = ""
    language: Optional[str] = None
    state: str = ""


class LiveRecording(AriModel):
    name: str = ""
    format: str = ""
    target_uri: str = ""
    state: str = ""
    duration: Optional[int] = None
    talking_duration: Optional[int] = None
    silence_duration: Optional[int] = None
    cause: Optional[str] = None


class StoredRecording(AriModel):
    name: str = ""
    format: str = ""


class DeviceState(AriModel):
    name: str = ""
    state: str = ""


class RequiredDestination(AriModel):
    protocol_id: Optional[str] = None
    destination: Optional[str] = None


class ReferTo(AriModel):
    requested_destination: RequiredDestination = Field(default_factory=RequiredDestination)
    destination_channel: Optional[Channel] = None
    connected_channel: Optional[Channel] = None
    bridge: Optional[Bridge] = None


class ReferredBy(AriModel):
    source_channel: Channel = Field(default_factory=Channel)
    connected_channel: Optional[Channel] = None
    bridge: Optional[Bridge] = None


# --- events ----------------------------------------------------------------------------

class Event(AriModel):
    """Base of every WebSocket message (Swagger ``Message`` + ``Event``)."""

    type: str = ""
    asterisk_id: Optional[str] = None
    application: str = ""
    timestamp: str = ""

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The message exactly as received (for audit, replay and fields we do not model)."""
        return self._raw

    @property
    def occurred_at(self) -> datetime | None:
        """Asterisk's own time for the event (source time, not arrival time)."""
        return parse_ari_time(self.timestamp)


class GenericEvent(Event):
    """An event type this module does not model (or one that failed to validate)."""

    ari_model: ClassVar[Optional[str]] = None
    parse_error: Optional[str] = None


class Reconnected(Event):
    """Synthetic marker from AriClient.events(): the WebSocket dropped and is back.

    Events that happened while disconnected are lost for good; the application should
    reconcile its view with ``GET /channels`` and ``GET /bridges``.
    """

    ari_model: ClassVar[Optional[str]] = None
    type: str = "Reconnected"
    attempts: int = 0
    disconnected_for: float = 0.0
    reason: str = ""
    # GET /channels and GET /bridges taken after the new socket opened (None if that failed):
    # every event after the marker is newer than this snapshot.
    channels: Optional[list[Channel]] = None
    bridges: Optional[list[Bridge]] = None

    @property
    def occurred_at(self) -> datetime | None:
        return parse_ari_time(self.timestamp) or datetime.now(timezone.utc)


class ChannelEvent(Event):
    ari_model: ClassVar[Optional[str]] = None
    channel: Channel = Field(default_factory=Channel)


class StasisStart(ChannelEvent):
    args: list[str] = Field(default_factory=list)
    replace_channel: Optional[Channel] = None


class StasisEnd(ChannelEvent):
    pass


class ChannelCreated(ChannelEvent):
    pass


class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""
    tech_cause: Optional[int] = None


class ChannelStateChange(ChannelEvent):
    pass


class ChannelDtmfReceived(ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


class ChannelHangupRequest(ChannelEvent):
    # A remote BYE arrives without cause; ARI DELETE gives soft=True, cause 32 then 16.
    cause: Optional[int] = None
    tech_cause: Optional[int] = None
    soft: Optional[bool] = None


class ChannelDialplan(ChannelEvent):
    dialplan_app: str = ""
    dialplan_app_data: str = ""


class ChannelCallerId(ChannelEvent):
    caller_presentation: int = 0
    caller_presentation_txt: str = ""


class ChannelConnectedLine(ChannelEvent):
    pass


class ChannelVarset(Event):
    variable: str = ""
    value: str = ""
    channel: Optional[Channel] = None  # global variables come without a channel


class ChannelHold(ChannelEvent):
    musicclass: Optional[str] = None


class ChannelUnhold(ChannelEvent):
    pass


class ChannelTalkingStarted(ChannelEvent):
    pass


class ChannelTalkingFinished(ChannelEvent):
    duration: int = 0


class ChannelToneDetected(ChannelEvent):
    pass


class ChannelUserevent(Event):
    eventname: str = ""
    channel: Optional[Channel] = None
    bridge: Optional[Bridge] = None
    userevent: dict[str, Any] = Field(default_factory=dict)


class ChannelEnteredBridge(Event):
    bridge: Bridge = Field(default_factory=Bridge)
    channel: Optional[Channel] = None


class ChannelLeftBridge(Event):
    bridge: Bridge = Field(default_factory=Bridge)
    channel: Channel = Field(default_factory=Channel)


class ChannelTransfer(Event):
    state: Optional[str] = None
    refer_to: ReferTo = Field(default_factory=ReferTo)
    referred_by: ReferredBy = Field(default_factory=ReferredBy)


class Dial(Event):
    caller: Optional[Channel] = None
    peer: Channel = Field(default_factory=Channel)
    forward: Optional[str] = None
    forwarded: Optional[Channel] = None
    dialstring: Optional[str] = None
    dialstatus: str = ""


class BridgeCreated(Event):
    bridge: Bridge = Field(default_factory=Bridge)


class BridgeDestroyed(Event):
    bridge: Bridge = Field(default_factory=Bridge)


class BridgeMerged(Event):
    bridge: Bridge = Field(default_factory=Bridge)
    bridge_from: Bridge = Field(default_factory=Bridge)


class BridgeBlindTransfer(Event):
    channel: Channel = Field(default_factory=Channel)
    replace_channel: Optional[Channel] = None
    transferee: Optional[Channel] = None
    exten: str = ""
    context: str = ""
    result: str = ""
    is_external: bool = False
    bridge: Optional[Bridge] = None


class BridgeAttendedTransfer(Event):
    transferer_first_leg: Channel = Field(default_factory=Channel)
    transferer_second_leg: Channel = Field(default_factory=Channel)
    replace_channel: Optional[Channel] = None
    transferee: Optional[Channel] = None
    transfer_target: Optional[Channel] = None
    result: str = ""
    is_external: bool = False
    transferer_first_leg_bridge: Optional[Bridge] = None
    transferer_second_leg_bridge: Optional[Bridge] = None
    destination_type: str = ""
    destination_bridge: Optional[str] = None
    destination_application: Optional[str] = None
    destination_link_first_leg: Optional[Channel] = None
    destination_link_second_leg: Optional[Channel] = None
    destination_threeway_channel: Optional[Channel] = None
    destination_threeway_bridge: Optional[Bridge] = None


class PlaybackStarted(Event):
    playback: Playback = Field(default_factory=Playback)


class PlaybackContinuing(Event):
    playback: Playback = Field(default_factory=Playback)


class PlaybackFinished(Event):
    playback: Playback = Field(default_factory=Playback)


class RecordingStarted(Event):
    recording: LiveRecording = Field(default_factory=LiveRecording)


class RecordingFinished(Event):
    recording: LiveRecording = Field(default_factory=LiveRecording)


class RecordingFailed(Event):
    recording: LiveRecording = Field(default_factory=LiveRecording)


class DeviceStateChanged(Event):
    device_state: DeviceState = Field(default_factory=DeviceState)


class ApplicationReplaced(Event):
    pass


class ApplicationRegistered(Event):
    pass


class ApplicationUnregistered(Event):
    pass


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in [
        StasisStart, StasisEnd, ChannelCreated, ChannelDestroyed, ChannelStateChange,
        ChannelDtmfReceived, ChannelHangupRequest, ChannelDialplan, ChannelCallerId,
        ChannelConnectedLine, ChannelVarset, ChannelHold, ChannelUnhold, ChannelTalkingStarted,
        ChannelTalkingFinished, ChannelToneDetected, ChannelUserevent, ChannelEnteredBridge,
        ChannelLeftBridge, ChannelTransfer, Dial, BridgeCreated, BridgeDestroyed, BridgeMerged,
        BridgeBlindTransfer, BridgeAttendedTransfer, PlaybackStarted, PlaybackContinuing,
        PlaybackFinished, RecordingStarted, RecordingFinished, RecordingFailed,
        DeviceStateChanged, ApplicationReplaced, ApplicationRegistered, ApplicationUnregistered,
    ]
}

RESOURCE_TYPES: list[type[AriModel]] = [
    CallerID, DialplanCEP, Channel, Bridge, Playback, LiveRecording, StoredRecording,
    DeviceState, RequiredDestination, ReferTo, ReferredBy,
]


def parse_event(message: dict[str, Any]) -> Event:
    """Typed view of one WebSocket message; never raises on odd input."""
    cls = EVENT_TYPES.get(str(message.get("type", "")), GenericEvent)
    try:
        event = cls.model_validate(message)
    except ValidationError as exc:
        event = GenericEvent.model_validate(
            {k: message[k] for k in ("type", "asterisk_id", "application", "timestamp")
             if isinstance(message.get(k), str)})
        event.parse_error = str(exc)
    event._raw = message
    return event


def parse_channel(data: dict[str, Any]) -> Channel:
    return Channel.model_validate(data)


def parse_bridge(data: dict[str, Any]) -> Bridge:
    return Bridge.model_validate(data)
