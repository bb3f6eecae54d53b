"""Domain errors. Adapters map them to HTTP problems / CLI exit codes."""


class DomainError(Exception):
    """A command was refused by the domain. ``code`` is stable for clients."""

    code = "domain-error"

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class InvariantViolation(DomainError):
    """The command is not allowed in the aggregate's current state (HTTP 409)."""

    code = "invariant-violation"


class InvalidValue(DomainError):
    """A field has a value the domain does not accept (HTTP 422)."""

    code = "invalid-value"


class NotFound(DomainError):
    """The aggregate named by the command does not exist (HTTP 404)."""

    code = "not-found"
