"""Runs projections over the notification log, exactly once.

Read models live in their own SQLite file (``read_models.sqlite`` under the
data directory): they are disposable and rebuildable from the events, so each
API node may keep its own even when the event store is PostgreSQL. Every
batch of events is applied and the projection's position recorded in the
same SQLite transaction, so a process killed at any instant resumes exactly
where its last commit stopped: no event lost, none applied twice.

Two runners may follow the log into the same file (the API's in-process
runner and a ``lianxin projections run`` process): positions are re-read
inside the write transaction, so whichever commits first wins and the other
skips what it already finds applied.

The SQLite event store has no ``subscribe()``, so the runner polls
``select_notifications``; in the same process the command bus wakes it at
once after each commit (``CommandBus.on_commit``), which keeps lag low.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Protocol

from eventsourcing.application import Application

PAGE = 1000

log = logging.getLogger(__name__)


class Projection(Protocol):
    """A read model. ``apply`` must only touch the projection's own tables
    through ``db`` (inside the runner's transaction) and must not commit.

    Optional members: ``version`` (int, default 1) and ``reset(db)`` (drop
    the projection's tables). When the code's version differs from the one
    the file was built with, the runner resets that projection and replays
    the whole log into it, so a changed table layout never meets old rows.
    """

    name: str

    def setup(self, db: sqlite3.Connection) -> None: ...

    def apply(self, db: sqlite3.Connection, event: Any, position: int) -> None: ...


def connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def drop_tables(db: sqlite3.Connection, tables: Iterable[str]) -> None:
    """Drop a projection's tables (their indexes go with them): for ``reset``."""
    for table in tables:
        db.execute(f'DROP TABLE IF EXISTS "{table}"')


class ProjectionRunner:
    def __init__(self, app: Application, db_path: Path | str,
                 projections: Iterable[Projection], page: int = PAGE) -> None:
        self.app = app
        self.db_path = str(db_path)
        self.projections = list(projections)
        names = [p.name for p in self.projections]
        if len(set(names)) != len(names):
            raise ValueError(f"projection names must be unique: {names}")
        self.page = page
        self.db = connect(self.db_path)
        self._lock = threading.RLock()  # one batch at a time on this connection
        self._wake = threading.Event()
        self._advanced = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None
        with self._lock:
            self.db.execute("CREATE TABLE IF NOT EXISTS projection_tracking ("
                            "projection TEXT PRIMARY KEY, position INTEGER NOT NULL,"
                            " version INTEGER NOT NULL DEFAULT 1)")
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(projection_tracking)")}
            if "version" not in columns:  # a file from before versions were tracked
                try:
                    self.db.execute("ALTER TABLE projection_tracking"
                                    " ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
                except sqlite3.OperationalError:  # another process added it first
                    pass
            for p in self.projections:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    self._prepare(p)
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
            # Committed positions only: readers on other threads must never
            # see a position whose rows are not yet visible to their own
            # connections (read-your-writes would then return stale rows).
            self._positions = self._read_positions()

    def _prepare(self, p: Projection) -> None:
        version = int(getattr(p, "version", 1))
        row = self.db.execute("SELECT version FROM projection_tracking WHERE projection=?",
                              (p.name,)).fetchone()
        if row is not None and int(row[0]) != version:
            reset = getattr(p, "reset", None)
            if reset is None:
                raise RuntimeError(
                    f"projection {p.name} is version {version} but the read models were "
                    f"built with version {row[0]}: run `lianxin projections rebuild --yes`")
            log.warning("projection %s: version %s -> %s, rebuilding it from the log",
                        p.name, row[0], version)
            reset(self.db)
            self.db.execute("UPDATE projection_tracking SET position=0, version=?"
                            " WHERE projection=?", (version, p.name))
        p.setup(self.db)
        self.db.execute("INSERT OR IGNORE INTO projection_tracking (projection, position,"
                        " version) VALUES (?, 0, ?)", (p.name, version))

    # -- positions -----------------------------------------------------------
    def _read_positions(self) -> dict[str, int]:
        rows = self.db.execute("SELECT projection, position FROM projection_tracking").fetchall()
        known = {r[0]: int(r[1]) for r in rows}
        return {p.name: known.get(p.name, 0) for p in self.projections}

    def position_of(self, name: str) -> int:
        return self._positions.get(name, 0)

    @property
    def position(self) -> int:
        """The position every projection has reached (committed)."""
        return min(self._positions.values(), default=0)

    def refresh(self) -> int:
        """Re-read committed positions (another process may have advanced them)."""
        with self._lock:
            self._positions = self._read_positions()
        return self.position

    def head(self) -> int:
        """The last position in the notification log."""
        return int(self.app.recorder.max_notification_id() or 0)

    # -- processing ----------------------------------------------------------
    def run_once(self) -> int:
        """Apply every event recorded so far; returns how many were read."""
        done = 0
        while True:
            read = self.run_page()
            done += read
            if read < self.page:
                return done

    def run_page(self) -> int:
        """Apply at most one page of events in one transaction; returns how
        many notifications were read (0 when up to date)."""
        with self._lock:
            notifications = self.app.recorder.select_notifications(
                start=self.position, limit=self.page, inclusive_of_start=False)
            if not notifications:
                return 0
            self._apply_batch(notifications)
        with self._advanced:
            self._advanced.notify_all()
        return len(notifications)

    def _apply_batch(self, notifications: list[Any]) -> int:
        mapper = self.app.mapper
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Inside the write lock: the authoritative positions, even if
            # another process advanced them since we last looked.
            positions = self._read_positions()
            applied = 0
            for n in notifications:
                behind = [p for p in self.projections if n.id > positions[p.name]]
                if not behind:
                    continue
                event = mapper.to_domain_event(n)
                for p in behind:
                    p.apply(db, event, n.id)
                applied += 1
            last = notifications[-1].id
            new_positions = {name: max(pos, last) for name, pos in positions.items()}
            db.executemany("UPDATE projection_tracking SET position=? WHERE projection=?",
                           [(pos, name) for name, pos in new_positions.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._positions = new_positions
        return applied

    def notify(self, position: int | None = None) -> None:
        """Wake the background loop (the command bus calls this on commit)."""
        self._wake.set()

    def start(self, poll_interval: float = 0.05) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                    self.last_error = None
                except Exception as exc:  # noqa: BLE001 - keep following; retried next tick
                    self.last_error = exc
                    log.exception("projection batch failed")
                    self._stop.wait(poll_interval)
                self._wake.wait(poll_interval)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="projections", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """Read-your-writes: block until every projection reached ``position``."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not self.running:
                if self.run_once() == 0 and self.position < position:
                    # Nothing new to read yet (or another process holds the
                    # file): look again shortly rather than spin.
                    self.refresh()
                    time.sleep(min(remaining, 0.01))
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
        with self._lock:
            self.db.close()
