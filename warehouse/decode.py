"""Notifications -> an Arrow batch, without constructing domain objects.

The library's per-event mapping (resolve topic, decode, build an object)
caps near 110k events/s; the warehouse only needs a few fields, so it hands
the raw JSON state to DuckDB, which parses it column-wise. Only events that
need the library's help go through Python one by one:

* a topic whose event class has ``class_version`` > 1, or a state that
  records an older ``class_version``: the class's ``upcast_vN_vN+1`` methods
  are applied to the decoded state, exactly as the mapper would, and the
  state is re-encoded, so the warehouse always stores the current version;
* a store configured with a cipher or compressor: the state is decrypted /
  decompressed first.

Two entry points build the same batch: ``to_arrow`` from the library's
``Notification`` objects, and ``columns_to_arrow`` from the parallel columns
of our recorders' ``select_notification_columns`` (no object per row; topic
names are split once per distinct topic and the upcast test runs in Arrow).
``columns_to_arrow`` covers stores without a cipher or compressor; the loader
takes ``to_arrow`` for the others (``reads_columns``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence
from uuid import UUID

import pyarrow as pa
import pyarrow.compute as pc
from eventsourcing.utils import resolve_topic

BATCH_SCHEMA = pa.schema([
    ("position", pa.int64()),
    ("aggregate_id", pa.string()),
    ("aggregate_version", pa.int64()),
    ("topic", pa.string()),
    ("aggregate_type", pa.string()),
    ("event_type", pa.string()),
    ("state", pa.string()),
])


@lru_cache(maxsize=None)
def split_topic(topic: str) -> tuple[str, str]:
    """"domain.call:Call.Answered" -> ("Call", "Answered")."""
    qualname = topic.partition(":")[2] or topic
    head, _, tail = qualname.rpartition(".")
    return head, tail


@lru_cache(maxsize=None)
def current_class_version(topic: str) -> int:
    """The class_version of the event class named by ``topic``; 1 when the
    class is unknown here (an event from a newer release: stored as-is)."""
    try:
        cls = resolve_topic(topic)
    except Exception:
        return 1
    return int(getattr(cls, "class_version", 1))


def upcast_state(mapper: Any, topic: str, raw: bytes) -> bytes:
    """Bring a stored state to the current class version, as the mapper does."""
    state = mapper.transcoder.decode(raw)
    cls = resolve_topic(topic)
    target = int(getattr(cls, "class_version", 1))
    version = int(state.get("class_version", 1))
    if version > target:
        return raw  # written by a newer release than this one: kept as it is
    state.pop("class_version", None)
    while version < target:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    if target > 1:  # as the mapper writes a current event of this class
        state["class_version"] = target
    return mapper.transcoder.encode(state)


def to_arrow(notifications: Sequence[Any], mapper: Any | None = None) -> pa.Table:
    states = [n.state for n in notifications]
    cipher = getattr(mapper, "cipher", None) if mapper is not None else None
    compressor = getattr(mapper, "compressor", None) if mapper is not None else None
    if cipher is not None or compressor is not None:
        for i, raw in enumerate(states):
            if cipher is not None:
                raw = cipher.decrypt(raw)
            if compressor is not None:
                raw = compressor.decompress(raw)
            states[i] = raw
    topics = [n.topic for n in notifications]
    for topic in set(topics):
        version = current_class_version(topic)
        if version > 1 and mapper is not None:
            # The mapper writes class_version as a payload's last member, so
            # a state already at the current version needs no Python at all
            # (since v2 of Call.Offered that is one event in ten).
            current = b',"class_version":%d}' % version
            for i, t in enumerate(topics):
                if t == topic and not bytes(states[i]).endswith(current):
                    states[i] = upcast_state(mapper, t, states[i])
    # Older stored versions of a class now at version 1 cannot exist; a state
    # that names a class_version the code does not know is kept verbatim.
    # The state column is cast from binary in Arrow (one UTF-8 validation
    # pass in C) instead of decoding each bytes object in Python.
    state_col = pa.array([bytes(x) if isinstance(x, memoryview) else x for x in states],
                         pa.binary()).cast(pa.string())
    return pa.Table.from_arrays(
        [
            pa.array([n.id for n in notifications], pa.int64()),
            pa.array([n.originator_id.hex if isinstance(n.originator_id, UUID)
                      else str(n.originator_id) for n in notifications], pa.string()),
            pa.array([n.originator_version for n in notifications], pa.int64()),
            pa.array(topics, pa.string()),
            pa.array([split_topic(t)[0] for t in topics], pa.string()),
            pa.array([split_topic(t)[1] for t in topics], pa.string()),
            state_col,
        ],
        schema=BATCH_SCHEMA,
    )


def reads_columns(recorder: Any, mapper: Any | None) -> bool:
    """Whether the batch can be built by ``columns_to_arrow``: the recorder
    reads columns, and the stored states are the transcoder's bytes (no
    cipher, no compressor to undo first)."""
    return (callable(getattr(recorder, "select_notification_columns", None))
            and getattr(mapper, "cipher", None) is None
            and getattr(mapper, "compressor", None) is None)


def columns_to_arrow(columns: Sequence[Sequence[Any]], mapper: Any | None = None) -> pa.Table:
    """What ``to_arrow`` builds for the same notifications, from the columns
    (positions, originator id text, versions, topics, states) of
    ``select_notification_columns``, for a store without cipher or compressor.

    Same upcast rule as ``to_arrow``: with a mapper, a state of a topic whose
    class is at ``class_version`` N > 1 that does not end with
    ``,"class_version":N}`` goes through ``upcast_state``; the rest is never
    touched in Python."""
    positions, ids, versions, topics, states = columns
    topic_col = pa.array(topics, pa.string())
    coded = topic_col.dictionary_encode()
    distinct = coded.dictionary.to_pylist()
    codes = coded.indices
    # Arrow takes bytes, memoryviews and text alike, as to_arrow's list gives them.
    state_col = pa.array(states, pa.binary())
    if mapper is not None:
        by_version: dict[int, list[int]] = {}
        for code, topic in enumerate(distinct):
            version = current_class_version(topic)
            if version > 1:
                by_version.setdefault(version, []).append(code)
        replaced: dict[int, bytes] = {}
        for version, version_codes in by_version.items():
            stale = pc.and_(pc.is_in(codes, pa.array(version_codes, codes.type)),
                            pc.invert(pc.ends_with(state_col,
                                                   pattern=',"class_version":%d}' % version)))
            for i in pc.indices_nonzero(stale).to_pylist():
                replaced[i] = upcast_state(mapper, distinct[codes[i].as_py()], states[i])
        if replaced:
            fixed = list(states)
            for i, raw in replaced.items():
                fixed[i] = raw
            state_col = pa.array(fixed, pa.binary())
    heads = pa.array([split_topic(t)[0] for t in distinct], pa.string())
    tails = pa.array([split_topic(t)[1] for t in distinct], pa.string())
    return pa.Table.from_arrays(
        [
            pa.array(positions, pa.int64()),
            pa.array(ids, pa.string()),
            pa.array(versions, pa.int64()),
            topic_col,
            heads.take(codes),
            tails.take(codes),
            state_col.cast(pa.string()),
        ],
        schema=BATCH_SCHEMA,
    )
