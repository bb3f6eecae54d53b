"""CLI commands: ``lianxin call replay`` and the ``lianxin audit`` group.

Exit codes: 0 fine; 1 a refused request or a missing record; 2 bad options;
3 the chain, a bundle or an anchor does not verify (the message names the
first position and what happened there).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, List, Optional

import typer

from domain.errors import DomainError
from lianxin.cli.core import _Session, describe, emit, fail, group, parse_uuid

BROKEN = 3


def _replay(call_id: str, step: bool, actor: Optional[str], reason: Optional[str],
            as_json: bool) -> None:
    from commands.audit_messages import RecordAccess
    from queries.replay import timeline

    actor = actor or os.environ.get("LIANXIN_ACTOR") or os.environ.get("USER")
    if not actor:
        fail("--actor: name who is reading (or set LIANXIN_ACTOR)", 2)
    if not reason or not reason.strip():
        fail("--reason: say why you are reading this call", 2)
    with _Session() as lx:
        try:
            cid = parse_uuid(call_id, "call_id")
            tl = timeline(lx, cid)
            lx.commands.handle(RecordAccess(subject_kind="call", subject_id=str(cid),
                                            resource_kind="timeline", reason=reason,
                                            actor=actor))
        except DomainError as exc:
            fail(describe(exc))
    if as_json:
        emit(tl)
        return
    typer.echo(f"call {tl['call_id']} ({tl['external_id']}) started {tl['started_at']}, "
               f"{len(tl['events'])} events over {tl['duration_s']} s")
    for i, e in enumerate(tl["events"], 1):
        who = f" [{e['actor']}]" if e["actor"] else ""
        side = f" <agent {e['agent']}>" if e["source"] == "agent" else ""
        typer.echo(f"{i:>3}  +{e['offset_s']:>9.3f}s  #{e['position']:<7} "
                   f"{e['type']:<22}{side} {e['summary']}{who}")
        if step and i < len(tl["events"]):
            key = typer.prompt("      [Enter] next, d details, q quit", default="",
                               show_default=False)
            if key.strip().lower() == "d":
                typer.echo(json.dumps(e["details"], indent=2, ensure_ascii=False))
            elif key.strip().lower() == "q":
                break
    for rec in tl["recordings"]:
        stop = (f"+{rec['stop_offset_s']}s" if rec["stop_offset_s"] is not None
                else "not stopped in the record")
        typer.echo(f"recording {rec['name']} ({rec['format']}, target {rec['target'] or '-'}): "
                   f"+{rec['start_offset_s']}s .. {stop}")


def _exit_code(exc: DomainError) -> int:
    """Broken chain 3, bad option 2, anything else refused or missing 1."""
    from domain.errors import InvalidValue

    if exc.context.get("field") == "chain":
        return BROKEN
    return 2 if isinstance(exc, InvalidValue) else 1


def _report_verification(result: Any) -> None:
    if result.ok:
        unit = "thread(s)" if result.verifier == "c" else "worker(s)"
        typer.echo(f"verified positions {result.first}..{result.last} ({result.records} records) "
                   f"in {result.seconds:.3f} s ({result.events_per_s:,.0f} events/s, "
                   f"{result.workers} {unit}, {result.verifier} verifier)")
        typer.echo(f"head {result.head}")
        for note in result.notes:
            typer.echo(f"note: {note}")
        return
    f = result.finding
    typer.echo(f"BROKEN at position {f.position}: {f.kind}: {f.detail}", err=True)
    if result.last:
        typer.echo(f"positions {result.first}..{result.last} verified before it; "
                   f"chain there {result.head}", err=True)
    raise typer.Exit(BROKEN)


def _anchor_pairs(texts: List[str], path: Optional[Path]) -> list[tuple[int, str]]:
    """--anchor POS:HASH options and an --anchors file as (position, hash); bad input exits 2."""
    from domain.errors import InvalidValue
    from queries.audit_anchors import read_anchors
    from queries.audit_bundle import parse_anchor

    try:
        pairs = [parse_anchor(t) for t in texts]
        if path is not None:
            pairs += [(a["position"], a["chain_hash"]) for a in read_anchors(path)]
    except InvalidValue as exc:
        fail(describe(exc), 2)
    except OSError as exc:
        fail(f"--anchors: {exc}", 2)
    return pairs


def register(root: typer.Typer) -> None:
    """Add this area's commands and groups to the root `lianxin` app."""
    calls = group(root, "call", "Inspect calls")

    @calls.command("replay")
    def call_replay(call_id: str,
                    step: bool = typer.Option(False, "--step", help="pause after each event"),
                    actor: Optional[str] = typer.Option(None, "--actor",
                                                        help="who is reading (recorded)"),
                    reason: Optional[str] = typer.Option(None, "--reason",
                                                         help="why (recorded; required)"),
                    as_json: bool = typer.Option(False, "--json", help="print the timeline as JSON"),
                    ) -> None:
        """Replay a conversation from the event store, event by event."""
        _replay(call_id, step, actor, reason, as_json)

    audit = group(root, "audit", "The tamper-evident event trail")

    @audit.command("verify")
    def audit_verify(start: Optional[int] = typer.Option(None, "--from", min=1),
                     stop: Optional[int] = typer.Option(None, "--to", min=1),
                     workers: Optional[int] = typer.Option(
                         None, "--workers", min=1, max=16,
                         help="threads (C verifier, SQLite) or worker processes (Python)"),
                     as_json: bool = typer.Option(False, "--json")) -> None:
        """Recompute the hash chain and report the first altered position."""
        from queries.audit_trail import verify

        with _Session() as lx:
            try:
                result = verify(lx, start, stop, workers=workers)
            except DomainError as exc:
                fail(describe(exc), 2)
        if as_json:
            emit(result.as_dict())
            if not result.ok:
                raise typer.Exit(BROKEN)
            return
        _report_verification(result)

    @audit.command("export")
    def audit_export(output: Path = typer.Option(..., "--output", "-o", help="bundle file (.zip)"),
                     start: Optional[str] = typer.Option(None, "--from",
                                                         help="position, or ISO instant"),
                     stop: Optional[str] = typer.Option(None, "--to",
                                                        help="position, or ISO instant"),
                     call: Optional[str] = typer.Option(None, "--call"),
                     agent: Optional[str] = typer.Option(None, "--agent"),
                     work_order: Optional[str] = typer.Option(None, "--work-order"),
                     actor: Optional[str] = typer.Option(None, "--actor"),
                     reason: str = typer.Option("regulatory export", "--reason")) -> None:
        """Write a self-contained bundle a regulator can verify offline."""
        from commands.audit_messages import RecordAccess
        from lianxin.http.audit import _range
        from queries.audit_bundle import export, select

        with _Session() as lx:
            try:
                lo, hi, since, until = _range(start, stop)
                sel = select(lx, call=call, agent=agent, work_order=work_order, since=since,
                             until=until)
                manifest = export(lx, output, start=lo, stop=hi, selection=sel)
                if sel.kind == "call":
                    lx.commands.handle(RecordAccess(
                        subject_kind="call", subject_id=str(sel.value).split(" ")[0],
                        resource_kind="export", reason=reason,
                        actor=actor or os.environ.get("LIANXIN_ACTOR") or os.environ.get("USER")
                        or "cli",
                        resource=f"{manifest['range']['from']}..{manifest['range']['to']}"))
            except DomainError as exc:
                fail(describe(exc), _exit_code(exc))
        typer.echo(f"wrote {output}: {manifest['counts']['records']} records, "
                   f"{manifest['counts']['links']} links, positions "
                   f"{manifest['range']['from']}..{manifest['range']['to']}")
        typer.echo(f"end chain hash {manifest['end']['chain_hash']} at position "
                   f"{manifest['end']['position']}")

    @audit.command("verify-bundle")
    def audit_verify_bundle(bundle: Path,
                            head: Optional[str] = typer.Option(None, "--head",
                                                               help="published chain hash at the "
                                                                    "bundle's end"),
                            anchor: Optional[List[str]] = typer.Option(
                                None, "--anchor", metavar="POS:HASH",
                                help="a chain hash published for a position inside the "
                                     "bundle's range (repeatable)"),
                            anchors_file: Optional[Path] = typer.Option(
                                None, "--anchors", help="anchors file (JSON lines, as written "
                                                        "by `audit anchor --to-file`)")) -> None:
        """Verify a bundle offline (no database, no network)."""
        from queries.audit_bundle import verify_bundle

        if not bundle.is_file():
            fail(f"BUNDLE: {bundle} is not a file", 2)
        pairs = _anchor_pairs(anchor or [], anchors_file)
        check = verify_bundle(bundle, head, pairs)
        if check.ok:
            typer.echo(f"bundle verifies: {check.records} records and {check.links} links over "
                       f"positions {check.start + 1}..{check.end}; chain {check.end_hash}"
                       + (" (matches the published head)" if head else ""))
            for a in check.anchors:
                typer.echo(f"anchor {a['position']}: {a['detail']}")
            return
        for problem in check.problems:
            typer.echo(f"FAILED: {problem}", err=True)
        raise typer.Exit(BROKEN)

    @audit.command("anchor")
    def audit_anchor(to_file: Optional[Path] = typer.Option(None, "--to-file"),
                     nats: bool = typer.Option(False, "--nats", help="publish to NATS "
                                               "JetStream (subject lianxin.audit.anchor)"),
                     nats_url: str = typer.Option("nats://127.0.0.1:4222", "--nats-url",
                                                  envvar="LIANXIN_NATS_URL"),
                     every: Optional[float] = typer.Option(None, "--every", min=0.1,
                                                           help="repeat every N seconds"),
                     count: Optional[int] = typer.Option(None, "--count", min=1,
                                                         help="stop after N anchors")) -> None:
        """Write the verified chain head to a file, a log line and/or NATS."""
        from queries.audit_anchors import append_to_file, log_line, make_anchor, publish_nats

        done = 0
        with _Session() as lx:
            while True:
                try:
                    anchor = make_anchor(lx)
                except DomainError as exc:
                    typer.echo(f"error: {describe(exc)}", err=True)
                    raise typer.Exit(BROKEN)
                if to_file is not None:
                    append_to_file(anchor, to_file)
                if nats:
                    try:
                        asyncio.run(publish_nats(anchor, nats_url))
                    except Exception as exc:  # noqa: BLE001 - report, keep the file/log anchor
                        typer.echo(f"error: --nats: could not publish to {nats_url}: {exc}",
                                   err=True)
                        raise typer.Exit(1)
                typer.echo(log_line(anchor))
                done += 1
                if every is None or (count is not None and done >= count):
                    return
                time.sleep(every)

    @audit.command("snapshot-wallboard")
    def audit_snapshot_wallboard(every: int = typer.Option(10_000, "--every", min=1,
                                                           help="positions between snapshots")
                                 ) -> None:
        """Add wallboard snapshots (a cache that speeds up /as-of/.../wallboard)."""
        from queries.wallboard_snapshots import build as build_snapshots

        with _Session() as lx:
            made = build_snapshots(lx, every)
        typer.echo(f"added {made} wallboard snapshot(s)")

    @audit.command("check-anchor")
    def audit_check_anchor(anchors: Optional[Path] = typer.Option(None, "--file",
                                                                  help="anchors file (JSON lines)"),
                           position: Optional[int] = typer.Option(None, "--position", min=1),
                           chain_hash: Optional[str] = typer.Option(None, "--hash")) -> None:
        """Check that history up to each anchor is unchanged."""
        from queries.audit_anchors import check_anchors, read_anchors

        if anchors is None and (position is None or chain_hash is None):
            fail("give --file, or both --position and --hash", 2)
        with _Session() as lx:
            try:
                items = read_anchors(anchors) if anchors is not None else [
                    {"position": position, "chain_hash": str(chain_hash).lower()}]
                results = check_anchors(lx, items)
            except (DomainError, OSError) as exc:
                fail(describe(exc) if isinstance(exc, DomainError) else str(exc), 2)
        bad = [r for r in results if not r.ok]
        for r in results:
            typer.echo(f"{'ok    ' if r.ok else 'FAILED'} position {r.position} "
                       f"{r.chain_hash[:16]}...: {r.detail}", err=not r.ok)
        if bad:
            raise typer.Exit(BROKEN)
