"""CLI commands: ``lianxin warehouse load|status`` and ``lianxin kpi list|report``.

Exit codes: 0 ok, 1 the warehouse cannot do it now (not loaded yet, the
loader already running), 2 bad options (the message names the option).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import typer

from lianxin.cli.core import group


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Any:
    from lianxin.settings import Settings

    return Settings.from_env()


def _parse_params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            _fail(f"--param {item!r}: expected kpi.param=value (e.g. service_level.threshold_s=20)")
        out[key.strip()] = value.strip()
    return out


def _table(frame: Any, meta: dict[str, Any]) -> str:
    import polars as pl

    lines = [f"# as of position {meta['as_of']['position']} ({meta['as_of']['time']}), "
             f"attribution: {meta['attribution']}, timezone {meta['timezone']}"]
    for kid, spec in meta["kpis"].items():
        params = ", ".join(f"{k}={v}" for k, v in spec["params"].items())
        lines.append(f"# {kid} v{spec['version']}" + (f" ({params})" if params else ""))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=60_000, float_precision=3):
        lines.append(str(frame))
    return "\n".join(lines)


def register(root: typer.Typer) -> None:
    wh = group(root, "warehouse", help="The DuckDB warehouse: load events into facts")
    kpi = group(root, "kpi", help="The KPI catalog and reports")

    @wh.command("load")
    def load(rebuild: bool = typer.Option(False, "--rebuild", help="drop the facts and reload from position 0"),
             batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
             publish_every: Optional[int] = typer.Option(None, "--publish-every", min=1,
                                                         help="publish a snapshot every N batches"),
             progress: bool = typer.Option(False, "--progress", help="print a line per batch")) -> None:
        """Load new events (incremental, exactly-once) and publish the catalog."""
        from lianxin.wiring import build
        from warehouse.loader import LoaderBusy, SchemaNewer, SchemaOutdated
        from warehouse.service import load as do_load

        def report_progress(batches: int, position: int) -> None:
            typer.echo(f"batch {batches} position {position}")
            sys.stdout.flush()

        lx = build()
        try:
            result = do_load(lx, rebuild=rebuild, batch_size=batch_size, publish_every=publish_every,
                             progress=report_progress if progress else None)
        except (LoaderBusy, SchemaNewer, SchemaOutdated) as exc:
            _fail(str(exc), 1)
        finally:
            lx.close()
        rate = result.events / result.seconds if result.seconds else 0.0
        typer.echo(json.dumps({"events": result.events, "batches": result.batches,
                               "position": result.position,
                               "generation": result.published_generation,
                               "seconds": round(result.seconds, 3),
                               "events_per_s": round(rate)}))

    @wh.command("status")
    def status() -> None:
        """What the published catalog holds and how far behind the store it is."""
        from warehouse.reader import NotLoaded
        from warehouse.service import status as do_status

        try:
            typer.echo(json.dumps(do_status(_settings().warehouse_dir), indent=2, default=str))
        except NotLoaded as exc:
            _fail(str(exc), 1)

    @kpi.command("list")
    def list_kpis(fmt: str = typer.Option("table", "--format", help="table|json")) -> None:
        """Print the catalog: every KPI's definition, parameters and version."""
        from warehouse.catalog import catalog

        if fmt not in ("table", "json"):
            _fail(f"--format must be table or json, not {fmt!r}")
        items = [k.describe() for k in catalog().values()]
        if fmt == "json":
            typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
            return
        for k in items:
            params = ", ".join(f"{n}={p['default']}" for n, p in k["params"].items())
            typer.echo(f"{k['id']} (v{k['version']}, {k['source']}){' [' + params + ']' if params else ''}")
            typer.echo(f"    {k['description']}")
            typer.echo(f"    = {k['formula']}")

    @kpi.command("report")
    def report(
        by: Optional[str] = typer.Option(None, "--by", help="queue|agent|team|skill|ivr_path|work_order_type|department"),
        interval: Optional[str] = typer.Option(None, "--interval", help="15m|30m|60m|day|week|month|year"),
        date_from: Optional[str] = typer.Option(None, "--from", help="first local date, YYYY-MM-DD"),
        date_to: Optional[str] = typer.Option(None, "--to", help="last local date (inclusive)"),
        kpis: Optional[str] = typer.Option(None, "--kpi", help="comma-separated KPI ids"),
        param: List[str] = typer.Option([], "--param", help="kpi.param=value, repeatable"),
        attribution: str = typer.Option("offered", "--attribution", help="offered|answered|ended"),
        compare: Optional[str] = typer.Option(None, "--compare", help="mom|yoy"),
        fmt: str = typer.Option("table", "--format", help="table|csv|json|parquet"),
        output: Optional[Path] = typer.Option(None, "--output", help="file to write (parquet needs one)"),
    ) -> None:
        """KPIs by interval and dimension, with versions, parameters and as-of."""
        from warehouse.catalog import ReportError
        from warehouse.reader import NotLoaded
        from warehouse.report import ReportRequest, run_report

        if fmt not in ("table", "csv", "json", "parquet"):
            _fail(f"--format must be table, csv, json or parquet, not {fmt!r}")
        if fmt == "parquet" and output is None:
            _fail("--format parquet needs --output FILE")
        ids = [k.strip() for k in kpis.split(",") if k.strip()] if kpis else None
        req = ReportRequest(kpis=ids, by=by, interval=interval, date_from=date_from,
                            date_to=date_to, params=_parse_params(param),
                            attribution=attribution, compare=compare)
        try:
            result = run_report(_settings().warehouse_dir, req)
        except ReportError as exc:
            _fail(f"--{exc.field}: {exc.message}" if exc.field else exc.message)
        except NotLoaded as exc:
            _fail(str(exc), 1)
        frame, meta = result.frame, result.meta
        if fmt == "parquet":
            assert output is not None
            output.write_bytes(result.to_parquet())
            typer.echo(json.dumps({"rows": frame.height, "output": str(output)}))
            return
        if fmt == "json":
            text = json.dumps(result.to_json(), indent=2, default=str, ensure_ascii=False)
        elif fmt == "csv":
            text = result.to_csv()
            # CSV has no place for metadata: it goes next to the file, or to stderr.
            if output is not None:
                Path(str(output) + ".meta.json").write_text(json.dumps(meta, indent=2, default=str))
            else:
                typer.echo(json.dumps(meta, default=str), err=True)
        else:
            text = _table(frame, meta)
        if output is not None:
            output.write_text(text)
        else:
            typer.echo(text)
