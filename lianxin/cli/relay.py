"""CLI commands: the NATS JetStream relay."""

from __future__ import annotations

import asyncio
import signal

import typer

relay_app = typer.Typer(no_args_is_help=True, help="Fan the event log out to NATS JetStream.")


@relay_app.command("nats")
def relay_nats(
    url: str = typer.Option("nats://127.0.0.1:4222", envvar="LIANXIN_NATS_URL"),
    stream: str = typer.Option("LIANXIN_EVENTS", help="JetStream stream name"),
    prefix: str = typer.Option("lianxin.events", help="subject prefix"),
    once: bool = typer.Option(False, "--once", help="publish what is there, then exit"),
) -> None:
    """Publish every event after the stream's last one; keep following unless --once."""
    from lianxin.wiring import build
    from projections.nats_relay import NatsRelay

    lx = build()

    async def main() -> None:
        relay = NatsRelay(lx.app, url, stream=stream, prefix=prefix)
        try:
            await relay.connect()
        except Exception as exc:  # noqa: BLE001 - told to the operator, exit != 0
            typer.echo(f"cannot reach NATS at {url}: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"relaying to {url} stream {stream} from position {relay.stats.position}")
        if once:
            await relay.relay_once()
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await relay.run(stop)
        await relay.close()
        typer.echo(f"published {relay.stats.published} events "
                   f"({relay.stats.duplicates} duplicates dropped), at position {relay.stats.position}")

    try:
        asyncio.run(main())
    finally:
        lx.close()


def register(root: typer.Typer) -> None:
    root.add_typer(relay_app, name="relay")
