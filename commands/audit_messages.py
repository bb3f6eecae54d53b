"""Command messages of the audit area: recording that someone read data."""

from __future__ import annotations

from dataclasses import dataclass

from commands.messages import Command


@dataclass(kw_only=True)
class RecordAccess(Command):
    """``actor`` (who) and ``reason`` (why) are required; ``occurred_at`` is when."""

    subject_kind: str  # call | agent | work_order | center
    subject_id: str
    resource_kind: str  # timeline | recording | state | export | accesses
    resource: str = ""
    reason: str
