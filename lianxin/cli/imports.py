"""CLI: ``lianxin import queue-log FILE`` (Asterisk queue_log importer).

Exit codes: 0 when every line was imported (or already was), 1 when some
lines were skipped (each is printed as ``line N: ...``; the others are
imported), 2 when the input or an option cannot be used at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import typer

from domain.errors import DomainError


def _group(root: typer.Typer, name: str, help: str) -> typer.Typer:
    # Shared with any other area that imports something: one ``import`` group.
    for info in root.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(no_args_is_help=True, help=help)
    root.add_typer(sub, name=name, help=help)
    return sub


def _read(path: Path) -> str:
    from telephony_adapter.queue_log.source import UnreadableInput, decode

    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        typer.echo(f"error: {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    try:
        return decode(raw)
    except UnreadableInput as exc:
        typer.echo(f"error: {path}: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _print(summary: Any) -> None:
    verb = "would create" if summary.dry_run else "created"
    typer.echo(f"{summary.lines} lines read, {summary.records} records, "
               f"{summary.lines_imported} imported, {summary.skipped_total} skipped")
    typer.echo(f"{verb}: {summary.calls_created} calls, {summary.agents_created} agents, "
               f"{summary.events_created} events ({summary.already_imported} commands "
               f"already imported)")
    if summary.reconstructed_calls:
        typer.echo(f"{summary.reconstructed_calls} calls began before the log "
                   f"(their start was reconstructed)")
    if summary.closed_incomplete:
        typer.echo(f"{len(summary.closed_incomplete)} calls closed because the log lacks their end "
                   f"(cause end_missing_from_log)")
    if summary.live_calls:
        typer.echo(f"{len(summary.live_calls)} calls still in progress at the end of the file")
    if summary.tolerated:
        typer.echo("tolerated: " + ", ".join(f"{k} {v}" for k, v in summary.tolerated.items()))
    for line in summary.lines_report():
        typer.echo(line, err=True)
    if summary.skipped_total > len(summary.skipped):
        typer.echo(f"... and {summary.skipped_total - len(summary.skipped)} more skipped lines",
                   err=True)


def register(root: typer.Typer) -> None:
    imports = _group(root, "import", "Import data from other systems")

    @imports.command("queue-log")
    def queue_log(
        file: Path = typer.Argument(..., help="an Asterisk queue_log file, a table export, "
                                              "gzip-compressed or not; - reads standard input"),
        dry_run: bool = typer.Option(False, "--dry-run",
                                     help="check and count on a scratch store; write nothing"),
        timezone: Optional[str] = typer.Option(
            None, "--timezone", help="zone of text timestamps (default: LIANXIN_TZ)"),
        team: str = typer.Option("imported", "--team", help="team of agents registered on the fly"),
        agent_map: Optional[Path] = typer.Option(
            None, "--agent-map", help="CSV agent,employee_no[,name] or JSON: agent field -> employee"),
        as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ) -> None:
        """Turn an Asterisk queue_log into Lianxin calls and agent states.

        Importing the same file again adds nothing; malformed lines are
        reported with their line number and the rest is imported."""
        from lianxin.settings import Settings
        from lianxin.wiring import build
        from telephony_adapter.queue_log import ImportOptions, import_queue_log, load_agent_map

        text = _read(file)
        try:
            mapping = load_agent_map(agent_map) if agent_map is not None else None
        except OSError as exc:
            typer.echo(f"error: --agent-map {agent_map}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
        except DomainError as exc:
            typer.echo(f"error: --agent-map: {exc.message}", err=True)
            raise typer.Exit(2) from None
        options = ImportOptions(timezone=timezone, team=team, agent_map=mapping, dry_run=dry_run)
        # A dry run must not even create the data directory's store.
        lianxin: Any = (SimpleNamespace(settings=Settings.from_env(), close=lambda: None)
                        if dry_run else build())
        try:
            summary = import_queue_log(lianxin, text, options)
        except DomainError as exc:
            field = exc.context.get("field")
            typer.echo(f"error: {'--' + str(field) + ': ' if field else ''}{exc.message}", err=True)
            raise typer.Exit(2) from None
        finally:
            lianxin.close()
        if summary.records == 0 and summary.skipped_total == 0:
            typer.echo(f"error: {file}: no queue_log lines found", err=True)
            raise typer.Exit(2)
        if as_json:
            typer.echo(json.dumps(summary.as_dict(), indent=2, default=str))
        else:
            _print(summary)
        if summary.records == 0:
            raise typer.Exit(2)
        if not summary.ok:
            raise typer.Exit(1)
