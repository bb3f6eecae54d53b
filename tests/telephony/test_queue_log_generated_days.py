"""Generated days (the benchmark's generator, several seeds): whatever the mix,
an import leaves no call open, imports once, and a log imported piecemeal as it
grows ends exactly like one import of the whole."""

from __future__ import annotations

import random

import pytest

from bench.queue_log import synthetic_day
from domain.call import call_id_for
from lianxin.wiring import build
from telephony_adapter.queue_log import ImportOptions, import_queue_log
from tests.conftest import make_settings


def outline(lx, callids):
    out = {}
    for cid in callids:
        c = lx.app.repository.get(call_id_for(f"queue_log:{cid}"))
        out[cid] = (c.state, c.hung_up_by, c.queued_at, c.answered_at, c.ended_at, len(c.legs))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_days_import_whole_once_and_piecemeal_alike(tmp_path, seed):
    text = synthetic_day(120, agents=6, seed=seed)
    lines = text.splitlines(keepends=True)
    callids = sorted({l.split("|")[1] for l in lines if "|ENTERQUEUE|" in l})
    whole = build(make_settings(tmp_path / "whole"))
    pieces = build(make_settings(tmp_path / "pieces"))
    try:
        summary = import_queue_log(whole, text, ImportOptions())
        assert summary.ok and summary.live_calls == [] and summary.calls_created == len(callids)
        head = whole.app.max_position()
        assert import_queue_log(whole, text, ImportOptions()).events_created == 0
        assert whole.app.max_position() == head

        cuts = sorted(random.Random(seed).sample(range(1, len(lines)), 4)) + [len(lines)]
        for cut in cuts:
            assert import_queue_log(pieces, "".join(lines[:cut]), ImportOptions()).skipped == []
        assert outline(pieces, callids) == outline(whole, callids)
    finally:
        whole.close()
        pieces.close()
