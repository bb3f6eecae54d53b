"""The ``lianxin`` console script. Each area adds its commands from its own
module (``lianxin.cli.<area>.register``), so areas never edit each other."""

from __future__ import annotations

import typer

from lianxin.cli import audit, core, relay, telephony, warehouse, work_orders
from lianxin.cli import imports

app = typer.Typer(no_args_is_help=True, help="Lianxin call-center backend")
for _area in (core, telephony, warehouse, work_orders, audit, relay, imports):
    _area.register(app)


def main() -> None:
    app()
