"""A projection whose code changed version is rebuilt from the log, once."""

from __future__ import annotations

import pytest

from lianxin.wiring import projections_for
from projections.runner import ProjectionRunner
from projections.wallboard import WallboardProjection
from queries.wallboard import wallboard
from tests.projections.scenario import at, queued, staff


class WallboardV2(WallboardProjection):
    version = WallboardProjection.version + 1


class NoReset:
    name = "wallboard"
    version = WallboardProjection.version + 2

    def setup(self, db):
        pass

    def apply(self, db, event, position):
        pass


def test_a_new_version_resets_and_replays_only_that_projection(sqlite_lianxin):
    lx = sqlite_lianxin
    staff(lx.commands, "1001")
    queued(lx.commands, "v-1", "power", 10)
    runner = lx.read_models()
    runner.run_once()
    before = wallboard(lx, at=at(60))
    assert before["totals"]["offered"] == 1
    runner.close()
    lx.parts.pop("read_models")

    others = [p for p in projections_for(lx.settings) if p.name != "wallboard"]
    upgraded = ProjectionRunner(lx.app, lx.settings.read_models_path,
                                [WallboardV2(lx.settings.timezone), *others])
    head = lx.app.max_position()
    # Only the changed projection starts over; the others keep their place.
    assert upgraded.position_of("wallboard") == 0
    assert all(upgraded.position_of(p.name) == head for p in others)
    upgraded.run_once()
    assert wallboard(lx, at=at(60)) == before  # replayed once: nothing counted twice
    upgraded.close()

    with pytest.raises(RuntimeError, match="projections rebuild"):
        ProjectionRunner(lx.app, lx.settings.read_models_path, [NoReset()])
