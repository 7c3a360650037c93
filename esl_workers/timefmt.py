"""FreeSWITCH's time stamps (microseconds since the epoch, "0" for never) as aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def from_usec(value: str | int | None) -> datetime | None:
    """``"1795266119684003"`` → a UTC datetime; ``"0"``, empty or garbage → None."""
    try:
        usec = int(value or 0)
    except (TypeError, ValueError):
        return None
    if usec <= 0:
        return None
    return datetime.fromtimestamp(usec / 1_000_000, tz=UTC)


def to_int(value: str | None, default: int = 0) -> int:
    try:
        return int(float(value)) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
