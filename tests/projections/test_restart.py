"""A projection process killed at any instant resumes exactly where it
stopped: after restarts, every read model equals a clean rebuild (an event
lost or applied twice would show as a different count, row or position)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lianxin.settings import Settings
from lianxin.wiring import build, projections_for
from projections.runner import ProjectionRunner
from tests.projections.scenario import busy_day

ROOT = Path(__file__).resolve().parents[2]


def env_for(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LIANXIN_HOME=str(settings.home), LIANXIN_STORE=settings.store,
               LIANXIN_PG_HOST=settings.pg_host, LIANXIN_PG_PORT=str(settings.pg_port),
               LIANXIN_PG_USER=settings.pg_user, LIANXIN_PG_DBNAME=settings.pg_dbname,
               LIANXIN_PSEUDONYM_KEY=settings.pseudonym_key, LIANXIN_TZ=settings.timezone,
               PYTHONPATH=str(ROOT))
    return env


def tracked_position(path: Path) -> int:
    """The lowest committed projection position, as another reader sees it."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT MIN(position) FROM projection_tracking").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def dump(path: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name")]
        return {t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in tables}
    finally:
        db.close()


def clean_rebuild(settings: Settings, path: Path) -> dict[str, list[tuple[Any, ...]]]:
    lx = build(settings)
    try:
        runner = ProjectionRunner(lx.app, path, projections_for(settings))
        runner.run_once()
        runner.close()
    finally:
        lx.close()
    return dump(path)


def projection_process(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-c", "from lianxin.cli import main; main()", "projections", "run",
            *args]


def test_sigkill_mid_stream_then_restart_equals_a_clean_rebuild(settings, tmp_path):
    lx = build(settings)
    try:
        busy_day(lx.commands, calls=250)
        head = lx.app.max_position()
    finally:
        lx.close()
    assert head > 2000
    path = settings.read_models_path
    env = env_for(settings)
    kills: list[int] = []
    for round_ in range(1, 4):
        target = head * round_ // 4
        proc = subprocess.Popen(projection_process(settings, "--page", "37", "--pause", "0.01"),
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while tracked_position(path) < target:
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "projection process made no progress"
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()  # type: ignore[union-attr]
        kills.append(tracked_position(path))
    # Killed mid-stream each time, and each restart went on from where it was.
    assert 0 < kills[0] < kills[1] < kills[2] < head, kills
    done = subprocess.run(projection_process(settings, "--once"), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert tracked_position(path) == head
    resumed = dump(path)
    rebuilt = clean_rebuild(settings, tmp_path / "clean.sqlite")
    assert resumed.keys() == rebuilt.keys()
    for table in rebuilt:
        assert resumed[table] == rebuilt[table], table
    assert len(rebuilt["call_timeline"]) > 1500


def test_two_runners_on_one_file_apply_each_event_once(sqlite_lianxin, tmp_path):
    """The API's in-process runner and a separate `projections run` may
    follow the log into the same file at the same time."""
    lx = sqlite_lianxin
    first = lx.read_models(start=True)
    second = ProjectionRunner(lx.app, lx.settings.read_models_path,
                              projections_for(lx.settings), page=13)
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            second.run_once()
            time.sleep(0.001)

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        busy_day(lx.commands, calls=60, seed=11)
        head = lx.app.max_position()
        assert first.wait_for(head, 30)
    finally:
        stop.set()
        thread.join()
    second.run_once()
    second.close()
    first.stop()
    assert dump(lx.settings.read_models_path) == clean_rebuild(lx.settings,
                                                               tmp_path / "clean.sqlite")
