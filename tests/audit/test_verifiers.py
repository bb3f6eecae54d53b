"""The C verifiers (queries/_fastchain.c for SQLite, queries/_fastchain_pg.c
for PostgreSQL over libpq) are fast paths only: for every kind of tampering
they give byte-for-byte the verdict of the pure-Python verifier (position,
kind, detail, verified range, records, head), however the work is split; and
without the built modules everything still works in Python."""

from __future__ import annotations

import sys

import pytest

from queries import audit_trail
from queries.audit_trail import verify
from tests.audit.scenario import edit_payload, execute, populate, position_of, raw_store


def _verdict(v):
    f = v.finding
    return (v.ok, v.first, v.last, v.records, v.head,
            None if f is None else (f.position, f.kind, f.detail))


def _row(db, events, pos, position):
    return execute(db, f"SELECT originator_id, originator_version, topic, state FROM {events} "
                       f"WHERE {pos} = %s", (position,))[0]


def _altered_payload(db, events, chain, pos, top):
    edit_payload(db, events, pos, position_of(db, events, pos, "WrapUpCompleted"),
                 b"billing", b"refund")


def _altered_topic(db, events, chain, pos, top):
    execute(db, f"UPDATE {events} SET topic = topic || 'x' WHERE {pos} = %s", (17,))


def _chain_row_mid_page(db, events, chain, pos, top):
    execute(db, f"UPDATE {chain} SET chain_hash = %s WHERE position = %s", (bytes(32), 30))


def _chain_row_before_from(db, events, chain, pos, top):
    execute(db, f"UPDATE {chain} SET chain_hash = %s WHERE position = %s", (bytes(32), 20))


def _deleted(db, events, chain, pos, top):
    execute(db, f"DELETE FROM {events} WHERE {pos} = %s", (9,))


def _deleted_with_chain(db, events, chain, pos, top):
    execute(db, f"DELETE FROM {events} WHERE {pos} = %s", (9,))
    execute(db, f"DELETE FROM {chain} WHERE position = %s", (9,))


def _inserted(db, events, chain, pos, top):
    row = _row(db, events, pos, top)
    execute(db, f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)",
            (row[0], row[1] + 1, row[2], bytes(row[3]).replace(b"billing", b"forged")))


def _swapped(db, events, chain, pos, top):
    a, b = _row(db, events, pos, 20), _row(db, events, pos, 23)
    execute(db, f"UPDATE {events} SET originator_version = -1 WHERE {pos} = %s", (20,))
    execute(db, f"UPDATE {events} SET originator_id=%s, originator_version=%s, topic=%s, "
                f"state=%s WHERE {pos} = %s", (*a, 23))
    execute(db, f"UPDATE {events} SET originator_id=%s, originator_version=%s, topic=%s, "
                f"state=%s WHERE {pos} = %s", (*b, 20))


def _chain_row_relabelled(db, events, chain, pos, top):
    execute(db, f"UPDATE {chain} SET position = %s WHERE position = %s", (top + 5, top))


def _truncated(db, events, chain, pos, top):
    execute(db, f"DELETE FROM {events} WHERE {pos} >= %s", (top - 2,))
    execute(db, f"DELETE FROM {chain} WHERE position >= %s", (top - 2,))


def _untouched(db, events, chain, pos, top):
    pass


def _state_as_text(db, events, chain, pos, top):
    """Not tampering: the same bytes stored as TEXT. The C form refuses the
    type and stops; the Python verifier clears the page and C goes on."""
    if isinstance(db, audit_trail.sqlite3.Connection):
        execute(db, f"UPDATE {events} SET state = CAST(state AS TEXT) WHERE {pos} = %s", (12,))


def _expected_verifier(store):
    """What ``verify`` reports on ``store`` with the modules built here."""
    if store == "postgres" and audit_trail._fast_pg() is not None:
        return "c"
    if audit_trail._fast() is None:
        pytest.skip("queries._fastchain is not built here (no compiler or headers)")
    return "c" if store == "sqlite" else "python, C links"


KINDS = [_untouched, _altered_payload, _altered_topic, _chain_row_mid_page,
         _chain_row_before_from, _deleted, _deleted_with_chain, _inserted, _swapped,
         _chain_row_relabelled, _truncated, _state_as_text]


@pytest.mark.parametrize("tamper", KINDS, ids=[k.__name__.strip("_") for k in KINDS])
def test_the_c_verifier_gives_the_python_verdict(lianxin, monkeypatch, tamper):
    expected = _expected_verifier(lianxin.settings.store)
    populate(lianxin, calls=7)
    top = lianxin.app.max_position()
    with raw_store(lianxin) as (db, events, chain, pos):
        tamper(db, events, chain, pos, top)
    ranges = [(None, None), (21, top + 5)]
    # C: one thread and three, pages of 20,000 and of 7; Python: one process.
    fast = {(r, page, workers): verify(lianxin, *r, workers=workers, page=page)
            for r in ranges for page in (audit_trail.PAGE, 7) for workers in (1, 3)}
    monkeypatch.setenv("LIANXIN_AUDIT_VERIFIER", "python")
    python = {(r, page): verify(lianxin, *r, workers=1, page=page)
              for r in ranges for page in (audit_trail.PAGE, 7)}
    for (r, page, workers), got in fast.items():
        assert got.verifier == expected
        assert _verdict(got) == _verdict(python[(r, page)]), (tamper.__name__, r, page, workers)
    assert {v.verifier for v in python.values()} == {"python"}
    clean = tamper in (_untouched, _truncated, _state_as_text)
    assert python[((None, None), audit_trail.PAGE)].ok == clean


def test_without_the_built_module_the_python_verifier_runs(lianxin, monkeypatch):
    """A machine without a compiler or headers installs without the module:
    the import fails and verification, bundles and anchors run in Python."""
    from queries.audit_anchors import make_anchor

    populate(lianxin, calls=2)
    monkeypatch.setitem(sys.modules, "queries._fastchain", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "queries._fastchain_pg", None)
    monkeypatch.delenv("LIANXIN_AUDIT_VERIFIER", raising=False)
    assert audit_trail._fast() is None and audit_trail._fast_pg() is None
    result = verify(lianxin)
    assert result.ok and result.verifier == "python"
    assert result.records == lianxin.app.max_position()
    assert make_anchor(lianxin)["position"] == result.last
    with raw_store(lianxin) as (db, events, _chain, pos):
        edit_payload(db, events, pos, 6, b'"actor":null', b'"actor":"x"')
    broken = verify(lianxin)
    assert (broken.ok, broken.finding.position, broken.finding.kind) == (False, 6, "altered")


def test_the_c_link_step_equals_hashlib():
    import hashlib

    fast = audit_trail._fast()
    if fast is None:
        pytest.skip("queries._fastchain is not built here")
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(100)]
    h, expected = bytes(range(32)), b""
    for leaf in leaves:
        h = hashlib.sha256(h + leaf).digest()
        expected += h
    assert fast.link_all(bytes(range(32)), b"".join(leaves)) == expected
    assert fast.link_all(bytes(32), b"") == b""
    with pytest.raises(ValueError):
        fast.link_all(bytes(31), b"")


def test_without_libpq_sqlite_keeps_its_c_verifier(lianxin, monkeypatch):
    """The PostgreSQL module is separate (a machine without libpq builds only
    the SQLite one): without it SQLite still runs in C, PostgreSQL in Python
    with C links, and the verdicts are the same."""
    if audit_trail._fast() is None:
        pytest.skip("queries._fastchain is not built here")
    populate(lianxin, calls=3)
    monkeypatch.delenv("LIANXIN_AUDIT_VERIFIER", raising=False)
    with_module = verify(lianxin, workers=2, page=7)
    monkeypatch.setitem(sys.modules, "queries._fastchain_pg", None)  # import raises ImportError
    assert audit_trail._fast_pg() is None and audit_trail._fast() is not None
    without = verify(lianxin, workers=2, page=7)
    assert without.verifier == ("c" if lianxin.settings.store == "sqlite" else "python, C links")
    assert without.ok and _verdict(without) == _verdict(with_module)
    with raw_store(lianxin) as (db, events, _chain, pos):
        edit_payload(db, events, pos, 11, b'"actor":null', b'"actor":"x"')
    broken = verify(lianxin, workers=2, page=7)
    assert (broken.ok, broken.finding.position, broken.finding.kind) == (False, 11, "altered")


@pytest.mark.parametrize("store", ["postgres"])
def test_postgres_c_verifier_unreachable_falls_back_to_python(lianxin, monkeypatch):
    """When libpq cannot connect with the settings the C verifier is given,
    the Python verifier reads the span: same verdict."""
    if audit_trail._fast_pg() is None:
        pytest.skip("queries._fastchain_pg is not built here (no libpq or headers)")
    populate(lianxin, calls=2)
    good = verify(lianxin, workers=2, page=7)
    monkeypatch.setattr(audit_trail, "_libpq_conninfo",
                        lambda conninfo: [("host", "127.0.0.1"), ("port", "1")])
    fallback = verify(lianxin, workers=2, page=7)
    assert good.ok and _verdict(fallback) == _verdict(good)


@pytest.mark.parametrize("store", ["postgres"])
def test_the_postgres_c_verifier_reads_with_the_settings_of_the_python_side(lianxin):
    if audit_trail._fast_pg() is None:
        pytest.skip("queries._fastchain_pg is not built here (no libpq or headers)")
    populate(lianxin, calls=2)
    params = audit_trail.source_params(lianxin)
    pairs = dict(audit_trail._libpq_conninfo(params["conninfo"]))
    s = lianxin.settings
    assert (pairs["host"], pairs["port"], pairs["user"], pairs["dbname"]) == (
        s.pg_host, str(s.pg_port), s.pg_user, s.pg_dbname)
    assert pairs["client_encoding"] == "UTF8"
    top = lianxin.app.max_position()
    fast = audit_trail._fast_pg()
    records, first, last, head, stopped, page_start = fast.verify_postgres(
        list(pairs.items()), params["schema"], params["table"], 0, top, bytes(32), 7)
    assert (records, first, last, stopped, page_start) == (top, 1, top, False, top)
    assert head.hex() == audit_trail.head(lianxin)[1]
    with pytest.raises(ValueError):
        fast.verify_postgres([], "public", "t", 0, 1, bytes(31), 7)


def test_a_source_time_window_that_cuts_a_character_verifies(lianxin, monkeypatch):
    """The byte rule reads a fixed 40-byte window after the source-time mark;
    when the payload's text goes on in a multibyte character, the window
    ends in the middle of it. Every verifier must take the bytes as bytes."""
    from uuid import uuid4

    from eventsourcing.persistence import StoredEvent

    from commands.event_store import OCCURRED_MARK, OCCURRED_WINDOW

    state = (b'{"occurred_at":{"_type_":"datetime_iso","_data_":"2026-03-02T08:00:00+08:00"},'
             b'"a":"xy\xe6\x8a\xa5\xe4\xbf\xae"}')
    start = state.index(OCCURRED_MARK) + len(OCCURRED_MARK)
    with pytest.raises(UnicodeDecodeError):  # the window does cut a character
        state[start:start + OCCURRED_WINDOW].decode()
    populate(lianxin, calls=1)
    lianxin.app.recorder.insert_events(
        [StoredEvent(originator_id=uuid4(), originator_version=1,
                     topic="domain.call:Call.Offered", state=state)])
    assert verify(lianxin).ok
    monkeypatch.setitem(sys.modules, "queries._fastchain", None)
    monkeypatch.setitem(sys.modules, "queries._fastchain_pg", None)
    monkeypatch.delenv("LIANXIN_AUDIT_VERIFIER", raising=False)
    result = verify(lianxin)
    assert result.ok and result.verifier == "python"
    assert result.records == lianxin.app.max_position()
