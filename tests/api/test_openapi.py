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


def test_command_routes_document_their_problems(sqlite_client):
    """A client generator learns that errors are problem+json, with the
    members Lianxin sends, instead of FastAPI's default validation schema."""
    spec = ok(sqlite_client.get("/openapi.json"))
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status"} <= set(problem["required"])
    assert {"detail", "code", "field"} <= set(problem["properties"])
    responses = spec["paths"]["/calls/{call_id}/queue"]["post"]["responses"]
    for status in ("400", "404", "409", "413", "422"):
        content = responses[status]["content"]
        assert list(content) == ["application/problem+json"], status
        assert content["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
    # ...and what is documented is what is sent.
    sent = sqlite_client.post("/calls/not-a-uuid/queue", json={"queue": "power"})
    assert sent.status_code == 422 and sent.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status"} <= set(sent.json())
