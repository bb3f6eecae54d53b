"""What every Lianxin aggregate and event shares.

Every event carries three things besides its payload:

* ``occurred_at``: when it happened at the source (Asterisk's timestamp, the
  client's clock). KPIs and timelines use this, never the record time.
* ``timestamp`` (from the library): when it was recorded in the store.
* ``command_id``: the idempotency key or external id that caused it. An
  aggregate remembers the command ids it has applied, so a retried command or
  a replayed ARI event is recognised and produces no second event.

The schema version is the library's ``class_version`` (1 unless an event class
says otherwise); old versions are upcast on read by ``upcast_vN_vN+1``.
Customer personal data lives only in fields named ``pii`` so that it can later
be encrypted per customer (erasure by destroying the key) without touching
the operational fields the warehouse reads.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from datetime import datetime
from typing import Any, Iterable
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidValue

# How many applied command ids an aggregate remembers. Calls see a few dozen
# commands in their life; agents live for years, so their memory is bounded.
COMMAND_MEMORY = 512

LIANXIN_NS = uuid5(NAMESPACE_URL, "https://lianxin.dev/ids")


def stable_id(kind: str, key: str) -> UUID:
    """A deterministic aggregate id, so that retried creations collide."""
    return uuid5(LIANXIN_NS, f"{kind}:{key}")


def require_aware(when: datetime, field: str = "occurred_at") -> datetime:
    if not isinstance(when, datetime):
        raise InvalidValue(f"{field} must be a datetime", field=field)
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidValue(f"{field} must carry a timezone offset", field=field)
    return when


# Longest text a domain field takes (a complaint's summary is the longest
# real one): what is accepted is stored, copied into read models and kept.
MAX_TEXT = 10_000


def require_text(value: Any, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise InvalidValue(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_TEXT:
        raise InvalidValue(f"{field} is {len(value):,} characters long; at most "
                           f"{MAX_TEXT:,} are accepted", field=field)
    return value


def pseudonymise(value: str, salt: str) -> str:
    """Keyed hash of an identifier (a phone number) for counting repeats
    without storing the identifier itself in an operational field."""
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


class LianxinAggregate(Aggregate):
    """Base aggregate: remembers applied command ids (idempotency)."""

    class Event(Aggregate.Event):
        @property
        def schema_version(self) -> int:
            return getattr(type(self), "class_version", 1)

    def _remember(self, command_id: str | None) -> None:
        if not command_id:
            return
        memory = self.__dict__.setdefault("_applied_commands", OrderedDict())
        memory[command_id] = None
        while len(memory) > COMMAND_MEMORY:
            memory.popitem(last=False)

    def has_applied(self, command_id: str | None) -> bool:
        if not command_id:
            return False
        return command_id in self.__dict__.get("_applied_commands", ())

    @property
    def applied_commands(self) -> Iterable[str]:
        return tuple(self.__dict__.get("_applied_commands", ()))
