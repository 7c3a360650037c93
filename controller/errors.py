"""Errors a user can see: each carries the HTTP status, a one-line message and optional detail.

The REST API turns them into ``{"error": message, "detail": detail}`` with the status;
the CLI prints the message and exits non-zero. Anything else is a bug and is logged.
"""

from __future__ import annotations

from typing import Any


class FarmError(Exception):
    """Base of every error fsfarm reports to a user."""

    status = 400

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "detail": self.detail}


class Invalid(FarmError):
    """The request is malformed or a field fails validation."""

    status = 400


class Unauthorized(FarmError):
    """No token, or a token that is unknown, revoked or expired."""

    status = 401


class Forbidden(FarmError):
    """A valid token whose scope does not allow the operation (farm-level operations only)."""

    status = 403


class NotFound(FarmError):
    """The object does not exist, or is outside the caller's tenant (never 403, so tenants cannot probe)."""

    status = 404


class Conflict(FarmError):
    """The change collides with stored state (duplicate name, node still hosting tenants...)."""

    status = 409


class Unavailable(FarmError):
    """A dependency (database, storage, a node) cannot be reached right now; retry later."""

    status = 503


class TooManyFailures(FarmError):
    """Too many failed authentications from one client address; retry after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after
