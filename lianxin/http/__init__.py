"""The FastAPI app factory. Each area's routes live in their own module
(``lianxin.http.<area>``) and are included here; errors become RFC 7807
problem documents (see ``lianxin.http.problems``). Idempotency keys are bound
to the request that first used them in a table of the event store (see
``lianxin.http.idempotency``).

The core router is included last: where an area defines a specialised route
for the same method and path (e.g. opening a work order with duplicate-fault
merge), the area's route is the one that answers and core's generic command
route stays as the fallback.

The read models' runner starts with the app and stops with it; background
services (``lianxin.wiring.register_service``) start only when asked
(``lianxin serve``), so tests and embedded uses stay quiet.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from lianxin.http import audit, core, idempotency, problems, telephony, warehouse, work_orders
from lianxin.http import imports
from lianxin.wiring import Lianxin, build

AREAS = (telephony, warehouse, work_orders, audit, imports, core)


def create_app(lianxin: Lianxin | None = None, *, services: bool = False) -> FastAPI:
    owned = lianxin is None
    instance = lianxin or build()

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        instance.read_models(start=True)
        if services:
            instance.start_services()
        try:
            yield
        finally:
            stopping = instance.parts.get("services")
            if stopping is not None:
                stopping.close()
            instance.read_models().stop()
            if owned:
                instance.close()

    api = FastAPI(title="Lianxin", version="0.1.0",
                  description="Event-sourced call-center backend", lifespan=lifespan)
    api.state.lianxin = instance
    problems.install(api)
    idempotency.install(api)
    core.install(api)
    for area in AREAS:
        api.include_router(area.router)
    return api
