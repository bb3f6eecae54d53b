"""Handlers of the audit area's commands."""

from __future__ import annotations

from commands import audit_messages as am
from commands.bus import UnitOfWork, guard
from commands.handlers import _kw, handles
from domain.access_log import AccessLog, access_log_id_for


@handles(am.RecordAccess)
def record_access(uow: UnitOfWork, cmd: am.RecordAccess) -> AccessLog:
    kw = _kw(uow, cmd)
    log = uow.find(AccessLog, access_log_id_for(cmd.subject_kind, cmd.subject_id))
    if log is None:
        log = AccessLog.open(subject_kind=cmd.subject_kind, subject_id=cmd.subject_id,
                             occurred_at=kw["occurred_at"], actor=cmd.actor)
        uow.add(log)
    else:
        guard(log, cmd.command_id, cmd.expected_version)
    log.record(resource_kind=cmd.resource_kind, resource=cmd.resource, reason=cmd.reason, **kw)
    return log
