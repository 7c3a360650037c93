"""SDP offer/answer (RFC 3264) for one audio stream: parse an offer, pick the best common codec, answer."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mixer_ext.codecs import CodecSpec, available

TELEPHONE_EVENT = "telephone-event"


class SdpError(ValueError):
    """An SDP body we cannot use (malformed, no audio, or no codec in common)."""


class NoCommonCodec(SdpError):
    """The offer shares no audio codec with this mixer (SIP answers 488)."""


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str = ""


@dataclass(frozen=True)
class AudioOffer:
    """The parts of an SDP offer the mixer uses."""

    address: str
    port: int
    formats: tuple[RtpMap, ...]
    ptime: int = 20
    direction: str = "sendrecv"
    session_version: int = 0
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """The negotiated stream: the codec, its payload type and the telephone-event payload type."""

    codec: CodecSpec
    payload_type: int
    dtmf_payload_type: int | None
    dtmf_clock_rate: int = 8000


# Static payload types an offer may use without an a=rtpmap line (RFC 3551).
_STATIC = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1)}
_RTPMAP = re.compile(r"^(\d+)\s+([^/\s]+)/(\d+)(?:/(\d+))?")


def parse_offer(text: str) -> AudioOffer:
    """Parse the first audio m-line of an SDP body; raises SdpError when there is none usable."""
    session_addr = ""
    media_addr = ""
    in_audio = False
    seen_audio = False
    port = -1
    pts: list[int] = []
    rtpmap: dict[int, tuple[str, int, int]] = {}
    fmtp: dict[int, str] = {}
    ptime = 20
    direction = "sendrecv"
    version = 0
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "o":
            parts = value.split()
            if len(parts) >= 3 and parts[2].isdigit():
                version = int(parts[2])
        elif kind == "m":
            if seen_audio:
                in_audio = False
                continue
            parts = value.split()
            in_audio = len(parts) >= 4 and parts[0] == "audio"
            if in_audio:
                seen_audio = True
                if not parts[1].isdigit():
                    raise SdpError("audio port is not a number")
                port = int(parts[1])
                if not 1 <= port <= 65535:
                    # Refused here, at the edge: a port no socket can send to must never reach the media loop.
                    raise SdpError("audio port must be 1-65535")
                pts = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
        elif kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                addr = parts[2].split("/")[0]
                if in_audio:
                    media_addr = addr
                elif not seen_audio:
                    session_addr = addr
        elif kind == "a" and in_audio:
            name, _, rest = value.partition(":")
            if name == "rtpmap":
                m = _RTPMAP.match(rest)
                if m:
                    rtpmap[int(m[1])] = (m[2], int(m[3]), int(m[4] or 1))
            elif name == "fmtp":
                pt_s, _, params = rest.partition(" ")
                if pt_s.isdigit():
                    fmtp[int(pt_s)] = params.strip()
            elif name == "ptime" and rest.strip().isdigit():
                ptime = int(rest.strip())
            elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = name
    if not seen_audio:
        raise SdpError("no audio stream in the offer")
    address = media_addr or session_addr
    if not address:
        raise SdpError("no connection address for audio")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        # A host name would be resolved (blocking) on every RTP send; FreeSWITCH always writes an address.
        raise SdpError("audio connection address must be an IPv4 address") from None
    formats = []
    for pt in pts:
        if pt in rtpmap:
            name, rate, channels = rtpmap[pt]
        elif pt in _STATIC:
            name, rate, channels = _STATIC[pt]
        else:
            continue
        formats.append(RtpMap(pt, name, rate, channels, fmtp.get(pt, "")))
    return AudioOffer(address, port, tuple(formats), ptime, direction, version)


def choose(offer: AudioOffer, room_rate: int, codecs: list[CodecSpec] | None = None) -> Choice:
    """Pick the codec that carries the most of the room's bandwidth; ties go to the offerer's order.

    An 8 kHz room takes PCMU as happily as Opus (nothing above 4 kHz exists in it), while a
    16 kHz room prefers G.722, L16/16000 or Opus over G.711. Raises NoCommonCodec.
    """
    ours = {c.key: c for c in (codecs if codecs is not None else available())}
    best: tuple[int, int, CodecSpec, int] | None = None
    events: dict[int, int] = {}  # telephone-event clock rate -> payload type
    for position, fmt in enumerate(offer.formats):
        if fmt.name.lower() == TELEPHONE_EVENT:
            events.setdefault(fmt.clock_rate, fmt.payload_type)
            continue
        spec = ours.get(f"{fmt.name.lower()}/{fmt.clock_rate}")
        if spec is None:
            continue
        score = (min(spec.sample_rate, room_rate), -position)
        if best is None or score > (best[0], best[1]):
            best = (score[0], score[1], spec, fmt.payload_type)
    if best is None:
        offered = [f"{f.name}/{f.clock_rate}" for f in offer.formats]
        raise NoCommonCodec(f"no common codec in offer {offered}")
    codec = best[2]
    # telephone-event should run on the audio's clock (RFC 4733 2.1); 8000 is the fallback.
    for rate in (codec.clock_rate, 8000):
        if rate in events:
            return Choice(codec, best[3], events[rate], rate)
    return Choice(codec, best[3], None)


def build_answer(
    choice: Choice, address: str, port: int, session_id: int, version: int, direction: str = "sendrecv"
) -> str:
    """The SDP answer for one audio stream at ``address:port``."""
    codec = choice.codec
    rtpmap = f"{codec.name}/{codec.clock_rate}" + (f"/{codec.channels}" if codec.channels > 1 else "")
    pts = [str(choice.payload_type)]
    lines = [
        "v=0",
        f"o=fsfarm-mixer {session_id} {version} IN IP4 {address}",
        "s=fsfarm mixer",
        f"c=IN IP4 {address}",
        "t=0 0",
    ]
    attrs = [f"a=rtpmap:{choice.payload_type} {rtpmap}"]
    if codec.fmtp:
        attrs.append(f"a=fmtp:{choice.payload_type} {codec.fmtp}")
    if choice.dtmf_payload_type is not None:
        pts.append(str(choice.dtmf_payload_type))
        attrs.append(f"a=rtpmap:{choice.dtmf_payload_type} {TELEPHONE_EVENT}/{choice.dtmf_clock_rate}")
        attrs.append(f"a=fmtp:{choice.dtmf_payload_type} 0-16")
    # Answer the mirror of the offer's direction (RFC 3264 section 6.1).
    mirrored = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)
    lines.append(f"m=audio {port} RTP/AVP {' '.join(pts)}")
    lines.extend(attrs)
    lines.append("a=ptime:20")
    lines.append(f"a={mirrored}")
    return "\r\n".join(lines) + "\r\n"


def build_offer(formats: list[RtpMap], address: str, port: int, session_id: int = 1) -> str:
    """An SDP offer (used by test peers and tools to call the mixer)."""
    lines = [
        "v=0",
        f"o=peer {session_id} 1 IN IP4 {address}",
        "s=peer",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(f.payload_type) for f in formats)}",
    ]
    for f in formats:
        ch = f"/{f.channels}" if f.channels > 1 else ""
        lines.append(f"a=rtpmap:{f.payload_type} {f.name}/{f.clock_rate}{ch}")
        if f.fmtp:
            lines.append(f"a=fmtp:{f.payload_type} {f.fmtp}")
    lines += ["a=ptime:20", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"
