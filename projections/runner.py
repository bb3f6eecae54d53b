"""Runs projections over the notification log, exactly once.

Read models live in their own SQLite file (``read_models.sqlite`` under the
data directory): they are disposable and rebuildable from the events, so each
API node may keep its own even when the event store is PostgreSQL. Every
batch of events is applied and the projection's position recorded in the
same SQLite transaction, so a process killed at any instant resumes exactly
where its last commit stopped: no event lost, none applied twice.

The SQLite event store has no ``subscribe()``, so the runner polls
``select_notifications``; in the same process the command bus wakes it at
once after each commit (``CommandBus.on_commit``), which keeps lag low.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Protocol

from eventsourcing.application import Application

PAGE = 1000


class Projection(Protocol):
    """A read model. ``apply`` must only touch the projection's own tables
    through ``db`` (inside the runner's transaction) and must not commit."""

    name: str

    def setup(self, db: sqlite3.Connection) -> None: ...

    def apply(self, db: sqlite3.Connection, event: Any, position: int) -> None: ...


def connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class ProjectionRunner:
    def __init__(self, app: Application, db_path: Path | str,
                 projections: Iterable[Projection], page: int = PAGE) -> None:
        self.app = app
        self.db_path = str(db_path)
        self.projections = list(projections)
        self.page = page
        self.db = connect(self.db_path)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._advanced = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.db.execute("CREATE TABLE IF NOT EXISTS projection_tracking ("
                        "projection TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        for p in self.projections:
            self.db.execute("BEGIN IMMEDIATE")
            p.setup(self.db)
            self.db.execute("INSERT OR IGNORE INTO projection_tracking VALUES (?, 0)", (p.name,))
            self.db.execute("COMMIT")

    # -- positions -----------------------------------------------------------
    def position_of(self, name: str) -> int:
        row = self.db.execute("SELECT position FROM projection_tracking WHERE projection=?",
                              (name,)).fetchone()
        return int(row[0]) if row else 0

    @property
    def position(self) -> int:
        """The position every projection has reached."""
        return min((self.position_of(p.name) for p in self.projections), default=0)

    # -- processing ----------------------------------------------------------
    def run_once(self) -> int:
        """Apply every event recorded so far; returns how many were applied."""
        done = 0
        with self._lock:
            while True:
                start = self.position
                notifications = self.app.recorder.select_notifications(
                    start=start, limit=self.page, inclusive_of_start=False)
                if not notifications:
                    break
                self._apply_batch(notifications)
                done += len(notifications)
                if len(notifications) < self.page:
                    break
        if done:
            with self._advanced:
                self._advanced.notify_all()
        return done

    def _apply_batch(self, notifications: list[Any]) -> None:
        positions = {p.name: self.position_of(p.name) for p in self.projections}
        mapper = self.app.mapper
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for n in notifications:
                event = mapper.to_domain_event(n)
                for p in self.projections:
                    if n.id > positions[p.name]:
                        p.apply(db, event, n.id)
            last = notifications[-1].id
            db.executemany("UPDATE projection_tracking SET position=? WHERE projection=?",
                           [(last, p.name) for p in self.projections])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def notify(self, position: int | None = None) -> None:
        """Wake the background loop (the command bus calls this on commit)."""
        self._wake.set()

    def start(self, poll_interval: float = 0.05) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - keep following; logged by caller
                    import logging

                    logging.getLogger(__name__).exception("projection batch failed")
                    time.sleep(poll_interval)
                self._wake.wait(poll_interval)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="projections", daemon=True)
        self._thread.start()

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """Read-your-writes: block until every projection reached ``position``."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._thread is None:
                self.run_once()
                continue
            self._wake.set()
            with self._advanced:
                self._advanced.wait(min(remaining, 0.05))
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.db.close()
