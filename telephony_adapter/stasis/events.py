"""ARI events as the Stasis app reads them: plain dicts in Asterisk's own
shape, whatever the client parsed them into, plus the key that recognises a
duplicated or replayed event."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone
from typing import Any


def as_dict(event: Any) -> dict[str, Any]:
    """Typed models from the ARI client, or the raw JSON: the tracker only
    needs Asterisk's field names, so every form is brought back to them."""
    if isinstance(event, dict):
        return event
    for attr in ("raw", "_raw", "data"):
        raw = getattr(event, attr, None)
        if isinstance(raw, dict) and "type" in raw:
            return raw
    if hasattr(event, "model_dump"):
        return event.model_dump(by_alias=True)
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return dataclasses.asdict(event)
    return dict(vars(event))


def timestamp(event: dict[str, Any]) -> datetime:
    ts = event.get("timestamp")
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    if isinstance(ts, str) and ts:
        try:
            return datetime.fromisoformat(ts)
        except ValueError:
            pass
    return datetime.now(timezone.utc)


def channel_id(event: dict[str, Any], key: str = "channel") -> str:
    ch = event.get(key) or {}
    return str(ch.get("id", "")) if isinstance(ch, dict) else ""


def event_key(event: dict[str, Any]) -> str:
    """Identity of an ARI event: Asterisk's duplicates (bridge recordings with
    subscribeAll) have identical bodies, and so has an event replayed after a
    reconnect. Events that merely share a type, channel and millisecond
    (two ChannelVarset, two hang-up requests) differ in their bodies."""
    body = json.dumps(event, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def command_id(event: dict[str, Any], what: str, subject: str = "") -> str:
    """Deterministic idempotency key of the command an ARI event causes: the
    same event seen twice (duplicate, replay after reconnect, a restarted
    adapter re-reading) gives the same key, so the aggregate refuses it."""
    return f"ari:{what}:{subject or channel_id(event)}:{event.get('timestamp', '')}"
