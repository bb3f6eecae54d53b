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


def test_every_kpi_runs_on_the_small_day_with_its_defaults(small_day_sqlite):
    """Each definition is executed against real facts: alone, all together
    (the same values), by every dimension it allows and over every interval."""
    import pytest

    from warehouse import kpis
    from warehouse.report import DIMENSION_COLUMN, INTERVALS

    lx, _ = small_day_sqlite
    d = lx.settings.warehouse_dir
    together = kpis(None, directory=d).to_dicts()[0]
    assert set(together) == set(catalog())
    for k in catalog().values():
        sql = k.render(k.defaults())
        assert "{" not in sql, k.id
        alone = kpis([k.id], directory=d)
        assert alone.columns == [k.id] and alone.height == 1, k.id
        assert alone[k.id][0] == pytest.approx(together[k.id]), k.id
    # Every KPI has a value on this day but one: the only callback task is
    # still pending before its due time, so its rate is undecided.
    assert [k for k, v in together.items() if v is None] == ["callback_within_deadline"]
    for source, dims in DIMENSION_COLUMN.items():
        ids = [k.id for k in catalog().values() if k.source == source]
        for dim in dims:
            df = kpis(ids, by=dim, directory=d)
            assert df.height >= 1 and df.columns == [dim, *ids], (source, dim)
    for interval in INTERVALS:
        df = kpis(None, interval=interval, directory=d)
        assert df.height >= 1 and df.columns[0] == "interval_start", interval


def test_every_choice_of_every_parameter_runs(small_day_sqlite):
    from warehouse import kpis
    from warehouse.catalog import ReportError

    lx, _ = small_day_sqlite
    for k in catalog().values():
        for name, p in k.params.items():
            for choice in p.choices:
                try:
                    df = kpis([k.id], directory=lx.settings.warehouse_dir,
                              params={f"{k.id}.{name}": choice})
                except ReportError as exc:  # a refused combination with the defaults
                    assert exc.field == "param" and f"{name}={choice}" in exc.message
                    continue
                assert df.height == 1, (k.id, name, choice)
