"""Superset datasets: their SQL runs through duckdb-engine (SQLAlchemy, as
Superset connects) on the read-only catalog and gives the report's numbers."""

from __future__ import annotations

import json
import zipfile

import pytest
import sqlalchemy as sa

from dashboards.superset import DATASETS, dataset_sql, export_bundle
from warehouse import kpis


@pytest.mark.parametrize("ds", DATASETS, ids=lambda d: d.name)
def test_dataset_sql_equals_the_report(small_day_sqlite, ds):
    lx, _ = small_day_sqlite
    directory = lx.settings.warehouse_dir
    engine = sa.create_engine(f"duckdb:///{directory / 'catalog.duckdb'}",
                              connect_args={"read_only": True})
    with engine.connect() as con:
        rows = con.execute(sa.text(dataset_sql(ds, "Asia/Shanghai"))).mappings().all()
    engine.dispose()
    report = kpis(list(ds.kpis), by=ds.by, interval=ds.interval, directory=directory)
    key = lambda r: (r["interval_start"], r[ds.by])  # noqa: E731
    got = sorted((dict(r) for r in rows), key=key)
    want = sorted(report.to_dicts(), key=key)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in w:
            assert g[k] == pytest.approx(w[k]) if isinstance(w[k], float) else g[k] == w[k], k


def test_bundle_holds_database_and_datasets(small_day_sqlite, tmp_path):
    lx, _ = small_day_sqlite
    target = tmp_path / "bundle.zip"
    export_bundle(lx.settings.warehouse_dir, target)
    with zipfile.ZipFile(target) as zf:
        docs = {n: json.loads(zf.read(n)) for n in zf.namelist()}
    db = docs["lianxin_superset/databases/lianxin_warehouse.yaml"]
    assert json.loads(db["extra"])["engine_params"]["connect_args"]["read_only"] is True
    datasets = [d for n, d in docs.items() if "/datasets/" in n]
    assert {d["table_name"] for d in datasets} == {d.name for d in DATASETS}
    assert all(d["database_uuid"] == db["uuid"] for d in datasets)
