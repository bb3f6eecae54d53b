"""The warehouse as the rest of Lianxin sees it: load, status, report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from warehouse.loader import Loader, LoadResult, SchemaOutdated
from warehouse.publish import load_calendar
from warehouse.reader import status as read_status
from warehouse.report import Report, ReportRequest, run_report


log = logging.getLogger(__name__)


def loader_for(lianxin: Any) -> Loader:
    s = lianxin.settings
    return Loader(lianxin.app.recorder, s.warehouse_dir, mapper=lianxin.app.mapper,
                  timezone=s.timezone, calendar=load_calendar(timezone=s.timezone))


def load(lianxin: Any, *, rebuild: bool = False, batch_size: int | None = None,
         publish_every: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> LoadResult:
    loader = loader_for(lianxin)
    kwargs: dict[str, Any] = {"publish_every": publish_every, "progress": progress}
    if batch_size:
        kwargs["batch_size"] = batch_size
    try:
        if rebuild:
            return loader.rebuild(**kwargs)
        try:
            return loader.load(**kwargs)
        except SchemaOutdated as exc:
            # The warehouse is derived from the events alone, and the published
            # catalog stays readable while it is rebuilt: an upgrade rebuilds it
            # rather than leave the operator a command to type.
            log.warning("%s; rebuilding it from the events now", str(exc).split(":")[0])
            return loader.rebuild(**kwargs)
    finally:
        loader.close()


def status(directory: Path, store_position: int | None = None) -> dict[str, Any]:
    out = read_status(directory)
    if store_position is not None:
        out["store_position"] = store_position
        out["lag_events"] = max(0, store_position - int(out["as_of_position"] or 0))
    return out


def report(directory: Path, req: ReportRequest) -> Report:
    return run_report(directory, req)
