"""Rooms and legs as the media loop sees them: the room definition, one leg's live media state.

Nothing here does I/O. The edge checks (``check_room``, ``check_media_address``) live here too, so
the control API, the SIP side and a room import refuse the same bad values before any of them
reaches the media loop.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from mixer_ext.codecs import ROOM_RATES, get_decoder, get_encoder
from mixer_ext.codecs.base import Decoder, Encoder
from mixer_ext.codecs.resample import FrameResampler
from mixer_ext.errors import Invalid
from mixer_ext.jitter import JitterBuffer
from mixer_ext.sdp import Choice
from mixer_ext.sip import Address, Leg

PTIME_MS = 20
_ROOM_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Far above any real room, far below what numpy's index type holds.
MAX_LOUDEST_K = 10_000


@dataclass(frozen=True)
class RoomConfig:
    """A room as the controller defines it (``opus_complexity`` None keeps libopus's default)."""

    room_id: str
    rate: int
    loudest_k: int = 0
    opus_complexity: int | None = None


def check_room(room_id: object, rate: object, loudest_k: object, opus_complexity: object = None) -> RoomConfig:
    """A RoomConfig from untrusted values; Invalid for a bad id, rate, K or Opus complexity."""
    if not isinstance(room_id, str) or not _ROOM_ID.match(room_id):
        raise Invalid("room id must be 1-64 letters, digits, '.', '_' or '-'", {"room": room_id})
    if rate not in ROOM_RATES or isinstance(rate, bool) or not isinstance(rate, int):
        raise Invalid(f"rate must be one of {list(ROOM_RATES)}", {"rate": rate})
    if not _int_in(loudest_k, 0, MAX_LOUDEST_K):
        raise Invalid(
            f"loudest_k must be an integer from 0 to {MAX_LOUDEST_K} (0 mixes everyone)", {"loudest_k": loudest_k}
        )
    if opus_complexity is not None and not _int_in(opus_complexity, 0, 10):
        raise Invalid("opus_complexity must be an integer from 0 to 10", {"opus_complexity": opus_complexity})
    return RoomConfig(room_id, rate, loudest_k, opus_complexity)  # type: ignore[arg-type]


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_media_address(address: object) -> Address:
    """An RTP destination from untrusted values: an IPv4 literal and a port 1-65535, else Invalid."""
    if not isinstance(address, list | tuple) or len(address) != 2:
        raise Invalid("media address must be [host, port]", {"remote_media": address})
    host, port = address
    try:
        ipaddress.IPv4Address(host)
    except (ValueError, TypeError):
        # A name would make the media loop resolve it (block) on every send.
        raise Invalid("media host must be an IPv4 address", {"remote_media": address}) from None
    if not _int_in(port, 1, 65535):
        raise Invalid("media port must be 1-65535", {"remote_media": address})
    return str(host), int(port)


class Trusted:
    """The networks whose SDP addresses are believed before their RTP arrives (FreeSWITCH nodes)."""

    def __init__(self, cidrs: list[str] | tuple[str, ...] = ("127.0.0.0/8",)) -> None:
        try:
            self.networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        except ValueError as exc:
            raise Invalid(f"trusted networks must be CIDRs: {exc}", {"trusted": list(cidrs)}) from None

    def __contains__(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


@dataclass
class Participant:
    """One leg's live media state (mutable: it changes every frame)."""

    pid: str
    leg: Leg
    room_rate: int
    # Where our RTP goes: the source of the leg's own RTP once it arrives (None: send nothing yet).
    send_to: Address | None = None
    opus_complexity: int | None = None
    gain: float = 1.0
    muted: bool = False
    deaf: bool = False
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    sequence: int = field(default_factory=lambda: secrets.randbits(16))
    timestamp: int = field(default_factory=lambda: secrets.randbits(32))
    energy: float = 0.0
    talking: bool = False
    decoder: Decoder = field(init=False)
    encoder: Encoder = field(init=False)
    jitter: JitterBuffer = field(init=False)
    resample_in: FrameResampler | None = field(init=False, default=None)
    resample_out: FrameResampler | None = field(init=False, default=None)
    ts_step: int = field(init=False, default=160)
    marker: bool = True
    dtmf_map: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.set_choice(self.leg.choice)

    def set_choice(self, choice: Choice) -> None:
        """(Re)build codec, jitter buffer and resamplers for a negotiated codec."""
        spec = choice.codec
        self.decoder = get_decoder(spec.key)
        self.encoder = get_encoder(spec.key, complexity=self.opus_complexity)
        self.ts_step = spec.timestamp_step(PTIME_MS)
        self.jitter = JitterBuffer(self.ts_step)
        same = spec.sample_rate == self.room_rate
        self.resample_in = None if same else FrameResampler(spec.sample_rate, self.room_rate, PTIME_MS)
        self.resample_out = None if same else FrameResampler(self.room_rate, spec.sample_rate, PTIME_MS)

    @property
    def share_key(self) -> str | None:
        """Legs with the same key in one room can be sent the same encoded mix (None: never shared)."""
        # A resampled leg keeps its own resampler history, so it always codes its own frame.
        return None if self.resample_out is not None else self.leg.choice.codec.key

    def describe(self) -> dict[str, Any]:
        spec = self.leg.choice.codec
        return {
            "id": self.pid,
            "call_id": self.leg.call_id,
            "room": self.leg.room_id,
            "caller": caller_of(self.leg.remote_party),
            "codec": f"{spec.name}/{spec.clock_rate}",
            "muted": self.muted,
            "deaf": self.deaf,
            "gain": self.gain,
            "talking": self.talking,
            "remote_media": list(self.leg.remote_media),
            "packets": {
                "received": self.jitter.received,
                "lost": self.jitter.lost,
                "late": self.jitter.late,
                "absurd": self.jitter.absurd,
            },
        }


_SIP_USER = re.compile(r"<?sips?:([^@;>]+)@", re.IGNORECASE)


def caller_of(from_header: str) -> str:
    """The user part of a leg's From (FreeSWITCH puts the caller's number there), or ""."""
    found = _SIP_USER.search(from_header or "")
    return found.group(1) if found else ""


@dataclass
class Room:
    config: RoomConfig
    members: dict[str, Participant] = field(default_factory=dict)  # by pid
