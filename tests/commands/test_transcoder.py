"""The fast payload encoder writes the library's bytes exactly (the audit
chain hashes them), and leaves anything it is unsure of to the library."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.transcoder import FastJSONTranscoder


def transcoders() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    plain, fast = JSONTranscoder(), FastJSONTranscoder()
    app = Application.__new__(Application)  # only for its list of transcodings
    app.register_transcodings(plain)
    app.register_transcodings(fast)
    return plain, fast


PLAIN, FAST = transcoders()

zones = st.sampled_from([timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(),
    st.uuids(), st.datetimes(timezones=zones), st.decimals(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_the_fast_encoder_writes_the_librarys_bytes(state: dict) -> None:
    try:
        expected = PLAIN.encode(state)
    except UnicodeEncodeError:  # a lone surrogate: neither can write it
        with pytest.raises(UnicodeEncodeError):
            FAST.encode(state)
        return
    assert FAST.encode(state) == expected
    assert FAST.decode(expected) == PLAIN.decode(expected)


def test_a_real_event_payload_takes_the_fast_path_and_matches() -> None:
    state = {"timestamp": datetime(2026, 3, 2, 8, 0, 1, 5, tzinfo=timezone.utc),
             "occurred_at": datetime(2026, 3, 2, 16, 0, tzinfo=timezone(timedelta(hours=8))),
             "agent_id": UUID(int=7), "skills": {"power": 5}, "pii": {"name": "王芳"},
             "duration_s": 120.0, "dispositions": ["power-outage"], "command_id": "c-1"}
    assert FAST._plain(state)["agent_id"] == {"_type_": "uuid_hex", "_data_": UUID(int=7).hex}
    assert FAST.encode(state) == PLAIN.encode(state)


class Colour(str, Enum):
    RED = "red"


@pytest.mark.parametrize("odd", [Colour.RED, 1e16, float("nan"), 2**64, {1: "x"}, Decimal("1.5")])
def test_values_the_fast_path_is_unsure_of_go_the_librarys_way(odd: object) -> None:
    state = {"v": odd}
    assert FAST.encode(state) == PLAIN.encode(state)


def test_an_unregistered_type_is_still_refused() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.encode({"v": {1, 2}})


def test_the_application_stores_with_the_fast_encoder(lianxin) -> None:  # noqa: ANN001
    """Configured by the settings on both stores; what it stored reads back."""
    from commands import messages as m

    assert isinstance(lianxin.app.mapper.transcoder, FastJSONTranscoder)
    out = lianxin.commands.handle(m.RegisterAgent(
        employee_no="7001", name="王芳", team="power", skills={"power": 5},
        command_id="reg-7001", occurred_at=datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)))
    (stored,) = lianxin.app.recorder.select_notifications(out.position, 1)
    assert stored.state == PLAIN.encode(PLAIN.decode(stored.state))
    assert lianxin.app.repository.get(out.aggregate_id).name == "王芳"


def test_a_transcoding_registered_over_the_librarys_own_is_used() -> None:
    """An installation that registers its own datetime form must get it, not
    the inlined library form."""
    from eventsourcing.persistence import Transcoding

    class DatetimeAsTimestamp(Transcoding):
        type = datetime
        name = "datetime_ts"

        def encode(self, obj: datetime) -> float:
            return obj.timestamp()

        def decode(self, data: float) -> datetime:
            return datetime.fromtimestamp(data, timezone.utc)

    plain, fast = transcoders()
    plain.register(DatetimeAsTimestamp())
    fast.register(DatetimeAsTimestamp())
    state = {"at": datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)}
    assert fast.encode(state) == plain.encode(state) == b'{"at":{"_type_":"datetime_ts","_data_":1772438400.0}}'


def test_a_registered_subclass_of_a_json_type_is_written_natively_as_the_library_does() -> None:
    """json never asks a transcoding about an IntEnum (an int subclass): it
    writes the int. The fast path must not apply the registered transcoding."""
    from enum import IntEnum

    from eventsourcing.persistence import Transcoding

    class Level(IntEnum):
        HIGH = 3

    class LevelAsName(Transcoding):
        type = Level
        name = "level"

        def encode(self, obj: Level) -> str:
            return obj.name

        def decode(self, data: str) -> Level:
            return Level[data]

    plain, fast = transcoders()
    plain.register(LevelAsName())
    fast.register(LevelAsName())
    assert fast.encode({"v": Level.HIGH}) == plain.encode({"v": Level.HIGH}) == b'{"v":3}'
