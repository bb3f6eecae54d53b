"""The hash chain: kept on every write, for SQLite and PostgreSQL, and every
kind of direct tampering with the database is caught at the right position."""

from __future__ import annotations

import threading

from commands import messages as m
from queries.audit_anchors import check_anchors
from queries.audit_trail import chain_source, head, verify
from tests.audit.scenario import at, edit_payload, execute, populate, position_of, raw_store


def test_every_notification_gets_a_chain_entry_and_the_chain_verifies(lianxin):
    populate(lianxin, calls=3)
    result = verify(lianxin)
    top = lianxin.app.max_position()
    assert result.ok, result.finding
    assert (result.first, result.last, result.records) == (1, top, top)
    assert head(lianxin) == (top, result.head)
    # A sub-range verifies on its own, starting from the stored value before it.
    part = verify(lianxin, 5, 12)
    assert part.ok and (part.first, part.last, part.records) == (5, 12, 8)


def test_payload_update_is_reported_as_altered_at_its_position(lianxin):
    populate(lianxin)
    with raw_store(lianxin) as (db, events, _chain, pos):
        first = position_of(db, events, pos, "WrapUpCompleted")
        edit_payload(db, events, pos, first, b"billing", b"refund")
    result = verify(lianxin)
    assert not result.ok
    assert (result.finding.position, result.finding.kind) == (first, "altered")
    assert result.last == first - 1


def test_deleted_row_is_reported_as_deleted(lianxin):
    populate(lianxin)
    with raw_store(lianxin) as (db, events, _chain, pos):
        execute(db, f"DELETE FROM {events} WHERE {pos} = %s", (9,))
    result = verify(lianxin)
    assert (result.ok, result.finding.position, result.finding.kind) == (False, 9, "deleted")


def test_row_deleted_with_its_chain_entry_is_still_caught(lianxin):
    populate(lianxin)
    with raw_store(lianxin) as (db, events, chain, pos):
        execute(db, f"DELETE FROM {events} WHERE {pos} = %s", (9,))
        execute(db, f"DELETE FROM {chain} WHERE position = %s", (9,))
    result = verify(lianxin)
    assert (result.ok, result.finding.position, result.finding.kind) == (False, 9, "deleted")


def test_forged_row_is_reported_as_inserted(lianxin):
    populate(lianxin)
    top = lianxin.app.max_position()
    with raw_store(lianxin) as (db, events, _chain, pos):
        row = execute(db, f"SELECT originator_id, originator_version, topic, state FROM {events} "
                          f"WHERE {pos} = %s", (top,))[0]
        forged = bytes(row[3]).replace(b"billing", b"forged")
        execute(db, f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                    "VALUES (%s, %s, %s, %s)", (row[0], row[1] + 1, row[2], forged))
    result = verify(lianxin)
    assert (result.ok, result.finding.position, result.finding.kind) == (False, top + 1, "inserted")
    assert result.last == top


def test_swapped_rows_are_reported_as_reordered(lianxin):
    populate(lianxin)
    with raw_store(lianxin) as (db, events, _chain, pos):
        a = execute(db, f"SELECT originator_id, originator_version, topic, state FROM {events} "
                        f"WHERE {pos} = %s", (20,))[0]
        b = execute(db, f"SELECT originator_id, originator_version, topic, state FROM {events} "
                        f"WHERE {pos} = %s", (23,))[0]
        # Swap contents through a parking version so the primary key never clashes.
        execute(db, f"UPDATE {events} SET originator_version = -1 WHERE {pos} = %s", (20,))
        execute(db, f"UPDATE {events} SET originator_id=%s, originator_version=%s, topic=%s, "
                    f"state=%s WHERE {pos} = %s", (*a, 23))
        execute(db, f"UPDATE {events} SET originator_id=%s, originator_version=%s, topic=%s, "
                    f"state=%s WHERE {pos} = %s", (*b, 20))
    result = verify(lianxin)
    assert (result.ok, result.finding.position, result.finding.kind) == (False, 20, "reordered")
    assert "23" in result.finding.detail


def test_tampering_is_found_by_parallel_workers_too(lianxin):
    populate(lianxin, calls=6)
    with raw_store(lianxin) as (db, events, _chain, pos):
        edit_payload(db, events, pos, 40, b"occurred_at", b"occurred_at ")
    result = verify(lianxin, workers=2, page=7)
    assert result.workers == 2
    assert (result.ok, result.finding.position, result.finding.kind) == (False, 40, "altered")


def test_a_rewritten_chain_passes_verify_but_not_an_earlier_anchor(lianxin):
    """An intruder who recomputes every chain value after an edit fools the
    chain alone; the head published before the edit catches it."""
    from commands.event_store import GENESIS, chain_rows

    populate(lianxin)
    position, old_head = head(lianxin)
    with raw_store(lianxin) as (db, events, chain, pos):
        edit_payload(db, events, pos, position_of(db, events, pos, "WrapUpCompleted"),
                     b"billing", b"refund")
        src = chain_source(lianxin)
        try:
            records = src.records(0, position)
        finally:
            src.close()
        rows, _ = chain_rows(GENESIS, records)
        for p, _us, h in rows:
            execute(db, f"UPDATE {chain} SET chain_hash = %s WHERE position = %s", (h, p))
    assert verify(lianxin).ok
    [result] = check_anchors(lianxin, [{"position": position, "chain_hash": old_head}])
    assert not result.ok and "rewritten" in result.detail


def test_truncated_history_fails_the_anchor(lianxin):
    populate(lianxin)
    position, old_head = head(lianxin)
    with raw_store(lianxin) as (db, events, chain, pos):
        execute(db, f"DELETE FROM {events} WHERE {pos} >= %s", (position - 2,))
        execute(db, f"DELETE FROM {chain} WHERE position >= %s", (position - 2,))
    assert verify(lianxin).ok  # nothing inside the shorter log is inconsistent
    [result] = check_anchors(lianxin, [{"position": position, "chain_hash": old_head}])
    assert not result.ok and "shortened" in result.detail


def test_anchor_of_untouched_history_holds_after_more_writes(lianxin):
    populate(lianxin, calls=2)
    position, old_head = head(lianxin)
    lianxin.commands.handle(m.MakeNotReady(employee_no="1001", reason="break",
                                           occurred_at=at(9000)))
    [result] = check_anchors(lianxin, [{"position": position, "chain_hash": old_head}])
    assert result.ok, result.detail


def test_concurrent_writers_in_separate_applications_keep_one_chain(settings):
    """Two applications (two connection pools, as two processes would have)
    writing at once: the chain must neither fork nor skip a record."""
    from lianxin.wiring import build

    a, b = build(settings), build(settings)
    try:
        a.commands.handle(m.RegisterAgent(employee_no="1", name="A", occurred_at=at(0)))
        errors: list[BaseException] = []

        def offer(lx, prefix):
            try:
                for i in range(25):
                    lx.commands.handle(m.OfferCall(external_id=f"{prefix}-{i}",
                                                   dialed_number="95598", occurred_at=at(i)))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=offer, args=(lx, p)) for lx, p in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        result = verify(a)
        assert result.ok, result.finding
        assert result.records == 51
    finally:
        a.close()
        b.close()


def test_a_store_written_before_the_chain_existed_is_chained_on_first_start(settings):
    """For SQLite and PostgreSQL: events written by the library's own recorder
    (no chain table) are chained from the first record when the chained
    recorder first opens the store, and the chain then continues from them."""
    from commands.application import CallCenter
    from commands.service import CommandService
    from lianxin.wiring import build

    plain_env = dict(settings.eventsourcing_env())
    plain_env.pop("APPLICATION_RECORDER_TOPIC")
    app = CallCenter(env=plain_env)
    svc = CommandService(app)
    svc.handle(m.RegisterAgent(employee_no="7", name="Old", occurred_at=at(0)))
    svc.handle(m.RegisterAgent(employee_no="8", name="Older", occurred_at=at(0)))
    app.close()
    lx = build(settings)
    try:
        src = chain_source(lx)
        try:
            assert [p for p, _ in src.chain_between(0, 10)] == [1, 2]  # backfilled
        finally:
            src.close()
        lx.commands.handle(m.LogIn(employee_no="7", endpoint="PJSIP/7", occurred_at=at(1)))
        result = verify(lx)
        assert result.ok and result.records == 3
    finally:
        lx.close()


def test_database_and_reference_canonical_forms_agree_on_awkward_records(lianxin):
    """Verification builds the canonical bytes in the database (PostgreSQL) or
    in a hot loop (SQLite); writing uses the reference form. Non-ASCII text,
    a source time without microseconds and a +08:00 offset must agree."""
    from datetime import datetime, timedelta, timezone

    from commands.event_store import canonical, occurred_at_text

    shanghai = timezone(timedelta(hours=8))
    svc = lianxin.commands
    wo = svc.handle(m.OpenWorkOrder(type="complaint", summary="停电三天，张先生投诉",
                                    location={"区": "天河"}, command_id="wo-awkward",
                                    occurred_at=datetime(2026, 11, 23, 17, 0, 0, tzinfo=shanghai)))
    svc.handle(m.NoteProgress(work_order_id=wo.aggregate_id, note="已联系 \"quoted\" \\ back",
                              occurred_at=datetime(2026, 11, 23, 17, 0, 0, 1, tzinfo=shanghai)))
    result = verify(lianxin)
    assert result.ok, result.finding
    src = chain_source(lianxin)
    try:
        records = src.records(0, lianxin.app.max_position())
        leaves = dict(src.leaves(0, lianxin.app.max_position()))
    finally:
        src.close()
    from commands.event_store import leaf_of

    assert {p: leaf_of(canonical(*r)) for p, r in ((r[0], r) for r in records)} == leaves
    assert occurred_at_text(records[0][4]) == b"2026-11-23T17:00:00+08:00"


def test_pages_read_ahead_do_not_blur_the_first_bad_position(lianxin):
    """Verification reads pages ahead in reader threads; with small pages many
    are in flight when the first bad one comes back, and the finding and the
    verified range must still stop at the earliest tampering, not a later one."""
    from queries.audit_trail import PAGE, _verify_slice, source_params

    populate(lianxin, calls=6)
    top = lianxin.app.max_position()
    with raw_store(lianxin) as (db, events, chain, pos):
        edit_payload(db, events, pos, 23, b"occurred_at", b"occurred_at ")
        execute(db, f"DELETE FROM {chain} WHERE position = %s", (top - 3,))
    for readers in (1, 3):
        result = _verify_slice(source_params(lianxin), 0, top, page=2, readers=readers)
        assert (result.finding.position, result.finding.kind) == (23, "altered")
        assert (result.first, result.last, result.records) == (1, 22, 22)
    whole = verify(lianxin, page=PAGE)
    assert (whole.ok, whole.last, whole.finding.position) == (False, 22, 23)


def test_a_page_the_fast_form_misjudges_is_settled_by_the_reference_form(lianxin, monkeypatch):
    """The fast forms (SQL-built headers, server-side leaves, the C loop) only
    pick the pages to re-read; the record-by-record reference check decides.
    A fast digest that disagrees with an untouched record must not be
    reported as tampering, and the records after it must still be verified.
    (The C loop's own false alarm: tests/audit/test_verifiers.py, state_as_text.)"""
    import queries.audit_trail as audit_trail

    populate(lianxin, calls=3)
    top = lianxin.app.max_position()
    for cls in (audit_trail.SQLiteChainSource, audit_trail.PostgresChainSource):
        real, real_blob = cls.leaf_digests, cls.leaf_blob

        def skewed(self, lo, hi, real=real):
            first, last, digests = real(self, lo, hi)
            if first <= 6 <= last:
                digests[6 - first] = bytes(32)
            return first, last, digests

        def skewed_blob(self, lo, hi, real=real_blob):
            n, first, last, blob = real(self, lo, hi)
            if first <= 6 <= last:
                i = (6 - first) * 32
                blob = blob[:i] + bytes(32) + blob[i + 32:]
            return n, first, last, blob

        monkeypatch.setattr(cls, "leaf_digests", skewed)
        monkeypatch.setattr(cls, "leaf_blob", skewed_blob)
    # The Python verifier alone, then with the C module (links; on SQLite the whole loop).
    for verifier in ("python", ""):
        monkeypatch.setenv("LIANXIN_AUDIT_VERIFIER", verifier)
        result = verify(lianxin, page=4)
        assert result.ok, result.finding
        assert (result.first, result.last, result.records) == (1, top, top)
        assert result.head == head(lianxin)[1]
    # A real alteration behind the misjudged page is still found.
    with raw_store(lianxin) as (db, events, _chain, pos):
        edit_payload(db, events, pos, 11, b"occurred_at", b"occurred_at ")
    for verifier in ("python", ""):
        monkeypatch.setenv("LIANXIN_AUDIT_VERIFIER", verifier)
        result = verify(lianxin, page=4)
        assert (result.ok, result.finding.position, result.finding.kind, result.last) == (
            False, 11, "altered", 10)


def _set_chain_hash(db, chain, position, value=b"\x00" * 32):
    execute(db, f"UPDATE {chain} SET chain_hash = %s WHERE position = %s", (value, position))


def test_a_chain_entry_changed_mid_page_is_named_exactly(lianxin):
    """Only a chain row is changed, in the middle of a page (pages hold
    20,000 positions): verification must compare every stored value, not only
    the page's last one, and name that position from the start or from --from."""
    populate(lianxin, calls=7)
    top = lianxin.app.max_position()
    with raw_store(lianxin) as (db, _events, chain, _pos):
        _set_chain_hash(db, chain, 30)
    for start in (None, 21, 30):
        result = verify(lianxin, start)
        assert not result.ok, start
        assert (result.finding.position, result.finding.kind) == (30, "altered"), start
        assert result.records == 29 - (start or 1) + 1, start
    # From 31, record 31 no longer chains from the stored value at 30: still 30.
    after = verify(lianxin, 31)
    assert (after.ok, after.finding.position) == (False, 30)
    assert verify(lianxin, 1, 29).ok and top > 40


def test_from_n_names_the_changed_entry_just_before_the_range(lianxin):
    """`verify --from 21` starts from the stored value at 20. When that value
    was changed, record 21 is intact: the finding is 20, not 21."""
    populate(lianxin, calls=2)
    with raw_store(lianxin) as (db, _events, chain, _pos):
        _set_chain_hash(db, chain, 20)
    result = verify(lianxin, 21)
    assert (result.ok, result.finding.position, result.finding.kind) == (False, 20, "altered")
    assert "just before the range" in result.finding.detail and result.records == 0
    whole = verify(lianxin)
    assert (whole.finding.position, whole.finding.kind, whole.last) == (20, "altered", 19)


def test_a_chain_row_moved_to_an_unused_position_is_caught(lianxin):
    """The chain's positions must be the events' positions: relabelling the
    last chain row of a page (same value, same order) is tampering too."""
    populate(lianxin, calls=2)
    top = lianxin.app.max_position()
    with raw_store(lianxin) as (db, _events, chain, _pos):
        execute(db, f"UPDATE {chain} SET position = %s WHERE position = %s", (top + 5, top))
    result = verify(lianxin, 1, top + 5)
    assert (result.ok, result.finding.position, result.finding.kind) == (False, top, "inserted")


def test_a_log_with_gaps_in_its_positions_verifies(lianxin):
    """PostgreSQL can skip sequence numbers (a rolled-back insert): a chain
    written over positions with a gap holds, and the page comparison then
    compares the positions one by one instead of by count and ends."""
    from commands.event_store import chain_rows

    populate(lianxin, calls=2)
    top = lianxin.app.max_position()
    with raw_store(lianxin) as (db, events, chain, pos):
        execute(db, f"DELETE FROM {events} WHERE {pos} = %s", (9,))
        execute(db, f"DELETE FROM {chain} WHERE position >= %s", (9,))
        src = chain_source(lianxin)
        try:
            _, before = src.chain_at_or_before(8)
            rows, _ = chain_rows(before, src.records(9, top))
        finally:
            src.close()
        for p, us, h in rows:
            execute(db, f"INSERT INTO {chain} (position, occurred_us, chain_hash) "
                        "VALUES (%s, %s, %s)", (p, us, h))
    for page in (20_000, 5):
        result = verify(lianxin, page=page)
        assert result.ok, (page, result.finding)
        assert (result.first, result.last, result.records) == (1, top, top - 1)
    # With the gap, a chain row relabelled into it is still caught.
    with raw_store(lianxin) as (db, _events, chain, _pos):
        execute(db, f"UPDATE {chain} SET position = 9 WHERE position = 10")
    result = verify(lianxin)
    assert (result.ok, result.finding.position) == (False, 9)
