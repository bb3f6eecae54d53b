"""HTTP: ``POST /imports/queue-log`` (Asterisk queue_log importer).

The log comes as a multipart upload (field ``file``, optional ``agent_map``)
or as the request body itself (``text/plain``), gzip-compressed or not. The
answer is the import summary: 200 when every line was imported, 200 too when
some lines were skipped (the others are saved; ``skipped`` lists them by line
number, and ``ok`` is false). An upload that cannot be used at all is a
problem+json: 400 for an empty, non-UTF-8 or corrupt gzip body, 422 for an
unknown time zone, a bad agent map or a file without a single queue_log line.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from domain.errors import DomainError
from lianxin.http.problems import TYPE_BASE, problem_response

router = APIRouter()

MAX_UPLOAD = 512 * 1024 * 1024  # a year of a busy center's queue_log fits


def _problem(request: Request, status: int, code: str, detail: str, **members: Any) -> JSONResponse:
    return problem_response(status, None, detail, type_=TYPE_BASE + code, code=code,
                            instance=request.url.path, **members)


async def _payload(request: Request) -> tuple[bytes, bytes | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise _Bad(400, "missing-file", "the multipart body has no 'file' part", field="file")
        data = await upload.read()
        mapping = form.get("agent_map")
        if mapping is not None and not isinstance(mapping, str):
            return data, await mapping.read()
        return data, mapping.encode() if isinstance(mapping, str) else None
    return await request.body(), None


class _Bad(Exception):
    def __init__(self, status: int, code: str, detail: str, **members: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.members = status, code, detail, members


def _text(data: bytes, field: str) -> str:
    from telephony_adapter.queue_log.source import UnreadableInput, decode

    if len(data) > MAX_UPLOAD:
        raise _Bad(400, "upload-too-large", f"the {field} exceeds {MAX_UPLOAD} bytes", field=field)
    try:
        return decode(data, field)
    except UnreadableInput as exc:
        raise _Bad(400, exc.code, exc.message, field=field, line=exc.line) from None


@router.post("/imports/queue-log", tags=["imports"])
async def import_queue_log_route(
    request: Request,
    dry_run: bool = Query(False, description="check and count on a scratch store; write nothing"),
    timezone: Optional[str] = Query(None, description="zone of text timestamps (default: the center's)"),
    team: str = Query("imported", min_length=1, description="team of agents registered on the fly"),
) -> JSONResponse:
    from telephony_adapter.queue_log import ImportOptions, import_queue_log, load_agent_map

    lianxin = request.app.state.lianxin
    try:
        data, map_data = await _payload(request)
        text = _text(data, "file")
        mapping = None
        if map_data is not None:
            mapping = load_agent_map("agent_map", _text(map_data, "agent_map"))
    except _Bad as bad:
        return _problem(request, bad.status, bad.code, bad.detail, **bad.members)
    except DomainError as exc:
        return _problem(request, 422, exc.code, exc.message, **exc.context)
    options = ImportOptions(timezone=timezone, team=team, agent_map=mapping, dry_run=dry_run)
    try:
        summary = await run_in_threadpool(import_queue_log, lianxin, text, options)
    except DomainError as exc:
        return _problem(request, 422, exc.code, exc.message, **exc.context)
    if summary.records == 0:
        first = summary.skipped[0] if summary.skipped else None
        detail = "no queue_log line could be read" + (
            f"; line {first['line']}: {first['reason']}" if first else "")
        return _problem(request, 422, "no-queue-log-lines", detail, skipped=summary.skipped,
                        field="file")
    return JSONResponse(summary.as_dict())
