"""Every command message is reachable over HTTP and documented."""

from __future__ import annotations

import inspect

from commands import messages as m
from lianxin.http.core import COMMAND_ROUTES
from tests.api.conftest import ok


def test_every_command_message_has_a_documented_route(sqlite_client):
    spec = ok(sqlite_client.get("/openapi.json"))
    messages = {cls for _, cls in inspect.getmembers(m, inspect.isclass)
                if issubclass(cls, m.Command) and cls is not m.Command
                and cls.__module__ == m.__name__}
    routed = {cls for _, cls, *_ in COMMAND_ROUTES}
    assert messages <= routed, sorted(c.__name__ for c in messages - routed)
    for path, cls, *_ in COMMAND_ROUTES:
        operation = spec["paths"][path]["post"]
        params = {p["name"] for p in operation.get("parameters", [])}
        assert {"Idempotency-Key", "If-Match", "X-Actor"} <= params, path
    for path in ("/wallboard", "/agents", "/agents/{employee_no}", "/calls/{call_id}",
                 "/calls/{call_id}/events"):
        params = {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
        assert "min_position" in params, path
    # The body schema of a command names its fields.
    schema = spec["components"]["schemas"]["QueueCallBody"]
    assert "queue" in schema["required"] and "call_id" not in schema["properties"]
