"""Typed ARI failures.

404/409/422 from ARI are ordinary races in a call center (the caller hung up between our
decision and our request, the channel already left Stasis), so callers catch the specific
subclass instead of parsing messages.
"""

from __future__ import annotations


class AriError(Exception):
    """Anything that went wrong talking to Asterisk."""


class AriConnectionError(AriError):
    """Asterisk could not be reached (refused, reset, timed out)."""


class AriHttpError(AriError):
    """ARI answered with a status >= 400; ``message`` is Asterisk's own text."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"ARI {status}: {message}{where}")

    @staticmethod
    def for_status(status: int, message: str, *, method: str = "", path: str = "") -> "AriHttpError":
        cls = _BY_STATUS.get(status, AriHttpError)
        return cls(status, message, method=method, path=path)


class AriBadRequest(AriHttpError):
    """400: a parameter is missing or invalid."""


class AriAuthError(AriHttpError):
    """401/403: wrong ARI user or password; retrying will not help."""


class AriNotFound(AriHttpError):
    """404: the channel, bridge, playback or recording does not exist (any more)."""


class AriConflict(AriHttpError):
    """409: the resource is in the wrong state (not in Stasis, id already used, no MOH...)."""


class AriPreconditionFailed(AriHttpError):
    """412: the channel is in a state where the operation cannot be done."""


class AriUnprocessable(AriHttpError):
    """422: the request refers to something unusable (channel not in this bridge...)."""


_BY_STATUS = {400: AriBadRequest, 401: AriAuthError, 403: AriAuthError, 404: AriNotFound,
              409: AriConflict, 412: AriPreconditionFailed, 422: AriUnprocessable}
