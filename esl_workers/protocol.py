"""ESL wire format: frames cut from a byte stream, and events parsed from their bodies.

Pure functions and one incremental reader; no sockets. This is the one place that fixes what
greenswitch 0.0.19 gets wrong: it URL-decodes a whole plain event before splitting it (so an
encoded newline cuts a value and a body is folded into a header) and it reads ``event json``
frames as if they were plain. Here each header value is decoded on its own, an event body is
cut by the event's own ``Content-Length``, and JSON events go through ``json.loads``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

MAX_HEADER_BYTES = 256 * 1024  # the outbound connect reply (all channel variables) is ~7 KiB
MAX_BODY_BYTES = 32 * 1024 * 1024  # a Content-Length above this is a lie, not an event


class ProtocolError(Exception):
    """The byte stream is not ESL: the connection cannot be trusted any more."""


class EventError(ValueError):
    """One frame was framed correctly but its event body is unreadable; the stream is fine."""


@dataclass(frozen=True)
class Frame:
    """One ESL message: its outer headers (values decoded) and its body (``Content-Length`` bytes)."""

    headers: Mapping[str, str]
    body: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass(frozen=True)
class Event:
    """A FreeSWITCH event: decoded headers, plus the body some events carry (BACKGROUND_JOB, API)."""

    headers: Mapping[str, str]
    body: str | None = None
    raw_size: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str:
        return self.headers.get("Event-Subclass", "")

    @property
    def key(self) -> str:
        """What handlers are keyed by: the subclass for CUSTOM events, else the event name."""
        return self.subclass if self.name == "CUSTOM" else self.name

    def get(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


def _decode(value: str) -> str:
    return unquote(value) if "%" in value else value


def parse_header_lines(text: str) -> dict[str, str]:
    """``Key: value`` lines, each value URL-decoded on its own; anything else is a protocol error."""
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):  # FreeSWITCH writes "Key: " for an empty value; tolerate a lost space
                headers[line[:-1]] = ""
                continue
            raise ProtocolError(f"header line without ': ': {line[:80]!r}")
        headers[key] = _decode(value.rstrip("\r"))
    return headers


def parse_plain_event(text: str) -> Event:
    """A ``text/event-plain`` body: encoded header lines, then an optional body cut by its own length."""
    head, sep, rest = text.partition("\n\n")
    try:
        headers = parse_header_lines(head)
    except ProtocolError as exc:
        raise EventError(str(exc)) from None
    body: str | None = None
    inner = headers.pop("Content-Length", None)
    if inner is not None:
        try:
            length = int(inner)
        except ValueError:
            raise EventError(f"event Content-Length is not a number: {inner!r}") from None
        data = rest.encode()
        if length < 0 or length > len(data):
            raise EventError(f"event body shorter than its Content-Length {length}")
        body = data[:length].decode("utf-8", "replace")
    elif sep and rest.strip():
        body = rest
    if "Event-Name" not in headers:
        raise EventError("event without Event-Name")
    return Event(headers, body, len(text))


def parse_json_event(text: str) -> Event:
    """A ``text/event-json`` body: one JSON object; ``_body`` is the event body."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EventError(f"event JSON does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise EventError("event JSON is not an object")
    body = data.pop("_body", None)
    data.pop("Content-Length", None)
    headers = data
    if not all(type(v) is str for v in data.values()):  # FreeSWITCH sends strings; anything else is re-encoded
        headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    if "Event-Name" not in headers:
        raise EventError("event without Event-Name")
    return Event(headers, None if body is None else str(body), len(text))


def parse_event(frame: Frame) -> Event:
    """The event a ``text/event-plain`` or ``text/event-json`` frame carries."""
    if frame.content_type == "text/event-plain":
        return parse_plain_event(frame.body)
    if frame.content_type == "text/event-json":
        return parse_json_event(frame.body)
    raise EventError(f"not an event frame: {frame.content_type!r}")


class FrameReader:
    """Cuts frames out of a byte stream fed in arbitrary pieces (TCP cuts anywhere)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: dict[str, str] | None = None
        self._need = 0
        self.error: ProtocolError | None = None  # hit after some good frames; raised by the next feed()
        self._consumed = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame (non-zero at EOF = cut mid-frame)."""
        return len(self._buf) + (1 if self._pending is not None else 0)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every frame now complete, in order.

        Garbage raises ProtocolError; when good frames came before it in the same bytes, those are
        returned first and the error is kept in ``error`` (and raised by the next call).
        """
        if self.error is not None:
            raise self.error
        self._buf += data
        frames: list[Frame] = []
        self._consumed = 0
        try:
            self._cut(frames)
        except ProtocolError as exc:
            if not frames:
                raise
            self.error = exc
        finally:
            del self._buf[: self._consumed]  # once per feed: deleting per frame is quadratic on big reads
        return frames

    def _cut(self, frames: list[Frame]) -> None:
        buf = self._buf
        pos = 0
        while True:
            if self._pending is None:
                end = buf.find(b"\n\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_HEADER_BYTES:
                        raise ProtocolError(f"no end of headers within {MAX_HEADER_BYTES} bytes")
                    break
                block = bytes(buf[pos:end]).decode("utf-8", "replace").lstrip("\n")
                pos = end + 2
                if not block:
                    self._consumed = pos
                    continue  # stray blank lines between frames
                headers = parse_header_lines(block)
                length = headers.get("Content-Length")
                if length is None:
                    frames.append(Frame(headers))
                    self._consumed = pos
                    continue
                try:
                    need = int(length)
                except ValueError:
                    raise ProtocolError(f"Content-Length is not a number: {length!r}") from None
                if need < 0 or need > MAX_BODY_BYTES:
                    raise ProtocolError(f"Content-Length out of range: {need}")
                self._pending, self._need = headers, need
            if len(buf) - pos < self._need:
                break
            body = bytes(buf[pos : pos + self._need]).decode("utf-8", "replace")
            pos += self._need
            frames.append(Frame(self._pending, body))
            self._pending, self._need = None, 0
            self._consumed = pos
        self._consumed = pos


def command(name: str, headers: Mapping[str, str] | None = None, body: str | None = None) -> bytes:
    """Serialise a command as FreeSWITCH expects it: lines, optional body, blank line."""
    lines = [name]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body is not None:
        raw = body.encode()
        lines.append(f"content-length: {len(raw)}")
        return ("\n".join(lines) + "\n\n").encode() + raw
    return ("\n".join(lines) + "\n\n").encode()


def reply_ok(frame_or_text: Any) -> bool:
    """True for a ``+OK`` reply text or api body."""
    text = frame_or_text if isinstance(frame_or_text, str) else str(frame_or_text)
    return text.startswith("+OK")
