"""The mixer runtime: rooms, legs, the RTP socket, the SIP socket and the 20 ms media loop.

I/O lives here; the arithmetic is in ``mix`` (kernel) and ``codecs``. One lock guards the
room tables: SIP and the control API mutate them, the media loop holds it for one frame.
"""

from __future__ import annotations

import errno
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mixer_ext import mix
from mixer_ext.clock import MediaClock
from mixer_ext.codecs import ROOM_RATES, get_decoder, get_encoder, get_spec
from mixer_ext.codecs.base import Decoder, Encoder
from mixer_ext.codecs.g711 import TableDecoder, TableEncoder
from mixer_ext.codecs.resample import FrameResampler
from mixer_ext.errors import Conflict, Invalid, NotFound
from mixer_ext.jitter import JitterBuffer, Verdict
from mixer_ext.rtp import RtpError, RtpPacket, build_event, build_rtp, parse_event, parse_rtp
from mixer_ext.sdp import Choice
from mixer_ext.sip import Address, Leg, SipUas

log = logging.getLogger(__name__)

PTIME_MS = 20
STATE_VERSION = 1
_ROOM_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Bounded so a flood of garbage cannot starve the mixing of one frame.
MAX_PACKETS_PER_TICK = 50_000


@dataclass(frozen=True)
class RoomConfig:
    """A room as the controller defines it."""

    room_id: str
    rate: int
    loudest_k: int = 0


@dataclass
class Participant:
    """One leg's live media state (mutable: it changes every frame)."""

    pid: str
    leg: Leg
    room_rate: int
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
        self.encoder = get_encoder(spec.key)
        self.ts_step = spec.timestamp_step(PTIME_MS)
        self.jitter = JitterBuffer(self.ts_step)
        same = spec.sample_rate == self.room_rate
        self.resample_in = None if same else FrameResampler(spec.sample_rate, self.room_rate, PTIME_MS)
        self.resample_out = None if same else FrameResampler(self.room_rate, spec.sample_rate, PTIME_MS)

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


@dataclass(frozen=True)
class _Plan:
    """The rows of one rate's block, grouped by room, rebuilt only when membership or flags change."""

    rate: int
    parts: tuple[Participant, ...]
    room_of: np.ndarray
    gain: np.ndarray
    muted: np.ndarray
    deaf: np.ndarray
    k: np.ndarray


class _SipCounters(Collector):
    def __init__(self, uas: SipUas) -> None:
        self._uas = uas

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("fsfarm_mixer_sip_messages", "SIP datagrams by kind or outcome", labels=["kind"])
        for kind, value in sorted(self._uas.counters.items()):
            family.add_metric([kind], value)
        yield family


class Metrics:
    """The mixer's Prometheus series, in a registry of its own (several mixers may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frame_seconds = Histogram(
            "fsfarm_mixer_frame_seconds",
            "Time to mix and send one 20 ms frame",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.04, 0.1),
            registry=r,
        )
        self.overruns = Counter("fsfarm_mixer_overruns", "Frames that finished after the next was due", registry=r)
        self.participants = Gauge("fsfarm_mixer_participants", "Legs currently mixed", registry=r)
        self.rooms = Gauge("fsfarm_mixer_rooms", "Rooms on this mixer", registry=r)
        self.packets_in = Counter("fsfarm_mixer_packets_received", "RTP packets accepted", registry=r)
        self.packets_out = Counter("fsfarm_mixer_packets_sent", "RTP packets sent", registry=r)
        self.packets_lost = Counter("fsfarm_mixer_packets_lost", "Frames missing at playout (concealed)", registry=r)
        self.bad_packets = Counter(
            "fsfarm_mixer_bad_packets", "Datagrams dropped on the RTP port", ["reason"], registry=r
        )


class Mixer:
    """A dumb conference mixer: answers SIP for ``room-<id>``, mixes every room, obeys the control API."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        sip_port: int = 0,
        rtp_port: int = 0,
        advertise: str | None = None,
        batch_codecs: bool = True,
    ) -> None:
        self.host = host
        # False codes every leg on its own (the bench's reference for the batched G.711 path).
        self.batch_codecs = batch_codecs
        self.advertise = advertise or host
        self.sip_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip_sock.bind((host, sip_port))
        self.rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.rtp_sock.bind((host, rtp_port))
        self.rtp_sock.setblocking(False)
        self.sip_port = self.sip_sock.getsockname()[1]
        self.rtp_port = self.rtp_sock.getsockname()[1]
        self.rooms: dict[str, Room] = {}
        self.by_call: dict[str, Participant] = {}
        self.by_addr: dict[Address, Participant] = {}
        self._plans: dict[int, _Plan] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.metrics = Metrics()
        self.uas = SipUas(self, self.advertise, self.sip_port)
        self.metrics.registry.register(_SipCounters(self.uas))
        self.clock: MediaClock | None = None
        self.frames = 0
        self._bad_logged: dict[str, float] = {}

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> Mixer:
        """Start the SIP and media threads."""
        for target, name in ((self._sip_loop, "mixer-sip"), (self._media_loop, "mixer-media")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the threads and close the sockets."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.sip_sock.close()
        self.rtp_sock.close()

    def alive(self) -> bool:
        """True while the SIP and media threads are running."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def __enter__(self) -> Mixer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- the Conference protocol the SIP UAS drives -------------------------------------------

    def room_rate(self, room_id: str) -> int | None:
        room = self.rooms.get(room_id)
        return room.config.rate if room else None

    def media_address(self) -> Address:
        return self.advertise, self.rtp_port

    def join(self, leg: Leg) -> None:
        with self._lock:
            self._add(leg)

    def update(self, leg: Leg) -> None:
        with self._lock:
            part = self.by_call[leg.call_id]
            self._unmap(part)
            codec_changed = part.leg.choice != leg.choice
            part.leg = leg
            if codec_changed:
                part.set_choice(leg.choice)
            self.by_addr[leg.remote_media] = part
            log.info("leg %s in room %s moved media to %s:%s", part.pid, leg.room_id, *leg.remote_media)

    def leave(self, call_id: str, reason: str) -> None:
        with self._lock:
            part = self.by_call.pop(call_id, None)
            if part is None:
                return
            self._unmap(part)
            room = self.rooms.get(part.leg.room_id)
            if room is not None:
                room.members.pop(part.pid, None)
            self._plans = None
            log.info("leg %s left room %s (%s)", part.pid, part.leg.room_id, reason)

    def _unmap(self, part: Participant) -> None:
        # Only drop the address if it still points at this leg (another may have latched it since).
        if self.by_addr.get(part.leg.remote_media) is part:
            del self.by_addr[part.leg.remote_media]

    def _add(self, leg: Leg, pid: str | None = None) -> Participant:
        room = self.rooms[leg.room_id]
        part = Participant(pid or "p" + secrets.token_hex(4), leg, room.config.rate)
        room.members[part.pid] = part
        self.by_call[leg.call_id] = part
        self.by_addr[leg.remote_media] = part
        self._plans = None
        log.info(
            "leg %s joined room %s with %s from %s:%s", part.pid, leg.room_id, leg.choice.codec.name, *leg.remote_media
        )
        return part

    # ----- control operations (the HTTP API calls these) -----------------------------------------

    def create_room(self, room_id: str, rate: int, loudest_k: int = 0) -> RoomConfig:
        """Create an empty room; Conflict if it exists, Invalid for a bad id, rate or K."""
        if not isinstance(room_id, str) or not _ROOM_ID.match(room_id):
            raise Invalid("room id must be 1-64 letters, digits, '.', '_' or '-'", {"room": room_id})
        if rate not in ROOM_RATES:
            raise Invalid(f"rate must be one of {list(ROOM_RATES)}", {"rate": rate})
        if not isinstance(loudest_k, int) or isinstance(loudest_k, bool) or loudest_k < 0:
            raise Invalid("loudest_k must be a non-negative integer (0 mixes everyone)", {"loudest_k": loudest_k})
        with self._lock:
            if room_id in self.rooms:
                raise Conflict(f"room {room_id} already exists", {"room": room_id})
            config = RoomConfig(room_id, rate, loudest_k)
            self.rooms[room_id] = Room(config)
            self._plans = None
        log.info("room %s created at %d Hz (loudest_k=%d)", room_id, rate, loudest_k)
        return config

    def room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise NotFound(f"no room {room_id} on this mixer", {"room": room_id})
        return room

    def describe_room(self, room_id: str) -> dict[str, Any]:
        with self._lock:
            room = self.room(room_id)
            return {
                "room": room_id,
                "rate": room.config.rate,
                "loudest_k": room.config.loudest_k,
                "participants": [p.describe() for p in room.members.values()],
            }

    def delete_room(self, room_id: str) -> None:
        """Hang up every leg of the room and forget it."""
        with self._lock:
            room = self.room(room_id)
            for pid in list(room.members):
                self.kick(room_id, pid)
            del self.rooms[room_id]
            self._plans = None
        log.info("room %s deleted", room_id)

    def participant(self, room_id: str, pid: str) -> Participant:
        part = self.room(room_id).members.get(pid)
        if part is None:
            raise NotFound(f"no participant {pid} in room {room_id}", {"room": room_id, "participant": pid})
        return part

    def set_flags(
        self, room_id: str, pid: str, muted: bool | None = None, deaf: bool | None = None, gain: float | None = None
    ) -> dict[str, Any]:
        """Change mute, deaf or gain of one participant."""
        with self._lock:
            part = self.participant(room_id, pid)
            if gain is not None:
                if isinstance(gain, bool) or not isinstance(gain, int | float) or not 0 <= gain <= 16:
                    raise Invalid("gain must be a number from 0 to 16", {"gain": gain})
                part.gain = float(gain)
            if muted is not None:
                part.muted = bool(muted)
            if deaf is not None:
                part.deaf = bool(deaf)
            self._plans = None
            return part.describe()

    def kick(self, room_id: str, pid: str) -> None:
        """Hang up one participant (sends BYE)."""
        with self._lock:
            part = self.participant(room_id, pid)
            bye = self.uas.bye(part.leg.call_id)
            self.leave(part.leg.call_id, "kicked")
        if bye is not None:
            try:
                self.sip_sock.sendto(*bye)
            except OSError as exc:
                log.warning("BYE to %s failed: %s", bye[1], exc)

    # ----- room state (hot failover) -----------------------------------------------------------

    def export_room(self, room_id: str) -> dict[str, Any]:
        """Everything another mixer needs to carry on this room (JSON-ready)."""
        with self._lock:
            room = self.room(room_id)
            parts = []
            for p in room.members.values():
                leg, choice = p.leg, p.leg.choice
                parts.append(
                    {
                        "id": p.pid,
                        "call_id": leg.call_id,
                        "muted": p.muted,
                        "deaf": p.deaf,
                        "gain": p.gain,
                        "codec": f"{choice.codec.name}/{choice.codec.clock_rate}",
                        "payload_type": choice.payload_type,
                        "dtmf_payload_type": choice.dtmf_payload_type,
                        "dtmf_clock_rate": choice.dtmf_clock_rate,
                        "remote_media": list(leg.remote_media),
                        "rtp": {"ssrc": p.ssrc, "sequence": p.sequence, "timestamp": p.timestamp},
                        "sip": {
                            "local_tag": leg.local_tag,
                            "remote_tag": leg.remote_tag,
                            "remote_uri": leg.remote_uri,
                            "signalling": list(leg.signalling),
                            "local_uri": leg.local_uri,
                            "remote_party": leg.remote_party,
                            "local_cseq": leg.local_cseq,
                            "route": list(leg.route),
                        },
                    }
                )
            return {
                "version": STATE_VERSION,
                "room": room_id,
                "rate": room.config.rate,
                "loudest_k": room.config.loudest_k,
                "exported_at": time.time(),
                "participants": parts,
            }

    def export_all(self) -> list[dict[str, Any]]:
        """Every room's state, for a controller that snapshots a whole mixer in one call."""
        with self._lock:
            return [self.export_room(room_id) for room_id in self.rooms]

    def import_room(self, state: dict[str, Any]) -> dict[str, Any]:
        """Recreate a room exported by another mixer, every participant and dialog included."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise Invalid(f"room state must be an object with version {STATE_VERSION}")
        try:
            room_id = state["room"]
            rate = int(state["rate"])
            exported_at = float(state.get("exported_at", time.time()))
            loudest_k = int(state.get("loudest_k", 0))
            plan = []
            for p in state["participants"]:
                choice = Choice(
                    get_spec(p["codec"]),
                    int(p["payload_type"]),
                    None if p.get("dtmf_payload_type") is None else int(p["dtmf_payload_type"]),
                    int(p.get("dtmf_clock_rate", 8000)),
                )
                sip = p["sip"]
                leg = Leg(
                    call_id=str(p["call_id"]),
                    room_id=room_id,
                    remote_media=(str(p["remote_media"][0]), int(p["remote_media"][1])),
                    choice=choice,
                    local_tag=sip["local_tag"],
                    remote_tag=sip["remote_tag"],
                    remote_uri=sip["remote_uri"],
                    signalling=(str(sip["signalling"][0]), int(sip["signalling"][1])),
                    local_uri=sip["local_uri"],
                    remote_party=sip["remote_party"],
                    local_cseq=int(sip.get("local_cseq", 1)),
                    route=tuple(str(r) for r in sip.get("route", [])),
                )
                plan.append((p, leg))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise Invalid("room state is incomplete or malformed", {"problem": repr(exc)}) from exc
        # The stream went on while the state travelled (or the old mixer died): move sequence and
        # timestamp on by the frames that elapsed, so receivers see a gap, never packets from the past.
        elapsed = max(0, round((time.time() - exported_at) / (PTIME_MS / 1000))) + 1
        with self._lock:
            self.create_room(room_id, rate, loudest_k)
            for p, leg in plan:
                if leg.call_id in self.by_call:
                    continue  # already here (an import retried): keep the live one
                part = self._add(leg, pid=str(p["id"]))
                part.muted, part.deaf, part.gain = bool(p["muted"]), bool(p["deaf"]), float(p["gain"])
                rtp = p.get("rtp", {})
                # Same SSRC, sequence and timestamp moved on: receivers see one stream with a gap.
                part.ssrc = int(rtp.get("ssrc", part.ssrc)) & 0xFFFFFFFF
                part.sequence = (int(rtp.get("sequence", part.sequence)) + elapsed) & 0xFFFF
                timestamp = int(rtp.get("timestamp", part.timestamp)) + elapsed * part.ts_step
                part.timestamp = timestamp & 0xFFFFFFFF
                self.uas.adopt(leg)
            log.info("room %s imported with %d participants", room_id, len(plan))
            return self.describe_room(room_id)

    def list_rooms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "room": r.config.room_id,
                    "rate": r.config.rate,
                    "loudest_k": r.config.loudest_k,
                    "participants": len(r.members),
                }
                for r in self.rooms.values()
            ]

    # ----- SIP thread ---------------------------------------------------------------------------

    def _sip_loop(self) -> None:
        self.sip_sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, source = self.sip_sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                with self._lock:
                    replies = self.uas.handle(data, source)
                for out, dest in replies:
                    self.sip_sock.sendto(out, dest)
            except Exception:
                # One bad message must never take the mixer down: log it and carry on.
                log.exception("SIP message from %s:%s failed", *source)

    # ----- media -------------------------------------------------------------------------------

    def _media_loop(self) -> None:
        self.clock = MediaClock(PTIME_MS / 1000)
        while not self._stop.is_set():
            tick = self.clock.wait()
            started = time.perf_counter()
            try:
                self.tick()
            except Exception:
                log.exception("media frame %d failed", tick.index)
            self.metrics.frame_seconds.observe(time.perf_counter() - started)
            if time.monotonic() > tick.deadline + self.clock.period:
                self.metrics.overruns.inc()

    def tick(self) -> None:
        """One 20 ms frame: read every packet waiting, mix every room, send every leg its mix."""
        with self._lock:
            self._drain()
            sends: list[tuple[bytes, Address]] = []
            for plan in self._current_plans().values():
                sends.extend(self._mix_plan(plan))
            self.metrics.participants.set(len(self.by_call))
            self.metrics.rooms.set(len(self.rooms))
        sock = self.rtp_sock
        sent = 0
        for data, dest in sends:
            try:
                sock.sendto(data, dest)
                sent += 1
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNREFUSED, errno.ENOBUFS):
                    log.warning("RTP send to %s failed: %s", dest, exc)
        self.metrics.packets_out.inc(sent)
        self.frames += 1

    def _drain(self) -> None:
        recv = self.rtp_sock.recvfrom
        bad = self._bad
        accepted = 0
        for _ in range(MAX_PACKETS_PER_TICK):
            try:
                data, source = recv(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # e.g. ICMP port unreachable reported on the socket; nothing to read
            part = self.by_addr.get(source)
            try:
                packet = parse_rtp(data)
            except RtpError:
                bad("not_rtp" if part else "unknown_source", source)
                continue
            if part is None:
                part = self._latch(source, packet.payload_type)
                if part is None:
                    bad("unknown_source", source)
                    continue
            choice = part.leg.choice
            if packet.payload_type == choice.payload_type:
                verdict = part.jitter.push(packet)
                if verdict is Verdict.ABSURD:
                    bad("absurd_sequence_or_timestamp", source)
                elif verdict is Verdict.LATE:
                    bad("late", source)
                else:
                    accepted += 1
            elif choice.dtmf_payload_type is not None and packet.payload_type == choice.dtmf_payload_type:
                accepted += 1
                self._forward_event(part, packet)
            else:
                bad("unknown_payload_type", source)
        self.metrics.packets_in.inc(accepted)

    def _bad(self, reason: str, source: Address) -> None:
        """Count a dropped datagram and log it, at most once per reason every 10 s."""
        self.metrics.bad_packets.labels(reason).inc()
        now = time.monotonic()
        if now - self._bad_logged.get(reason, -1e9) >= 10.0:
            self._bad_logged[reason] = now
            log.info(
                "dropped RTP-port datagram from %s:%s: %s (counted in fsfarm_mixer_bad_packets_total)", *source, reason
            )

    def _latch(self, source: Address, payload_type: int) -> Participant | None:
        """Symmetric RTP: a leg whose SDP address is not where its packets come from (NAT, a
        multi-homed phone) is matched by port among legs that have sent nothing yet, then answered
        at the address it really uses."""
        candidates = [
            p
            for p in self.by_call.values()
            if p.jitter.received == 0
            and p.leg.remote_media[1] == source[1]
            and p.leg.choice.payload_type == payload_type
        ]
        if len(candidates) != 1:
            return None
        part = candidates[0]
        log.info("leg %s latched media from %s:%s (SDP said %s:%s)", part.pid, *source, *part.leg.remote_media)
        self._unmap(part)
        part.leg = replace(part.leg, remote_media=source)
        self.by_addr[source] = part
        return part

    def _forward_event(self, source: Participant, packet: RtpPacket) -> None:
        """Pass an RFC 4733 event to everyone else in the room who negotiated telephone-event."""
        if source.muted:
            return
        room = self.rooms.get(source.leg.room_id)
        if room is None:
            return
        key = (source.pid, packet.timestamp)
        for other in room.members.values():
            pt = other.leg.choice.dtmf_payload_type
            if other is source or other.deaf or pt is None:
                continue
            # All packets of one event share its start timestamp, mapped once per receiver.
            ts = other.dtmf_map.setdefault(key, other.timestamp)
            if len(other.dtmf_map) > 64:
                other.dtmf_map.pop(next(iter(other.dtmf_map)))
            payload = packet.payload
            src_rate, dst_rate = source.leg.choice.dtmf_clock_rate, other.leg.choice.dtmf_clock_rate
            if src_rate != dst_rate:
                # Durations count the event's clock: rescale for a receiver on another clock.
                try:
                    event = parse_event(payload)
                except RtpError:
                    continue
                duration = min(event.duration * dst_rate // src_rate, 0xFFFF)
                payload = build_event(replace(event, duration=duration))
            other.sequence = (other.sequence + 1) & 0xFFFF
            data = build_rtp(pt, other.sequence, ts, other.ssrc, payload, packet.marker)
            try:
                self.rtp_sock.sendto(data, other.leg.remote_media)
            except OSError as exc:
                log.warning("telephone-event to %s failed: %s", other.leg.remote_media, exc)

    def _current_plans(self) -> dict[int, _Plan]:
        if self._plans is None:
            groups: dict[int, list[tuple[int, Participant]]] = {}
            room_index = {room_id: i for i, room_id in enumerate(self.rooms)}
            for room in self.rooms.values():
                for part in room.members.values():
                    groups.setdefault(room.config.rate, []).append((room_index[room.config.room_id], part))
            plans = {}
            for rate, rows in groups.items():
                rows.sort(key=lambda r: r[0])
                parts = tuple(p for _, p in rows)
                plans[rate] = _Plan(
                    rate,
                    parts,
                    np.array([r for r, _ in rows], dtype=np.intp),
                    np.array([p.gain for p in parts], dtype=np.float32),
                    np.array([p.muted for p in parts], dtype=bool),
                    np.array([p.deaf for p in parts], dtype=bool),
                    np.array([self.rooms[p.leg.room_id].config.loudest_k for p in parts], dtype=np.intp),
                )
            self._plans = plans
        return self._plans

    def _mix_plan(self, plan: _Plan) -> list[tuple[bytes, Address]]:
        n = len(plan.parts)
        samples = plan.rate * PTIME_MS // 1000
        block = np.zeros((n, samples), dtype=np.int16)
        # G.711 legs at the room's own rate decode in one table lookup for the whole block.
        batch: dict[int, list[tuple[int, bytes]]] = {}
        lost = 0
        empty = JitterBuffer.EMPTY
        for row, part in enumerate(plan.parts):
            popped = part.jitter.pop()
            if popped is empty:
                if part.resample_in is not None:
                    part.resample_in.reset()  # no stale audio when the leg starts talking again
                continue
            payload = popped if isinstance(popped, bytes) else None
            if payload is None:
                lost += 1
            decoder = part.decoder
            if (
                self.batch_codecs
                and payload is not None
                and part.resample_in is None
                and isinstance(decoder, TableDecoder)
                and len(payload) == samples
            ):
                batch.setdefault(id(decoder.table), []).append((row, payload))
                continue
            pcm = decoder.decode(payload)
            if part.resample_in is not None:
                pcm = part.resample_in.process(pcm)
            m = min(samples, pcm.size)
            block[row, :m] = pcm[:m]
        for pending in batch.values():
            index = [r for r, _ in pending]
            first = plan.parts[index[0]].decoder
            assert isinstance(first, TableDecoder)
            joined = b"".join(p for _, p in pending)
            codes = np.frombuffer(joined, dtype=np.uint8).reshape(len(index), samples)
            block[index] = first.table[codes]
            for r in index:
                row_decoder = plan.parts[r].decoder
                assert isinstance(row_decoder, TableDecoder)
                row_decoder.plc.remember(block[r])
        if lost:
            self.metrics.packets_lost.inc(lost)

        prev = np.array([p.energy for p in plan.parts], dtype=np.float32)
        result = mix.mix_frame(block, plan.room_of, plan.gain, plan.muted, plan.deaf, plan.k, prev)
        out = result.out

        payloads: list[bytes] = [b""] * n
        enc_batch: dict[int, list[int]] = {}
        energies = result.energy.tolist()  # plain floats: numpy scalars are slow to handle one by one
        talking = result.talking.tolist()
        for row, part in enumerate(plan.parts):
            part.energy = energies[row]
            part.talking = talking[row]
            encoder = part.encoder
            if self.batch_codecs and part.resample_out is None and isinstance(encoder, TableEncoder):
                enc_batch.setdefault(id(encoder.table), []).append(row)
                continue
            pcm = out[row]
            if part.resample_out is not None:
                pcm = part.resample_out.process(pcm)
            payloads[row] = encoder.encode(pcm)
        for rows in enc_batch.values():
            table_encoder = plan.parts[rows[0]].encoder
            assert isinstance(table_encoder, TableEncoder)
            coded = table_encoder.table[out[rows].view(np.uint16)].tobytes()
            for i, r in enumerate(rows):
                payloads[r] = coded[i * samples : (i + 1) * samples]

        sends = []
        for part, payload in zip(plan.parts, payloads, strict=True):
            part.sequence = (part.sequence + 1) & 0xFFFF
            part.timestamp = (part.timestamp + part.ts_step) & 0xFFFFFFFF
            data = build_rtp(
                part.leg.choice.payload_type, part.sequence, part.timestamp, part.ssrc, payload, part.marker
            )
            part.marker = False
            sends.append((data, part.leg.remote_media))
        return sends
