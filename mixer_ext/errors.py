"""Errors the mixer reports to its caller: HTTP status, one-line message, optional detail.

The sidecar is deployed on its own, so it keeps its own small error set (same JSON shape as the
controller's: ``{"error": message, "detail": detail}``) instead of importing the controller's.
"""

from __future__ import annotations

from typing import Any


class MixerError(Exception):
    """Base of every error the mixer reports to a caller."""

    status = 400

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "detail": self.detail}


class Invalid(MixerError):
    """A malformed request or a field out of range."""

    status = 400


class Unauthorized(MixerError):
    """A control request without the mixer's token."""

    status = 401


class NotFound(MixerError):
    """No such room or participant on this mixer."""

    status = 404


class Conflict(MixerError):
    """The room already exists."""

    status = 409


class Unavailable(MixerError):
    """The mixer cannot bind or reach what it needs."""

    status = 503
