"""An ARI REST port that records requests instead of sending them: for
replaying captured traces through the app and for unit tests of the flow."""

from __future__ import annotations

from typing import Any, Callable

from telephony_adapter.ari.errors import AriHttpError


class RecordingRest:
    def __init__(self, responses: dict[tuple[str, str], Any] | None = None,
                 fail: Callable[[str, str], int | None] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, Any], Any]] = []
        self.responses = dict(responses or {})
        self.fail = fail

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> Any:
        self.requests.append((method, path, dict(params or {}), json))
        status = self.fail(method, path) if self.fail else None
        if status:
            raise AriHttpError.for_status(status, "refused by the fake", method=method, path=path)
        response = self.responses.get((method, path))
        return response(params) if callable(response) else response

    def paths(self, method: str | None = None) -> list[str]:
        return [p for (mth, p, _, _) in self.requests if method is None or mth == method]
