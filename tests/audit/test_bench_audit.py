"""bench/audit.py runs end to end on a small store and reports the goal's
ceiling and the second baseline side by side (ratios only, no timings asserted)."""

from __future__ import annotations

import pytest

from bench.audit import main, measure


def test_bench_reports_both_baselines_and_the_verdicts(capsys):
    res = measure("sqlite", 600, 1)
    assert res["events"] >= 600
    for key in ("ceiling_sha256_per_record_events_per_s", "chain_work_in_memory_events_per_s",
                "read_and_sha256_events_per_s", "verify_1_worker_events_per_s",
                "verify_parallel_events_per_s"):
        assert res[key] > 0, key
    assert res["goal_met"] == (max(res["verify_1_worker_ratio"],
                                   res["verify_parallel_ratio"]) >= 0.5)
    assert res["verify_1_worker_vs_read_and_sha256"] == pytest.approx(
        res["verify_1_worker_events_per_s"] / res["read_and_sha256_events_per_s"], abs=0.02)
    # The figure of the verifier that ran (C when built), and the pure-Python one beside it.
    from queries.audit_trail import _fast

    assert res["verifier"] == ("c" if _fast() is not None else "python")
    assert ("verify_python_events_per_s" in res) == (_fast() is not None)
    assert main(["--store", "sqlite", "--events", "300", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "baseline 2: read rows + sha256 each" in out
    assert "goal (verify >= 0.5x ceiling):" in out
    assert f"verify ({res['verifier']}), 1 " in out
