"""Readers (another process: this test) query the published catalog while
a loader process writes; every snapshot they see is whole and consistent."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


from bench.warehouse import fill_store
from lianxin.wiring import build
from tests.conftest import make_settings
from tests.warehouse.helpers import cli_env, lianxin_cmd
from warehouse import kpis
from warehouse.reader import NotLoaded

OUTCOMES = ["answered", "abandoned", "self_service", "other_exits", "in_progress"]


def test_reports_run_while_the_loader_publishes(tmp_path: Path):
    home = tmp_path / "home"
    lx = build(make_settings(home))
    try:
        stored = fill_store(lx.app.recorder, calls=500, agents=25)
    finally:
        lx.close()
    loader = subprocess.Popen(lianxin_cmd("warehouse", "load", "--batch-size", "150",
                                          "--publish-every", "1"),
                              env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    positions: list[int] = []
    reads = 0
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            finished = loader.poll() is not None
            try:
                df, meta = kpis(["offered", *OUTCOMES, "occupancy"],
                                directory=home / "warehouse", with_meta=True)
            except NotLoaded:
                assert not finished, loader.stderr.read()
                time.sleep(0.05)
                continue
            reads += 1
            positions.append(meta["as_of"]["position"])
            row = df.to_dicts()[0]
            # A snapshot is whole: every call is in exactly one outcome.
            assert row["offered"] == sum(row[k] for k in OUTCOMES)
            if finished:
                break
    finally:
        if loader.poll() is None:
            loader.kill()
        out, err = loader.communicate()
    assert loader.returncode == 0, err
    assert positions == sorted(positions), "a reader went back in time"
    assert len(set(positions)) >= 3, f"too few snapshots seen while loading: {positions}"
    assert positions[-1] == stored
    assert reads >= 3
