"""The FastAPI app factory. Each area's routes live in their own module
(``lianxin.http.<area>``) and are included here; errors become RFC 7807
problem documents (see ``lianxin.http.problems``)."""

from __future__ import annotations

from fastapi import FastAPI

from lianxin.http import audit, core, telephony, warehouse, work_orders
from lianxin.wiring import Lianxin, build

AREAS = (core, telephony, warehouse, work_orders, audit)


def create_app(lianxin: Lianxin | None = None) -> FastAPI:
    api = FastAPI(title="Lianxin", version="0.1.0",
                  description="Event-sourced call-center backend")
    api.state.lianxin = lianxin or build()
    for area in AREAS:
        api.include_router(area.router)
    return api
