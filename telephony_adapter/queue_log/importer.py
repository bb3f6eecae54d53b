"""Run a queue_log import and say what it did.

Commands go through ``CommandService.handle_many``: they are committed in
batches, each keeps its own outcome, and one refused by the domain is
reported against its line while the others are saved. A dry run translates
and applies the file on a scratch in-memory store, so it finds the same
problems and counts the same events without writing anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.application import AggregateNotFoundError

from commands import messages as m
from commands.application import CallCenter
from commands.handlers import HandlerContext
from commands.import_handlers import AgentSyncResult
from commands.service import CommandService
from domain.call import call_id_for
from domain.errors import DomainError, InvalidValue
from telephony_adapter.queue_log.agents import AgentDirectory
from telephony_adapter.queue_log.parser import LineError, Record, parse_lines
from telephony_adapter.queue_log.translate import Skipped, Translator

MAX_LISTED = 200  # skipped lines and live calls listed in a summary


@dataclass
class ImportOptions:
    timezone: str | None = None  # for text timestamps; default: the center's
    team: str = "imported"  # team of agents the import registers
    agent_map: dict[str, tuple[str, str | None]] | None = None
    dry_run: bool = False


@dataclass
class ImportSummary:
    dry_run: bool
    lines: int = 0
    records: int = 0
    lines_imported: int = 0
    calls_in_file: int = 0
    calls_created: int = 0
    agents_created: int = 0
    events_created: int = 0
    commands: int = 0
    already_imported: int = 0
    reconstructed_calls: int = 0
    overflows: int = 0
    position: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    skipped_total: int = 0
    tolerated: dict[str, int] = field(default_factory=dict)
    by_event: dict[str, int] = field(default_factory=dict)
    live_calls: list[str] = field(default_factory=list)
    closed_incomplete: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.skipped_total == 0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"ok": self.ok}

    def lines_report(self) -> list[str]:
        return [f"line {s['line']}: {s['event']}: {s['reason']}" for s in self.skipped]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"unknown time zone {name!r}", field="timezone") from None


def _lines(source: str | Iterable[str]) -> Iterable[str]:
    return source.splitlines() if isinstance(source, str) else source


def import_queue_log(lianxin: Any, source: str | Iterable[str],
                     options: ImportOptions | None = None) -> ImportSummary:
    """Import ``source`` (the text, or its lines) into ``lianxin`` (a wired
    ``Lianxin``). Never raises for bad lines; raises ``InvalidValue`` for
    unusable options."""
    opts = options or ImportOptions()
    tz = zone(opts.timezone or lianxin.settings.timezone)
    summary = ImportSummary(dry_run=opts.dry_run)
    records: list[Record] = []
    skipped: list[Skipped] = []
    for item in parse_lines(_counted(_lines(source), summary), tz):
        if isinstance(item, LineError):
            skipped.append(Skipped(item.line_no, item.event or "?", item.reason, item.field))
        else:
            records.append(item)
    summary.records = len(records)
    summary.by_event = dict(sorted(Counter(r.event for r in records).items()))

    scratch: CallCenter | None = None
    if opts.dry_run:
        scratch = CallCenter(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        service = CommandService(scratch, HandlerContext(pseudonym_key="dry-run"))
        translator = Translator(AgentDirectory(opts.agent_map), team=opts.team)
    else:
        service = lianxin.commands
        translator = Translator(AgentDirectory(opts.agent_map), team=opts.team,
                                stored_call=_stored_call(lianxin.app),
                                stored_agent_no=_stored_agent_no(lianxin.app))
    try:
        translation = translator.run(records)
        skipped.extend(translation.skipped)
        steps = translation.steps
        outcomes = service.handle_many([s.command for s in steps]) if steps else []
    finally:
        if scratch is not None:
            scratch.close()

    failed_lines: set[int] = set()
    for step, outcome in zip(steps, outcomes):
        if isinstance(outcome, BaseException):
            if step.line_no not in failed_lines:
                failed_lines.add(step.line_no)
                skipped.append(Skipped(step.line_no, step.event, _reason(outcome)))
            continue
        summary.commands += 1
        summary.events_created += outcome.new_events
        summary.position = max(summary.position, outcome.position)
        if outcome.duplicate:
            summary.already_imported += 1
        elif isinstance(step.command, m.OfferCall) and outcome.new_events:
            summary.calls_created += 1
        result = outcome.result
        if isinstance(result, AgentSyncResult):
            summary.agents_created += int(result.registered)
            summary.already_imported += int(not result.changed and not result.registered)

    skipped.sort(key=lambda s: s.line_no)
    record_lines = {r.line_no for r in records}
    summary.lines_imported = len(record_lines - {s.line_no for s in skipped})
    summary.skipped_total = len(skipped)
    summary.skipped = [s.as_dict() for s in skipped[:MAX_LISTED]]
    summary.tolerated = dict(sorted(translation.tolerated.items()))
    summary.calls_in_file = translation.calls_in_file
    summary.reconstructed_calls = translation.reconstructed_calls
    summary.overflows = translation.overflows
    summary.live_calls = translation.live_calls[:MAX_LISTED]
    summary.closed_incomplete = translation.closed_incomplete[:MAX_LISTED]
    if opts.dry_run:
        summary.position = 0
    return summary


def _counted(lines: Iterable[str], summary: ImportSummary) -> Iterable[str]:
    for line in lines:
        summary.lines += 1
        yield line


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _stored_call(app: CallCenter):
    def lookup(external_id: str) -> Any:
        try:
            return app.repository.get(call_id_for(external_id))
        except AggregateNotFoundError:
            return None

    return lookup


def _stored_agent_no(app: CallCenter):
    def lookup(agent_id: UUID) -> str | None:
        try:
            return app.repository.get(agent_id).employee_no
        except AggregateNotFoundError:
            return None

    return lookup
