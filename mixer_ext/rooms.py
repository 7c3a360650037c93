"""Rooms and legs as the media loop sees them: the room definition, one leg's live media state.

Nothing here does I/O. The edge checks (``check_room``, ``check_media_address``) live here too, so
the control API, the SIP side and a room import refuse the same bad values before any of them
reaches the media loop.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mixer_ext.codecs import ROOM_RATES, get_decoder, get_encoder
from mixer_ext.codecs.base import Decoder, Encoder
from mixer_ext.codecs.resample import FrameResampler
from mixer_ext.errors import Invalid
from mixer_ext.jitter import JitterBuffer
from mixer_ext.lanes import PTIME_MS, Lane
from mixer_ext.sdp import Choice
from mixer_ext.sip import Address, Leg

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


class Participant:
    """One leg's live media state. What changes every frame lives in its slot of a ``Lane`` (the
    lane of its codec and room rate), read and written here through properties."""

    def __init__(
        self,
        pid: str,
        leg: Leg,
        room_rate: int,
        lanes: Callable[[str, int], Lane],
        send_to: Address | None = None,
        opus_complexity: int | None = None,
    ) -> None:
        self.pid = pid
        self.leg = leg
        self.room_rate = room_rate
        self.opus_complexity = opus_complexity
        self.gain = 1.0
        self.muted = False
        self.deaf = False
        self.dtmf_map: dict[tuple[str, int], int] = {}
        self._lanes = lanes
        self.lane: Lane | None = None
        self.slot = -1
        self.set_choice(leg.choice)
        self.send_to = send_to

    def set_choice(self, choice: Choice) -> None:
        """(Re)build codec, jitter buffer and resamplers for a negotiated codec (a slot in its lane).

        The outgoing stream (SSRC, sequence, timestamp) carries over to the new lane."""
        spec = choice.codec
        old, old_slot = self.lane, self.slot
        if old is None:
            ssrc, sequence, timestamp, send_to = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32), None
        else:
            ssrc, sequence, timestamp, send_to = self.ssrc, self.sequence, self.timestamp, self.send_to
            old.free(old_slot)
        lane = self._lanes(spec.key, self.room_rate)
        self.lane, self.slot = lane, lane.alloc(self, choice.payload_type)
        lane.set_ssrc(self.slot, ssrc)
        lane.seq[self.slot] = sequence
        lane.ts[self.slot] = timestamp
        lane.set_dest(self.slot, send_to)
        self.decoder: Decoder = get_decoder(spec.key)
        self.encoder: Encoder = get_encoder(spec.key, complexity=self.opus_complexity)
        self.ts_step = spec.timestamp_step(PTIME_MS)
        self.jitter = JitterBuffer(ring=lane.jitter, slot=self.slot)
        same = spec.sample_rate == self.room_rate
        self.resample_in = None if same else FrameResampler(spec.sample_rate, self.room_rate, PTIME_MS)
        self.resample_out = None if same else FrameResampler(self.room_rate, spec.sample_rate, PTIME_MS)

    def release(self) -> None:
        """Give the lane slot back (the leg left)."""
        if self.lane is not None:
            self.lane.free(self.slot)
            self.lane = None

    @property
    def _at(self) -> tuple[Lane, int]:
        assert self.lane is not None, "a participant that left has no media state"
        return self.lane, self.slot

    @property
    def send_to(self) -> Address | None:
        """Where our RTP goes: the source of the leg's own RTP once it arrives (None: send nothing yet)."""
        lane, slot = self._at
        return lane.dests[slot]

    @send_to.setter
    def send_to(self, dest: Address | None) -> None:
        lane, slot = self._at
        lane.set_dest(slot, dest)

    @property
    def ssrc(self) -> int:
        lane, slot = self._at
        return int(lane.ssrc[slot])

    @ssrc.setter
    def ssrc(self, value: int) -> None:
        lane, slot = self._at
        lane.set_ssrc(slot, value & 0xFFFFFFFF)

    @property
    def sequence(self) -> int:
        lane, slot = self._at
        return int(lane.seq[slot])

    @sequence.setter
    def sequence(self, value: int) -> None:
        lane, slot = self._at
        lane.seq[slot] = value & 0xFFFF

    @property
    def timestamp(self) -> int:
        lane, slot = self._at
        return int(lane.ts[slot])

    @timestamp.setter
    def timestamp(self, value: int) -> None:
        lane, slot = self._at
        lane.ts[slot] = value & 0xFFFFFFFF

    @property
    def energy(self) -> float:
        lane, slot = self._at
        return float(lane.energy[slot])

    @property
    def talking(self) -> bool:
        lane, slot = self._at
        return bool(lane.talking[slot])

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
