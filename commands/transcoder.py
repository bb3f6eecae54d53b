"""The event payload encoder: the library's JSON, written faster.

Every stored payload goes through ``Transcoder.encode``. The library's
``JSONTranscoder`` hands each UUID and datetime to a Python callback from
inside ``json``'s encoder; for our events (two or three such values each)
that was ~17 µs of a command path that has ~50 µs per event to spend at 20k
events/s. Here the payload is first rewritten into plain JSON values (the
same ``{"_type_": ..., "_data_": ...}`` objects the library writes) and then
encoded by msgspec.

The bytes must be the library's bytes, not merely equivalent JSON: the audit
chain hashes them, and a payload written by one node must hash the same when
re-encoded by another. So the fast path only takes values whose encoding is
known to agree (exact ``str``/``int``/``float``/``bool``/``None``, ``dict``
with ``str`` keys, ``list``/``tuple`` and the registered transcodings); any
other value (an Enum, a set, a ``str`` subclass, an int beyond 64 bits, a
NaN...) sends the whole payload down the library's own path, which also
raises the library's error for an unregistered type. Decoding is unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import msgspec
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding, UUIDAsHex


class _Unusual(Exception):
    """A value the fast path does not vouch for."""


_NATIVE = (str, int, float, dict, list, tuple)
_MAX_INT = 2**63  # msgspec encodes ints as signed or unsigned 64-bit values


# The library's own transcodings whose output is a str computed from the
# value alone: applied inline, without a call through the Transcoding object.
_INLINE = {UUIDAsHex: lambda u: u.hex, DatetimeAsISO: datetime.isoformat}


class FastJSONTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        self._msgspec = msgspec.json.Encoder()
        self._inline: dict[type, tuple[str, Callable[[Any], str]]] = {}

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        fn = _INLINE.get(type(transcoding))
        if fn is None:
            self._inline.pop(transcoding.type, None)
        else:
            self._inline[transcoding.type] = (transcoding.name, fn)

    def encode(self, obj: Any) -> bytes:
        try:
            plain = self._plain(obj)
        except _Unusual:
            return super().encode(obj)
        return self._msgspec.encode(plain)

    def _plain(self, v: Any) -> Any:
        t = type(v)
        if t is dict:
            inline = self._inline
            out = {}
            for k, x in v.items():
                if type(k) is not str:
                    raise _Unusual  # json and msgspec stringify other keys differently
                tx = type(x)
                if tx is str or x is None or tx is bool:  # most of a payload
                    out[k] = x
                elif tx in inline:
                    name, fn = inline[tx]
                    out[k] = {"_type_": name, "_data_": fn(x)}
                else:
                    out[k] = self._plain(x)
            return out
        if t is str or t is bool or v is None:
            return v
        if t is int:
            if -_MAX_INT <= v < _MAX_INT:
                return v
            raise _Unusual
        if t is float:
            # Python writes 1e+16 where msgspec writes 1e16: only floats that
            # repr() writes without an exponent are taken (and no NaN/inf).
            if v == 0.0 or 1e-4 <= abs(v) < 1e16:
                return v
            raise _Unusual
        if t is list or t is tuple:
            return [self._plain(x) for x in v]
        if isinstance(v, _NATIVE):
            # a subclass of a JSON type (an IntEnum, a namedtuple...): json
            # writes it natively without asking any transcoding
            raise _Unusual
        transcoding = self.types.get(t)
        if transcoding is None:
            raise _Unusual
        return {"_type_": transcoding.name, "_data_": self._plain(transcoding.encode(v))}
