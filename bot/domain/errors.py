"""The errors Backout speaks in. Adapters re-raise vendor errors as these, `from exc`."""


class BackoutError(Exception):
    """Base of every error Backout raises on purpose."""


class NotFound(BackoutError):
    """The thing asked for does not exist."""


class Conflict(BackoutError):
    """The request is valid but the current state does not allow it."""


class InvalidInput(BackoutError):
    """Input from outside is malformed or has the wrong shape."""


class Unauthorized(BackoutError):
    """Missing or wrong credentials."""


class TransientError(BackoutError):
    """A failure that may pass: retry later."""


class RateLimited(TransientError):
    """The outside system asked to wait (HTTP 429): `retry_after` seconds when it said how long."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(TransientError):
    """The database cannot be reached or is locked for too long."""


class WriteConflict(TransientError):
    """A concurrent writer got there first (unique constraint); the work may be run again."""


class UpstreamError(BackoutError):
    """An outside system answered with an error that retrying will not fix."""
