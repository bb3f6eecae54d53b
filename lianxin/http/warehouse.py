"""HTTP routes: the warehouse and the KPI catalog.

GET  /warehouse/status     what the published catalog holds, lag behind the store
POST /warehouse/load       run the loader in this process (?rebuild=true)
GET  /kpis                 the catalog
GET  /kpis/{id}            one definition
GET  /kpis/report          a report (same options as `lianxin kpi report`);
                           format=json (default) | csv | parquet

Reports read the published catalog only, so they work while a separate
`lianxin warehouse load` process writes.
"""

from __future__ import annotations

from typing import Any, List, Optional

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from lianxin.http.problems import problem_response
from warehouse.catalog import ReportError, catalog
from warehouse.loader import LoaderBusy, SchemaNewer, SchemaOutdated
from warehouse.reader import NotLoaded

router = APIRouter(tags=["warehouse"])
PROBLEMS = "https://lianxin.dev/problems/"
# format -> (media type, file name). JSON carries the meta (versions,
# parameters, attribution, as-of) in its body; csv and parquet carry it in
# response headers, and parquet also inside the file, as
# `lianxin kpi report --format parquet` writes it.
FORMATS = {"csv": ("text/csv; charset=utf-8", "kpis.csv"),
           "parquet": ("application/vnd.apache.parquet", "kpis.parquet")}


def _unprocessable(exc: ReportError) -> Any:
    return problem_response(422, "Unprocessable report request", exc.message,
                            type_=PROBLEMS + "invalid-report", field=exc.field)


def _not_loaded(exc: NotLoaded) -> Any:
    return problem_response(409, "Warehouse not loaded", str(exc), type_=PROBLEMS + "not-loaded")


@router.get("/kpis")
def list_kpis() -> list[dict[str, Any]]:
    return [k.describe() for k in catalog().values()]


@router.get("/kpis/report")
def kpi_report(
    request: Request,
    kpi: Optional[str] = Query(None, description="comma-separated KPI ids"),
    by: Optional[str] = None,
    interval: Optional[str] = None,
    date_from: Optional[str] = Query(None, alias="from"),
    date_to: Optional[str] = Query(None, alias="to"),
    param: List[str] = Query([], description="kpi.param=value, repeatable"),
    attribution: str = "offered",
    compare: Optional[str] = None,
    fmt: str = Query("json", alias="format", description="json | csv | parquet"),
) -> Any:
    from warehouse.report import ReportRequest, run_report

    if fmt != "json" and fmt not in FORMATS:
        return _unprocessable(ReportError(
            f"format must be one of json, {', '.join(FORMATS)}, not {fmt!r}", field="format"))
    params: dict[str, str] = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            return _unprocessable(ReportError(
                f"param {item!r}: expected kpi.param=value", field="param"))
        params[key] = value
    req = ReportRequest(kpis=[k for k in (kpi or "").split(",") if k] or None, by=by,
                        interval=interval, date_from=date_from, date_to=date_to,
                        params=params, attribution=attribution, compare=compare)
    try:
        result = run_report(request.app.state.lianxin.settings.warehouse_dir, req)
    except ReportError as exc:
        return _unprocessable(exc)
    except NotLoaded as exc:
        return _not_loaded(exc)
    if fmt == "json":
        return result.to_json()
    media_type, filename = FORMATS[fmt]
    body = result.to_csv().encode() if fmt == "csv" else result.to_parquet()
    as_of = result.meta["as_of"]
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        # The whole meta as compact JSON (about 3 KB with every KPI), and the
        # as-of position on its own for clients that only need that.
        "Lianxin-Report-Meta": result.meta_json(),
        "Lianxin-As-Of-Position": str(as_of["position"]),
        "Lianxin-As-Of-Generation": str(as_of["generation"]),
    })


@router.get("/kpis/{kpi_id}")
def get_kpi(kpi_id: str) -> Any:
    k = catalog().get(kpi_id)
    if k is None:
        return problem_response(404, "Unknown KPI", f"no KPI {kpi_id!r} in the catalog",
                                type_=PROBLEMS + "not-found", field="kpi")
    return k.describe()


@router.get("/warehouse/status")
def warehouse_status(request: Request) -> Any:
    from warehouse.service import status

    lx = request.app.state.lianxin
    try:
        return status(lx.settings.warehouse_dir, lx.app.max_position())
    except NotLoaded as exc:
        return _not_loaded(exc)


@router.post("/warehouse/load")
async def warehouse_load(request: Request, rebuild: bool = False) -> Any:
    from warehouse.service import load

    lx = request.app.state.lianxin
    try:
        result = await run_in_threadpool(load, lx, rebuild=rebuild)
    except LoaderBusy as exc:
        return problem_response(409, "Loader busy", str(exc), type_=PROBLEMS + "loader-busy")
    except SchemaOutdated as exc:
        return problem_response(409, "Warehouse must be rebuilt", str(exc),
                                type_=PROBLEMS + "schema-outdated")
    except SchemaNewer as exc:
        return problem_response(409, "Warehouse of a newer release", str(exc),
                                type_=PROBLEMS + "schema-newer")
    return {"events": result.events, "batches": result.batches, "position": result.position,
            "generation": result.published_generation, "seconds": round(result.seconds, 3)}
