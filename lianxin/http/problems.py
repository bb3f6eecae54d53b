"""RFC 7807 problem documents (``application/problem+json``) for every error.

For other areas:

* raise a ``domain.errors`` error (or a subclass) from a route: it becomes a
  problem with the status of ``STATUS`` (InvalidValue 422, NotFound 404,
  InvariantViolation and ConcurrencyConflict 409, any other DomainError 400);
  its ``code`` and ``context`` (e.g. ``field``) are members of the problem;
* or return ``problem_response(status, title, detail, **members)`` yourself.

``install(app)`` registers the handlers: domain errors, request validation
(422 naming each field; malformed JSON is 400), HTTP errors such as unknown
routes (404) and, as a last resort, unexpected exceptions (500, without
internals: bad input must never reach that one).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from commands.errors import ConcurrencyConflict
from domain.errors import DomainError, InvalidValue, InvariantViolation, NotFound

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://lianxin.dev/problems/"

class Problem(BaseModel):
    """RFC 7807 problem document, with Lianxin's members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="the request path")
    code: str | None = Field(None, description="stable machine-readable code, e.g. invalid-value")
    field: str | None = Field(None, description="the body field, header or parameter at fault")


def _documented(status: int, what: str) -> dict[str, Any]:
    return {"description": what,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


# The errors a command route can answer with, for its OpenAPI entry (422
# replaces FastAPI's own validation schema, which is not what is sent).
COMMAND_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: _documented(400, "malformed JSON, a bad header, or a domain rule without a better status"),
    404: _documented(404, "the call, agent or work order named does not exist"),
    409: _documented(409, "not allowed in the aggregate's current state, or If-Match is stale"),
    413: _documented(413, "request body too large"),
    422: _documented(422, "a field has a wrong type or a value the domain refuses (see `field`), "
                          "or the Idempotency-Key was first used with another request "
                          "(code `idempotency-key-reused`)"),
}

# The telephony actions that take an Idempotency-Key.
KEYED_ACTION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: _documented(422, "a bad body, or the Idempotency-Key was first used with another "
                          "request (code `idempotency-key-reused`)"),
}


def document_problems(api: FastAPI) -> None:
    """Adds the Problem schema to the OpenAPI components that the routes' error
    responses refer to."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            spec = build()
            spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema())
            api.openapi_schema = spec
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


# Most specific first: ConcurrencyConflict is checked before its bases.
STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (InvalidValue, 422),
    (ConcurrencyConflict, 409),
    (InvariantViolation, 409),
    (DomainError, 400),
)


def problem_response(status: int, title: str | None = None, detail: str | None = None, *,
                     type_: str | None = None, instance: str | None = None,
                     headers: dict[str, str] | None = None, **members: Any) -> JSONResponse:
    """A problem+json response; extra keyword arguments become members."""
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in members.items() if v is not None})
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON,
                        headers=headers)


def status_for(exc: DomainError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def domain_problem(exc: DomainError, instance: str | None = None) -> JSONResponse:
    status = status_for(exc)
    context = {k: v for k, v in exc.context.items() if k not in ("type", "title", "status")}
    return problem_response(status, HTTPStatus(status).phrase, exc.message,
                            type_=TYPE_BASE + exc.code, instance=instance, code=exc.code,
                            **context)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return ".".join(rest) if rest else where
    return ".".join(parts)


def validation_problem(exc: RequestValidationError, instance: str | None = None) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "")
        return problem_response(400, "Malformed JSON",
                                f"the request body is not valid JSON: {reason}".rstrip(": "),
                                type_=TYPE_BASE + "malformed-json", instance=instance,
                                code="malformed-json")
    items = [{"field": _field_name(tuple(e.get("loc", ()))), "in": str(e.get("loc", ["?"])[0]),
              "message": e.get("msg", "invalid")} for e in errors]
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return problem_response(422, "Invalid request", detail, type_=TYPE_BASE + "invalid-request",
                            instance=instance, code="invalid-request",
                            field=items[0]["field"] if items else None, errors=items)


# A command or query body is a few hundred bytes; anything near this size is
# a mistake or an attack, and what is accepted is stored forever. Uploads
# (a day's queue_log) have their own limit.
MAX_BODY_BYTES = 1 << 20
UPLOAD_PREFIXES = ("/imports/",)


def install(api: FastAPI) -> None:
    document_problems(api)

    @api.middleware("http")
    async def _body_limit(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if (length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES
                and not request.url.path.startswith(UPLOAD_PREFIXES)):
            return problem_response(413, None, f"request body of {int(length):,} bytes is over "
                                    f"the limit of {MAX_BODY_BYTES:,} bytes",
                                    instance=request.url.path, code="body-too-large")
        return await call_next(request)

    @api.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc, request.url.path)

    @api.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc, request.url.path)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        return problem_response(exc.status_code, None, detail, instance=request.url.path,
                                headers=getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal Server Error",
                                "an unexpected error occurred; it has been logged",
                                instance=request.url.path)
