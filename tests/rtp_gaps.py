"""Media gaps as a phone sees them: RTP arrival times and decoded audio, pure functions only.

``farm_harness.RtpTap`` captures arrivals on a real farm; everything here also runs in the unit tier
(tests/test_rtp_gaps.py) on synthetic packets and audio, without FreeSWITCH.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

ETHERNET_HEADER = 14  # lo frames carry an all-zero Ethernet header before the IP packet
WINDOW = 0.02  # one RTP packet's worth of audio at the usual ptime


class Arrival(NamedTuple):
    """One RTP packet as it reached the phone: ``at`` is ``time.monotonic()`` when it was read."""

    at: float
    source: str  # "ip:port" of the sender
    destination: str  # "ip:port" it was sent to (FreeSWITCH answers where the phone's RTP came from)
    seq: int
    timestamp: int
    ssrc: int


class Stream(NamedTuple):
    """A run of consecutive arrivals from one sender (same address and SSRC)."""

    source: str
    ssrc: int
    first: float
    last: float
    packets: int


def rtp_in_frame(frame: bytes) -> tuple[str, str, int, int, int] | None:
    """(source, destination "ip:port", seq, timestamp, ssrc) of an Ethernet-framed UDP datagram with RTP, else None.

    RTP is version 2 with a payload type outside RTCP's 192-223 (RFC 5761), so SIP, STUN and RTCP are left out.
    """
    ip = frame[ETHERNET_HEADER:]
    if len(ip) < 20 or frame[12:14] != b"\x08\x00" or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
        return None
    if struct.unpack("!H", ip[6:8])[0] & 0x1FFF or ip[6] & 0x20:  # a fragment: no RTP header of its own
        return None
    udp = ip[(ip[0] & 0x0F) * 4 :]
    payload = udp[8:]
    if len(payload) < 12 or payload[0] >> 6 != 2 or 192 <= payload[1] <= 223:
        return None
    source_port, destination_port = struct.unpack("!HH", udp[0:4])
    seq, timestamp, ssrc = struct.unpack("!HII", payload[2:12])
    source = f"{socket.inet_ntoa(ip[12:16])}:{source_port}"
    return source, f"{socket.inet_ntoa(ip[16:20])}:{destination_port}", seq, timestamp, ssrc


def _window(arrivals: Sequence[Arrival], after: float | None, until: float | None = None) -> list[Arrival]:
    return [a for a in arrivals if (after is None or a.at >= after) and (until is None or a.at <= until)]


def largest_gap(
    arrivals: Sequence[Arrival], after: float | None = None, until: float | None = None
) -> tuple[float, float | None]:
    """The longest stretch (seconds) of the window [after, until] in which no packet arrived, and when it began.

    Arrivals outside the window are ignored. Without ``after``/``until`` the window starts/ends at the first/last
    arrival; with them, the stretch before the first or after the last arrival counts too, so media that
    never resumed shows as a gap running to ``until``. No arrival and no window: (0.0, None).
    """
    times = sorted(a.at for a in _window(arrivals, after, until))
    if after is not None:
        times.insert(0, after)
    if until is not None:
        times.append(until)
    best, at = 0.0, None
    for earlier, later in itertools.pairwise(times):
        if later - earlier > best:
            best, at = later - earlier, earlier
    return best, at


def sources(arrivals: Sequence[Arrival], after: float | None = None) -> list[Stream]:
    """The senders in arrival order, one ``Stream`` per run: more than one means the media moved (a takeover)."""
    runs: list[Stream] = []
    for a in sorted(_window(arrivals, after), key=lambda a: a.at):
        if runs and (runs[-1].source, runs[-1].ssrc) == (a.source, a.ssrc):
            runs[-1] = runs[-1]._replace(last=a.at, packets=runs[-1].packets + 1)
        else:
            runs.append(Stream(a.source, a.ssrc, a.at, a.at, 1))
    return runs


def tone_level_db(pcm: np.ndarray, rate: int, freq: float) -> float:
    """Power near ``freq`` (±20 Hz) relative to a full-scale sine, in dB; -120 for silence."""
    if len(pcm) == 0:
        return -120.0
    x = pcm.astype(np.float64) / 32768.0
    # Zero-padded to 10 Hz bins so a 20 ms window still has bins within ±20 Hz; longer input is unchanged.
    size = max(len(x), rate // 10)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=size)) / (len(x) / 4)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    band = spectrum[(freqs > freq - 20) & (freqs < freq + 20)]
    peak = float(band.max()) if band.size else 0.0
    return 20 * np.log10(peak) if peak > 1e-6 else -120.0


def silence_gap(pcm: np.ndarray, rate: int, tone: float, threshold: float = -40.0) -> float:
    """The longest stretch (seconds) of ``pcm`` in which 20 ms windows do not carry ``tone`` above ``threshold`` dB.

    The fallback to ``largest_gap`` when only a phone's recording (``Phone.heard``) is at hand; a trailing
    part window shorter than 20 ms is not judged.
    """
    size = max(1, int(rate * WINDOW))
    longest = run = 0
    for start in range(0, len(pcm) - size + 1, size):
        if tone_level_db(pcm[start : start + size], rate, tone) > threshold:
            run = 0
        else:
            run += 1
            longest = max(longest, run)
    return longest * size / rate
