"""Idempotency keys bound to the request that first used them
(draft-ietf-httpapi-idempotency-key-header).

An HTTP command's ``Idempotency-Key`` (or ``command_id`` in its body) is the
command id, and the aggregate refuses a command id twice: a retry answers
``duplicate: true``. That alone cannot tell a retry from a client bug that
reuses a key for another request, so this module keeps, per key, the
fingerprint of the first request that used it; another request under the
same key is a 422 problem and executes nothing.

* The fingerprint is a SHA-256 over the method, the route's path template,
  the path parameters and the JSON body as the client sent it (parsed and
  written again with sorted keys). Server defaults such as ``occurred_at``
  are filled in later and never enter it, so a retry always matches. The
  ``If-Match`` and ``X-Actor`` headers are not part of it.
* The table ``idempotency_keys`` (key, fingerprint, created_at) lives in the
  event store's own database (the SQLite file, or the PostgreSQL schema), so
  it holds across restarts and across API processes sharing the store.
* ``claim`` runs after the request validated, just before the command: one
  insert-if-absent for a new key, plus one select for a key seen before
  (claims arriving together share those two statements).
  Nothing marks a command "in progress": if the process dies after the
  claim and before the command, the retry matches the fingerprint and
  executes, and the aggregate's own command-id check still prevents a
  second effect.

Rows are never deleted here; how long to keep them is an open question (see
docs/architecture.md).

Wiring: ``install(api)`` in the app factory; a route takes part with
``dependencies=[FINGERPRINT]`` and calls ``claim(request)`` right before it
acts (``lianxin.http.core.execute`` does for every command route).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from domain.errors import InvalidValue
from lianxin.http.problems import TYPE_BASE, problem_response

TABLE = "idempotency_keys"
HEADER = "Idempotency-Key"
# Long enough for any sensible key (a UUID is 36); it keeps PostgreSQL's
# b-tree entry limit (about 2.7 kB) out of reach.
MAX_KEY_LENGTH = 255
REUSED = "idempotency-key-reused"
# NUL cuts a key short in SQLite's JSON functions and PostgreSQL refuses it in
# text; no other control character belongs in a key either.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class KeyReused(Exception):
    """The key was first used with another request."""

    def __init__(self, key: str, field: str) -> None:
        super().__init__(f"{field} {key!r} was first used with another request")
        self.key, self.field = key, field


def fingerprint(method: str, path: str, path_params: dict[str, Any], body: Any) -> str:
    canonical = json.dumps([method.upper(), path, path_params, body], sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def fingerprint_request(request: Request) -> None:
    """Dependency: notes the request's key and fingerprint for ``claim``.
    It never refuses anything itself (it runs before FastAPI has validated
    the request, whose own errors must win)."""
    raw = await request.body()
    body: Any = None
    if raw:
        try:
            body = await request.json()
        except ValueError:  # validation answers 400; a body-less route ignores it
            body = {"unparsed_sha256": hashlib.sha256(raw).hexdigest()}
    key, field = request.headers.get(HEADER), HEADER
    if key is None and isinstance(body, dict) and isinstance(body.get("command_id"), str):
        key, field = body["command_id"], "command_id"
    if key is None or not key.strip():
        return  # no key, or an empty one the route refuses
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    request.state.idempotency = (key, field, fingerprint(request.method, path,
                                                         dict(request.path_params), body))


FINGERPRINT = Depends(fingerprint_request)


class RequestFingerprints:
    """Per idempotency key, the fingerprint of the first request, in the
    event store's database (through the event store's own connection pool).

    Claims that arrive together are written together (flat combining, as
    the command bus does): one thread writes every pending claim in one
    statement while the others wait for its answer. One write per claim
    would put a commit per keyed request back on the path the bus batches,
    and cap keyed traffic at the disk's commit rate."""

    def __init__(self, recorder: Any) -> None:
        from eventsourcing.sqlite import SQLiteDatastore

        datastore = recorder.datastore
        self._backend = (_SQLite(datastore) if isinstance(datastore, SQLiteDatastore)
                         else _Postgres(datastore))
        self._pending: list[_Claim] = []
        self._pending_lock = threading.Lock()
        self._writing = threading.Lock()  # held by the thread writing a batch

    def create_table(self) -> None:
        self._backend.create_table()

    def record(self, key: str, fingerprint: str) -> str:
        """Stores ``fingerprint`` for ``key`` unless the key has one already;
        returns the one stored (``fingerprint`` itself on first use)."""
        claim = _Claim(key, fingerprint)
        with self._pending_lock:
            self._pending.append(claim)
        with self._writing:
            # Another writer may have taken it along already; with more than
            # a batch pending, it may take more than one write to reach it.
            while not claim.done:
                self._write_pending()
        if claim.error is not None:
            raise claim.error
        if claim.stored is None:  # rows are never deleted: the insert or the select saw it
            raise RuntimeError(f"could not record the idempotency key {key!r}")
        return claim.stored

    def _write_pending(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
        try:
            stored = self._backend.record([(c.key, c.fingerprint) for c in batch])
        except BaseException as exc:  # noqa: BLE001 - each waiting caller raises it
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            # One claim the store refuses must not fail the others written
            # with it: each is recorded again on its own.
            for c in batch:
                try:
                    c.stored = self._backend.record([(c.key, c.fingerprint)]).get(c.key)
                except BaseException as one:  # noqa: BLE001
                    c.error = one
                c.done = True
        else:
            for c in batch:
                c.stored, c.done = stored.get(c.key), True


# Claims per statement at most.
BATCH = 256


class _Claim:
    __slots__ = ("key", "fingerprint", "stored", "error", "done")

    def __init__(self, key: str, fingerprint: str) -> None:
        self.key, self.fingerprint = key, fingerprint
        self.stored: str | None = None
        self.error: BaseException | None = None
        self.done = False


class _SQLite:
    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore
        # One statement text whatever the batch size (json_each), so that a
        # batch does not evict the event store's statements from the cache.
        self.insert = (f"INSERT INTO {TABLE} (key, fingerprint) "
                       "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
                       "FROM json_each(?) WHERE true "
                       "ON CONFLICT (key) DO NOTHING RETURNING key, fingerprint")
        self.select = (f"SELECT key, fingerprint FROM {TABLE} "
                       "WHERE key IN (SELECT value FROM json_each(?))")

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                      "key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
                      "created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                      ") WITHOUT ROWID")

    def record(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        # The writer connection, in autocommit mode: the insert is its own
        # transaction, queued in-process behind the command bus's commits.
        with self.datastore.get_connection(commit=True) as conn:
            with conn.cursor() as c:
                c.execute(self.insert, (json.dumps(pairs),))
                stored = dict(c.fetchall())  # fetching all ends (and commits) it
                seen = list({k for k, _ in pairs if k not in stored})
                if seen:
                    c.execute(self.select, (json.dumps(seen),))
                    stored.update(c.fetchall())
        return stored


class _Postgres:
    def __init__(self, datastore: Any) -> None:
        from psycopg.sql import SQL, Identifier

        self.datastore = datastore
        table = dict(schema=Identifier(datastore.schema), table=Identifier(TABLE))
        self.create = SQL("CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                          "key text PRIMARY KEY, fingerprint text NOT NULL, "
                          "created_at timestamptz NOT NULL DEFAULT now())").format(**table)
        self.insert = SQL("INSERT INTO {schema}.{table} (key, fingerprint) "
                          "SELECT * FROM unnest(%s::text[], %s::text[]) "
                          "ON CONFLICT (key) DO NOTHING RETURNING key, fingerprint"
                          ).format(**table)
        self.select = SQL("SELECT key, fingerprint FROM {schema}.{table} "
                          "WHERE key = ANY(%s::text[])").format(**table)

    def create_table(self) -> None:
        from eventsourcing.persistence import IntegrityError

        try:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(self.create)
        except IntegrityError:
            # Another process created it at the same moment (IF NOT EXISTS
            # is not atomic in PostgreSQL); now it exists.
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(self.create)

    def record(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        # Autocommit connections: a concurrent insert of the same key waits
        # for the first to commit, then does nothing and the select sees it.
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.insert, ([k for k, _ in pairs], [f for _, f in pairs]),
                         prepare=True)
            stored = {r["key"]: r["fingerprint"] for r in curs.fetchall()}
            seen = list({k for k, _ in pairs if k not in stored})
            if seen:
                curs.execute(self.select, (seen,), prepare=True)
                stored.update((r["key"], r["fingerprint"]) for r in curs.fetchall())
        return stored


def claim(request: Request) -> None:
    """Binds the request's idempotency key to its fingerprint, or raises
    ``KeyReused`` when the key was first used with another request. Call it
    after validation, right before the command executes; a request without
    a key passes untouched."""
    noted = getattr(request.state, "idempotency", None)
    if noted is None:
        return
    key, field, mine = noted
    if len(key) > MAX_KEY_LENGTH or not _encodable(key) or _CONTROL.search(key):
        raise InvalidValue(f"{field} must be printable text of at most {MAX_KEY_LENGTH} "
                           "characters", field=field)
    if request.app.state.idempotency.record(key, mine) != mine:
        raise KeyReused(key, field)


def _encodable(key: str) -> bool:
    try:
        key.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in a JSON body)
        return False
    return True


def key_reused_problem(request: Request, exc: KeyReused) -> JSONResponse:
    return problem_response(
        422, f"{exc.field} is already used",
        f"{exc.field} {exc.key!r} was first used with another request (method, path or "
        "body); nothing was executed. A retry must repeat the first request exactly; a new "
        "request needs a new key.",
        type_=TYPE_BASE + REUSED, instance=request.url.path, code=REUSED, field=exc.field)


def install(api: FastAPI) -> None:
    """The store over the app's event store (its table created unless the
    event store is told not to create tables), and the problem handler."""
    app = api.state.lianxin.app
    store = RequestFingerprints(app.recorder)
    if app.factory.env_create_table():
        store.create_table()
    api.state.idempotency = store
    api.add_exception_handler(KeyReused, key_reused_problem)  # type: ignore[arg-type]
