"""Superset datasets as code, over the published catalog via duckdb-engine.

Each dataset is a KPI report (same catalog definitions, same SQL as
``lianxin kpi report``) without a period filter: Superset adds its own time
filter on ``interval_start``. ``export_bundle`` writes a Superset import
bundle (database + datasets, the v1 export layout; JSON is valid YAML).

    python -m dashboards.superset $LIANXIN_HOME/warehouse lianxin-superset.zip

The database is opened read-only (``connect_args: {read_only: true}``), so
Superset never holds the loader's lock; it reads whichever catalog
generation is current when it connects.

Not verified here: importing the bundle into a running Superset (none is
installed in this environment). The dataset SQL itself is tested through
duckdb-engine against a real catalog.
"""

from __future__ import annotations

import json
import sys
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from warehouse.catalog import catalog, resolve_params
from warehouse.reader import open_catalog, read_meta
from warehouse.report import LocalTime, ReportRequest, _source_query

NS = uuid.UUID("5b0c3c8e-8e1e-4b5e-9a57-6c1a2f0f0d11")


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    kpis: tuple[str, ...]
    by: str | None
    interval: str
    params: dict[str, Any] = field(default_factory=dict)
    attribution: str = "offered"


DATASETS = (
    Dataset("calls_by_queue_30m", "Queue performance per 30 minutes",
            ("offered", "answered", "abandoned", "short_abandoned", "service_level", "asa_s",
             "avg_wait_s", "max_wait_s", "abandon_rate", "aht_s"), "queue", "30m"),
    Dataset("calls_by_agent_day", "Agents' calls per day",
            ("answered", "avg_talk_s", "avg_hold_s", "avg_acw_s", "aht_s", "alert_to_answer_s",
             "transfer_rate"), "agent", "day"),
    Dataset("agent_time_by_team_60m", "Occupancy and utilization per team and hour",
            ("occupancy", "utilization", "logged_in_s"), "team", "60m"),
    Dataset("work_orders_by_type_day", "Work orders per type and day",
            ("work_orders", "dispatched_within", "resolved_within_deadline", "overdue"),
            "work_order_type", "day"),
)


def dataset_sql(ds: Dataset, tz: str) -> str:
    kpis = [catalog()[k] for k in ds.kpis]
    sources = {k.source for k in kpis}
    if len(sources) != 1:
        raise ValueError(f"dataset {ds.name}: KPIs of one fact per dataset")
    req = ReportRequest(kpis=list(ds.kpis), by=ds.by, interval=ds.interval,
                        params=dict(ds.params), attribution=ds.attribution)
    values = resolve_params(kpis, req.params)
    return _source_query(sources.pop(), kpis, values, req, LocalTime(tz, None, None), None, None)


def _columns(ds: Dataset) -> list[dict[str, Any]]:
    cols = [{"column_name": "interval_start", "is_dttm": True, "type": "TIMESTAMP",
             "groupby": True, "filterable": True}]
    if ds.by:
        cols.append({"column_name": ds.by, "is_dttm": False, "type": "VARCHAR",
                     "groupby": True, "filterable": True})
    for k in ds.kpis:
        kpi = catalog()[k]
        cols.append({"column_name": k, "is_dttm": False, "type": "DOUBLE", "groupby": False,
                     "filterable": True,
                     "description": f"{kpi.description} (v{kpi.version}): {kpi.formula}"})
    return cols


def export_bundle(directory: Path, target: Path) -> list[str]:
    directory = Path(directory).resolve()
    with open_catalog(directory) as con:
        tz = read_meta(con)["timezone"]
    db_uuid = str(uuid.uuid5(NS, str(directory)))
    stamp = datetime.now(timezone.utc).isoformat()
    files: dict[str, Any] = {
        "metadata.yaml": {"version": "1.0.0", "type": "Dataset", "timestamp": stamp},
        "databases/lianxin_warehouse.yaml": {
            "database_name": "lianxin_warehouse",
            "sqlalchemy_uri": f"duckdb:///{directory / 'catalog.duckdb'}",
            "expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False,
            "allow_cvas": False, "allow_dml": False,
            "extra": json.dumps({"engine_params": {"connect_args": {"read_only": True}}}),
            "uuid": db_uuid, "version": "1.0.0"},
    }
    for ds in DATASETS:
        files[f"datasets/lianxin_warehouse/{ds.name}.yaml"] = {
            "table_name": ds.name, "main_dttm_col": "interval_start",
            "description": ds.description, "sql": dataset_sql(ds, tz), "schema": "main",
            "columns": _columns(ds), "metrics": [], "params": None, "extra": None,
            "uuid": str(uuid.uuid5(NS, ds.name)), "database_uuid": db_uuid, "version": "1.0.0"}
    with zipfile.ZipFile(target, "w") as zf:
        for name, doc in files.items():
            zf.writestr(f"lianxin_superset/{name}", json.dumps(doc, indent=2))
    return sorted(files)


if __name__ == "__main__":
    print("\n".join(export_bundle(Path(sys.argv[1]), Path(sys.argv[2]))))
