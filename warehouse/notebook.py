"""``warehouse.kpis(...)``: a KPI report as a Polars DataFrame, for notebooks.

Reads the published catalog only, so it works while the loader runs. The
report's meta (versions, parameters, attribution, as-of) is attached as
``df.attrs``-like metadata via ``kpis(..., with_meta=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from warehouse.report import ReportRequest, run_report


def kpis(kpi: list[str] | str | None = None, *, by: str | None = None,
         interval: str | None = None, date_from: Any = None, date_to: Any = None,
         params: dict[str, Any] | None = None, attribution: str = "offered",
         compare: str | None = None, directory: str | Path | None = None,
         with_meta: bool = False) -> pl.DataFrame | tuple[pl.DataFrame, dict[str, Any]]:
    if directory is None:
        from lianxin.settings import Settings

        directory = Settings.from_env().warehouse_dir
    if isinstance(kpi, str):
        kpi = [k.strip() for k in kpi.split(",") if k.strip()]
    result = run_report(Path(directory), ReportRequest(
        kpis=kpi, by=by, interval=interval, date_from=date_from, date_to=date_to,
        params=dict(params or {}), attribution=attribution, compare=compare))
    return (result.frame, result.meta) if with_meta else result.frame
