"""Asterisk REST Interface: HTTP + WebSocket client and tolerant typed models."""

from telephony_adapter.ari.client import AriClient
from telephony_adapter.ari.errors import (
    AriAuthError,
    AriConnectionError,
    AriError,
    AriHttpError,
)
from telephony_adapter.ari.models import Reconnected, parse_event

__all__ = ["AriClient", "AriError", "AriHttpError", "AriAuthError", "AriConnectionError",
           "Reconnected", "parse_event"]
