"""Wiring: builds the one CallCenter application and everything around it
from Settings. The HTTP app, the CLI, tests and benchmarks all start here.

Two registries let other areas plug in without editing this file:

* ``register_projection(factory)``: ``factory(settings) -> Projection``. The
  read models (``Lianxin.read_models()``) run every registered projection in
  one ProjectionRunner over ``read_models.sqlite``. Modules of the
  ``projections`` package are imported when the read models start, so a
  module there that calls ``register_projection`` at import time is found
  without any other edit.
* ``register_service(factory)``: ``factory(lianxin) -> obj`` with ``start()``
  and ``stop()``: background loops (timers, relays) that ``lianxin serve``
  starts after the read models and stops before them.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from commands.application import CallCenter
from commands.handlers import HandlerContext
from commands.service import CommandService
from lianxin.settings import Settings

log = logging.getLogger(__name__)

ProjectionFactory = Callable[[Settings], Any]
ServiceFactory = Callable[["Lianxin"], Any]

PROJECTION_FACTORIES: list[ProjectionFactory] = []
SERVICE_FACTORIES: list[ServiceFactory] = []


def register_projection(factory: ProjectionFactory) -> ProjectionFactory:
    """Add a read model (usable as a decorator). Registering twice is a no-op."""
    if factory not in PROJECTION_FACTORIES:
        PROJECTION_FACTORIES.append(factory)
    return factory


def register_service(factory: ServiceFactory) -> ServiceFactory:
    """Add a background service started by ``lianxin serve``."""
    if factory not in SERVICE_FACTORIES:
        SERVICE_FACTORIES.append(factory)
    return factory


def _core_projections(settings: Settings) -> list[Any]:
    from projections.agent_board import AgentBoardProjection
    from projections.call_timeline import CallTimelineProjection
    from projections.wallboard import WallboardProjection

    return [WallboardProjection(settings.timezone), AgentBoardProjection(),
            CallTimelineProjection()]


def _discover_projection_modules() -> None:
    import projections

    for info in pkgutil.iter_modules(projections.__path__):
        if info.name.startswith("_") or info.name in ("runner", "timefmt"):
            continue
        importlib.import_module(f"projections.{info.name}")


def projections_for(settings: Settings) -> list[Any]:
    """Every projection: the core ones, then those other areas registered."""
    _discover_projection_modules()
    found = list(_core_projections(settings))
    for factory in PROJECTION_FACTORIES:
        made = factory(settings)
        found.extend(made if isinstance(made, (list, tuple)) else [made])
    return found


@dataclass
class Lianxin:
    settings: Settings
    app: CallCenter
    commands: CommandService
    # Other parts (read models, warehouse, audit, telephony) attach themselves
    # here lazily, keyed by name, so this container does not import them all.
    parts: dict[str, Any] = field(default_factory=dict)

    def read_models(self, *, start: bool = False) -> Any:
        """The ProjectionRunner over every registered projection (created
        once, woken by each commit of this process's command bus).
        ``start=True`` also starts its background thread."""
        runner = self.parts.get("read_models")
        if runner is None:
            from projections.runner import ProjectionRunner

            self.settings.ensure_home()
            runner = ProjectionRunner(self.app, self.settings.read_models_path,
                                      projections_for(self.settings))
            self.commands.bus.on_commit(runner.notify)
            self.parts["read_models"] = runner
        if start:
            runner.start()
        return runner

    def start_services(self) -> list[Any]:
        services = self.parts.setdefault("services", _Services())
        if not services.items:
            for factory in SERVICE_FACTORIES:
                service = factory(self)
                service.start()
                services.items.append(service)
        return services.items

    def close(self) -> None:
        for part in reversed(list(self.parts.values())):
            close = getattr(part, "close", None)
            if callable(close):
                close()
        self.parts.clear()
        self.app.close()


class _Services:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def close(self) -> None:
        for service in reversed(self.items):
            try:
                service.stop()
            except Exception:  # noqa: BLE001 - stop the others regardless
                log.exception("stopping %r failed", service)
        self.items.clear()


def attach_work_order_rules(ctx: HandlerContext, settings: Settings) -> None:
    """The work-order policy and calendar the settings name (a bad file fails
    here, at start-up, naming the file)."""
    from commands.work_order_rules import load_rules

    ctx.work_order_rules = load_rules(settings.work_order_policy,  # type: ignore[attr-defined]
                                      settings.calendar, settings.timezone)


# Python's cyclic GC runs a generation-0 pass every 700 net allocations and
# a full pass every few dozen of those; a busy batch allocates several dicts
# per event, so under load the collector took ~6% of the write path (0.49 s
# of 8.1 s, 1,000 calls in flight; 0.04 s with these thresholds). The events
# and aggregates form few cycles: collecting less often only delays freeing
# the rare cycle (an exception's traceback, asyncio internals).
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    import gc

    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)


def build(settings: Settings | None = None, *, batching: bool = True) -> Lianxin:
    settings = settings or Settings.from_env()
    tune_gc()
    app = CallCenter(env=settings.eventsourcing_env())
    ctx = HandlerContext(pseudonym_key=settings.caller_hash_key())
    attach_work_order_rules(ctx, settings)
    return Lianxin(settings=settings, app=app,
                   commands=CommandService(app, ctx, batching=batching))
