"""docs/kpis.md lists the catalog exactly as warehouse/kpis.toml defines it."""

from __future__ import annotations

from pathlib import Path

from warehouse.catalog import catalog, markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "kpis.md"


def test_docs_show_every_definition_as_defined():
    text = DOC.read_text()
    assert markdown() in text, "docs/kpis.md is out of date: regenerate its catalog section"
    for kid in catalog():
        assert f"#### `{kid}` (v" in text


def test_every_kpi_renders_with_its_defaults():
    import duckdb

    con = duckdb.connect()
    for k in catalog().values():
        sql = k.render(k.defaults())
        assert "{" not in sql, k.id
        # Parses as an aggregate expression (binds columns lazily: EXPLAIN is enough).
        try:
            con.execute(f"EXPLAIN SELECT {sql} FROM (SELECT 1) t").fetchall()
        except duckdb.BinderException:
            pass  # columns of the fact are unknown here; syntax was accepted
