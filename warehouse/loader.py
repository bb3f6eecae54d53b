"""The warehouse loader: notification log -> DuckDB facts -> published Parquet.

One process writes ``loader.duckdb`` (DuckDB allows a single writer per
file). Each batch is one DuckDB transaction holding the new events, the
recomputed facts, the months to republish and the loader's position, so a
crash at any point leaves the file at the end of the last committed batch.
``publish`` then writes the changed month partitions as Parquet and swaps in
a new read-only catalog for readers (see ``warehouse.publish``).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb

from warehouse.db import run

from warehouse import facts
from warehouse.decode import columns_to_arrow, reads_columns, to_arrow

# At least two of DuckDB's row groups (122,880 rows) of events per batch: an
# append that large is written straight to the database file ("optimistic
# write") instead of to the WAL and again at the checkpoint that every
# 30 MB commit set off. 3M events: 100k-event batches 28.2 s (COMMIT 8.4 s of
# it), 250k-event batches 18.9 s (docs/performance.md).
DEFAULT_BATCH = 250_000


SCHEMA_VERSION = 5


class SchemaOutdated(RuntimeError):
    """The loader's file was made by an older warehouse: rebuild it."""


class SchemaNewer(RuntimeError):
    """The loader's file was made by a newer release: this one must not touch it."""


class LoaderBusy(RuntimeError):
    """Another process holds the loader's DuckDB file."""


@dataclass
class LoadResult:
    events: int
    batches: int
    position: int
    published_generation: int | None
    seconds: float


def _schema_sql() -> str:
    return (Path(__file__).resolve().parent / "schema.sql").read_text()


def connect_writer(path: Path) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:  # the file lock of another process
        raise LoaderBusy(f"the warehouse loader is already running ({exc})") from exc
    # Month partitions and all stored times are UTC; local time is applied
    # only in reports, so the facts do not depend on LIANXIN_TZ.
    run(con, "SET TimeZone = 'UTC'")
    # A batch writes tens of MB; checkpointing after every commit (the 16 MB
    # default) made COMMIT the loader's slowest step. The WAL is replayed
    # on the next open, so a crash loses nothing committed.
    run(con, "SET checkpoint_threshold = '1GB'")
    run(con, _schema_sql())
    found = run(con, "SELECT max(version) FROM schema_info")[0][0]
    if found is None:
        run(con, "INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
    elif found > SCHEMA_VERSION:
        con.close()
        raise SchemaNewer(f"{path} has warehouse schema {found}, newer than this release's "
                          f"{SCHEMA_VERSION}: load it with the release that made it")
    elif found != SCHEMA_VERSION:
        con.close()
        raise SchemaOutdated(f"{path} has warehouse schema {found}, this version needs "
                             f"{SCHEMA_VERSION}: run `lianxin warehouse load --rebuild`")
    if run(con, "SELECT count(*) FROM loader_state")[0][0] == 0:
        run(con, "INSERT INTO loader_state VALUES (1, 0, NULL, 0, 0)")
    return con


# Set to "notifications" to read through the library's select_notifications
# and to_arrow even when the recorder can read columns (for comparisons).
READ_ENV = "LIANXIN_WAREHOUSE_READ"


class _Positions(Sequence[Any]):
    """A columnar batch's positions, shaped as the notifications the loader
    otherwise gets (``len`` and ``[i].id``), without an object per row."""

    __slots__ = ("_positions",)

    class _At:
        __slots__ = ("id",)

        def __init__(self, position: int) -> None:
            self.id = position

    def __init__(self, positions: Sequence[int]) -> None:
        self._positions = positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return _Positions(self._positions[i])
        return self._At(self._positions[i])


class Loader:
    def __init__(self, recorder: Any, directory: Path, *, mapper: Any | None = None,
                 timezone: str = "Asia/Shanghai", calendar: Any | None = None) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.directory = Path(directory)
        self.timezone = timezone
        self.calendar = calendar
        self.db_path = self.directory / "loader.duckdb"
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- connection ------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect_writer(self.db_path)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def position(self) -> int:
        return int(run(self.con, "SELECT position FROM loader_state")[0][0])

    # -- loading -----------------------------------------------------------------
    def rebuild(self, **kwargs: Any) -> LoadResult:
        """Drop every derived table and load again from position 0. The
        published catalog stays readable until the rebuilt one replaces it."""
        self.close()
        generation = 0
        if self.db_path.exists():
            try:
                con = duckdb.connect(str(self.db_path), read_only=False)
            except duckdb.IOException as exc:
                raise LoaderBusy(f"the warehouse loader is already running ({exc})") from exc
            try:
                generation = int(run(con, "SELECT generation FROM loader_state")[0][0])
            except duckdb.Error:
                generation = 0
            con.close()
            self.db_path.unlink()
            Path(str(self.db_path) + ".wal").unlink(missing_ok=True)
        # Generations keep counting up, so file names never repeat.
        run(self.con, "UPDATE loader_state SET generation = ?", [generation])
        return self.load(**kwargs)

    def load(self, *, batch_size: int = DEFAULT_BATCH, max_batches: int | None = None,
             publish: bool = True, publish_every: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> LoadResult:
        started = time.perf_counter()
        total = batches = 0
        generation = None
        # Reading and decoding the next batch is Python work; DuckDB releases
        # the GIL while it builds the facts of the current one, so the two
        # overlap on separate cores. The prefetch only reads: what counts as
        # loaded is the position committed with the data.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wh-read") as pool:
            pending = pool.submit(self._fetch, self.position(), batch_size)
            while max_batches is None or batches < max_batches:
                notifications, arrow_batch = pending.result()
                if not notifications:
                    break
                pending = pool.submit(self._fetch, int(notifications[-1].id), batch_size)
                self._apply(notifications, arrow_batch)
                total += len(notifications)
                batches += 1
                if progress is not None:
                    progress(batches, self.position())
                if publish and publish_every and batches % publish_every == 0:
                    generation = self.publish()
            pending.cancel()
        if publish:
            generation = self.publish()
        return LoadResult(total, batches, self.position(), generation,
                          time.perf_counter() - started)

    def _fetch(self, start: int, batch_size: int) -> tuple[Sequence[Any], Any]:
        if os.environ.get(READ_ENV) != "notifications" and reads_columns(self.recorder,
                                                                         self.mapper):
            # One query, five columns, no Notification or UUID per row.
            columns = self.recorder.select_notification_columns(start, batch_size,
                                                                inclusive_of_start=False)
            positions = columns[0]
            if not positions:
                return (), None
            return _Positions(positions), columns_to_arrow(columns, self.mapper)
        notifications = self.recorder.select_notifications(start, batch_size,
                                                           inclusive_of_start=False)
        if not notifications:
            return notifications, None
        return notifications, to_arrow(notifications, self.mapper)

    def load_batch(self, batch_size: int = DEFAULT_BATCH) -> int:
        notifications, arrow_batch = self._fetch(self.position(), batch_size)
        if notifications:
            self._apply(notifications, arrow_batch)
        return len(notifications)

    def _apply(self, notifications: Sequence[Any], arrow_batch: Any) -> None:
        con = self.con
        previous = self.position()
        if int(notifications[0].id) <= previous:
            raise RuntimeError("batch does not follow the loader position")
        con.register("arrow_batch", arrow_batch)
        try:
            run(con, "BEGIN TRANSACTION")
            run(con, facts.INSERT_BATCH.replace("$prev", str(previous)))
            self._agents(con)
            self._calls(con)
            self._work_orders(con)
            run(con, facts.DIM_AGENT)
            run(con, 
                "UPDATE loader_state SET position = ?, "
                "as_of_time = greatest(as_of_time, (SELECT max(occurred_at) FROM batch))",
                [int(notifications[-1].id)])
            run(con, "COMMIT")
        except BaseException:
            run(con, "ROLLBACK")
            raise
        finally:
            con.unregister("arrow_batch")

    @staticmethod
    def _low(con: duckdb.DuckDBPyConnection, sql: str) -> int | None:
        value = run(con, sql)[0][0]
        return None if value is None else int(value)

    def _agents(self, con: duckdb.DuckDBPyConnection) -> None:
        run(con, facts.AGENT_TOUCHED)
        low = self._low(con, "SELECT min(from_pos) FROM t_agent")
        run(con, facts.AGENT_OLD)
        run(con, facts.AGENT_INSERT.replace("$lo", str(low if low is not None else 0)))
        run(con, facts.AGENT_DIRTY)

    def _calls(self, con: duckdb.DuckDBPyConnection) -> None:
        run(con, facts.CALL_TOUCHED)
        low = self._low(con, facts.CALL_LOW)
        if low is None:  # only wrap-up of calls whose rows are gone: nothing to scan
            low = 0
        run(con, facts.CALL_OLD)
        run(con, facts.CALL_EVENTS.replace("$lo", str(low)))
        run(con, facts.LEG_INSERT)
        run(con, facts.CALL_INSERT)

    def _work_orders(self, con: duckdb.DuckDBPyConnection) -> None:
        run(con, facts.WO_TOUCHED)
        low = self._low(con, facts.WO_LOW)
        if low is None:
            return
        run(con, facts.WO_REPLACE.replace("$lo", str(low)))

    # -- publishing ----------------------------------------------------------------
    def publish(self) -> int:
        from warehouse.publish import publish

        return publish(self.con, self.directory, timezone=self.timezone, calendar=self.calendar)
