"""The DuckDB warehouse: loader, KPI catalog, reports.

Notebook use::

    import warehouse
    df = warehouse.kpis(by="queue", interval="day", kpi=["offered", "service_level"])
"""

from __future__ import annotations

from typing import Any


def kpis(*args: Any, **kwargs: Any) -> Any:
    """A KPI report as a Polars DataFrame (see ``warehouse.notebook.kpis``)."""
    from warehouse.notebook import kpis as _kpis

    return _kpis(*args, **kwargs)
