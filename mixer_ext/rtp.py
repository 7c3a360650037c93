"""RTP packets (RFC 3550) and RFC 4733/2833 telephone events: parse and build, nothing else."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The fixed 12-byte header: V/P/X/CC, M/PT, sequence, timestamp, SSRC.
HEADER = _HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")
RTP_VERSION = 2


class RtpError(ValueError):
    """A datagram that is not a usable RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event payload: a DTMF digit (0-15) or other event, with its running duration."""

    event: int
    end: bool
    volume: int
    duration: int


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram; raises RtpError for anything that is not version-2 RTP."""
    if len(data) < _HEADER.size:
        raise RtpError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError("not RTP version 2")
    pt = b1 & 0x7F
    if 72 <= pt <= 76:
        raise RtpError("RTCP on the RTP port")
    offset = _HEADER.size + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if b0 & 0x20:
        if end <= offset or data[-1] == 0 or data[-1] > end - offset:
            raise RtpError("bad padding")
        end -= data[-1]
    if offset > end:
        raise RtpError("header longer than the packet")
    return RtpPacket(pt, seq, ts, ssrc, bytes(data[offset:end]), bool(b1 & 0x80))


def build_rtp(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """One RTP datagram with a plain 12-byte header."""
    header = _HEADER.pack(
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    return header + payload


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse an RFC 4733 telephone-event payload."""
    if len(payload) < _EVENT.size:
        raise RtpError("telephone-event payload too short")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(event: TelephoneEvent) -> bytes:
    """An RFC 4733 telephone-event payload."""
    return _EVENT.pack(event.event, (0x80 if event.end else 0) | (event.volume & 0x3F), event.duration)


def seq_distance(a: int, b: int) -> int:
    """Signed distance from 16-bit sequence ``a`` to ``b`` (wrap-aware, in [-32768, 32767])."""
    return ((b - a + 0x8000) & 0xFFFF) - 0x8000


def ts_distance(a: int, b: int) -> int:
    """Signed distance from 32-bit timestamp ``a`` to ``b`` (wrap-aware)."""
    return ((b - a + 0x80000000) & 0xFFFFFFFF) - 0x80000000
