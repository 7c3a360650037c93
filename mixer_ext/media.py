"""The media loop: the room tables, the RTP socket and the 20 ms clock that mixes every room.

``MediaLoop`` owns its lock. Membership changes (``add``, ``update``, ``remove``, rooms) take it
for the change only; each tick takes it to read the packets and mix, then sends with it released.
Codecs are reached only through their block interface (``decode_many`` / ``encode_many``), and
legs of one room that hear the same mix (everyone outside the loudest K, and everyone silent)
share one encode per codec.
"""

from __future__ import annotations

import errno
import logging
import secrets
import socket
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field, replace

import numpy as np

from mixer_ext import mix
from mixer_ext.batchio import Received, Sent, open_io
from mixer_ext.clock import MediaClock
from mixer_ext.codecs import get_encoder
from mixer_ext.codecs.base import Encoder, Pcm, fit
from mixer_ext.jitter import JitterBuffer, Verdict
from mixer_ext.metrics import Metrics
from mixer_ext.rooms import PTIME_MS, Participant, Room, RoomConfig, Trusted
from mixer_ext.rtp import RtpError, RtpPacket, build_event, build_rtp, parse_event, parse_rtp
from mixer_ext.sip import Address, Leg

log = logging.getLogger(__name__)

# Bounded so a flood of garbage cannot starve the mixing of one frame.
MAX_PACKETS_PER_TICK = 50_000
# A media loop that has not finished a tick for this long is stuck (healthz says 503).
STUCK_AFTER_S = 1.0
_SEND_ERRORS_QUIET = (errno.EAGAIN, errno.ECONNREFUSED, errno.ENOBUFS)


# One RTP fixed header as numpy lays it out: a tick's headers are built as one array of these.
_RTP_HEADER = np.dtype([("flags", np.uint8), ("mpt", np.uint8), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")])


@dataclass
class _Outgoing:
    """A tick's RTP packets, one (marker | payload type, sequence, timestamp, SSRC, payload, destination)
    row each: their headers are built for all of them at once."""

    rows: list[tuple[int, int, int, int, bytes, Address]] = field(default_factory=list)

    def extend(self, other: _Outgoing) -> None:
        self.rows.extend(other.rows)

    def columns(self) -> tuple[np.ndarray, list[bytes], list[Address]]:
        """The ``[packets x 12]`` uint8 RTP headers (version 2, no CSRC), the payloads, the destinations."""
        mpt, seq, ts, ssrc, bodies, dests = zip(*self.rows, strict=True)
        heads = np.empty(len(self.rows), dtype=_RTP_HEADER)
        heads["flags"] = 0x80
        heads["mpt"] = mpt
        heads["seq"] = seq
        heads["ts"] = ts
        heads["ssrc"] = ssrc
        return heads.view(np.uint8).reshape(len(self.rows), _RTP_HEADER.itemsize), list(bodies), list(dests)


@dataclass(frozen=True)
class _Plan:
    """The rows of one rate's block, grouped by room, rebuilt only when membership or flags change."""

    rate: int
    parts: tuple[Participant, ...]
    room_ids: tuple[str, ...]  # room_of values index this
    room_of: np.ndarray
    gain: np.ndarray
    muted: np.ndarray
    deaf: np.ndarray
    k: np.ndarray
    shareable: np.ndarray  # rows whose leg may be sent a shared encode (not resampled)
    decode_groups: tuple[list[int], ...]  # rows whose decoders share a block key
    encode_groups: tuple[list[int], ...]  # rows whose encoders share a block key (and resampling)


class MediaLoop:
    """Rooms, legs and the clock: reads RTP, mixes every room each 20 ms, sends each leg its mix."""

    def __init__(
        self,
        host: str,
        rtp_port: int,
        metrics: Metrics,
        trusted: Trusted,
        batch_codecs: bool = True,
        batch_io: bool = True,
    ) -> None:
        # False codes every leg on its own, nothing shared (the bench's reference for the block path).
        self.batch_codecs = batch_codecs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.bind((host, rtp_port))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        # recvmmsg/sendmmsg where libc has them (batch_io False: one system call per packet).
        self.io = open_io(self.sock, batched=batch_io)
        self.metrics = metrics
        self.trusted = trusted
        self.lock = threading.RLock()
        self.rooms: dict[str, Room] = {}
        self.by_call: dict[str, Participant] = {}
        self.by_addr: dict[Address, Participant] = {}
        self.frames = 0
        self.started: float | None = None  # monotonic time the loop started
        self.last_tick: float | None = None  # monotonic time the last tick finished
        self.clock: MediaClock | None = None
        self._plans: dict[int, _Plan] | None = None
        self._shared: dict[tuple[str, Hashable], Encoder] = {}  # (room, share key) -> the shared mix's encoder
        self._bad_logged: dict[str, float] = {}

    # ----- membership (any thread) ----------------------------------------------------------

    def add_room(self, config: RoomConfig) -> bool:
        """Add an empty room; False if one of that id exists."""
        with self.lock:
            if config.room_id in self.rooms:
                return False
            self.rooms[config.room_id] = Room(config)
            self._plans = None
            return True

    def remove_room(self, room_id: str) -> None:
        """Forget a room (its legs must have been removed first)."""
        with self.lock:
            self.rooms.pop(room_id, None)
            for key in [k for k in self._shared if k[0] == room_id]:
                del self._shared[key]
            self._plans = None

    def add(self, leg: Leg, pid: str | None = None) -> Participant:
        """Put a leg in its room (KeyError if the room is gone)."""
        with self.lock:
            room = self.rooms[leg.room_id]
            part = Participant(
                pid or "p" + secrets.token_hex(4),
                leg,
                room.config.rate,
                send_to=self._first_destination(leg),
                opus_complexity=room.config.opus_complexity,
            )
            room.members[part.pid] = part
            self.by_call[leg.call_id] = part
            self.by_addr[leg.remote_media] = part
            self._plans = None
        log.info(
            "leg %s joined room %s with %s from %s:%s", part.pid, leg.room_id, leg.choice.codec.name, *leg.remote_media
        )
        return part

    def update(self, leg: Leg) -> None:
        """A re-INVITE moved the leg's media or changed its codec."""
        with self.lock:
            part = self.by_call[leg.call_id]
            self._unmap(part)
            codec_changed = part.leg.choice != leg.choice
            part.leg = leg
            if codec_changed:
                part.set_choice(leg.choice)
            part.send_to = self._first_destination(leg)
            self.by_addr[leg.remote_media] = part
            self._plans = None
        log.info("leg %s in room %s moved media to %s:%s", part.pid, leg.room_id, *leg.remote_media)

    def remove(self, call_id: str, reason: str) -> Participant | None:
        """Take a leg out of its room; None if it was not here."""
        with self.lock:
            part = self.by_call.pop(call_id, None)
            if part is None:
                return None
            self._unmap(part)
            room = self.rooms.get(part.leg.room_id)
            if room is not None:
                room.members.pop(part.pid, None)
            self._plans = None
        log.info("leg %s left room %s (%s)", part.pid, part.leg.room_id, reason)
        return part

    def changed(self) -> None:
        """Flags (mute, deaf, gain) changed: rebuild the plans before the next tick."""
        with self.lock:
            self._plans = None

    def _first_destination(self, leg: Leg) -> Address | None:
        # Before any RTP arrives only a trusted (FreeSWITCH node) SDP address is sent to: no reflector.
        return leg.remote_media if leg.remote_media[0] in self.trusted else None

    def _unmap(self, part: Participant) -> None:
        # Only drop the address if it still points at this leg (another may have latched it since).
        if self.by_addr.get(part.leg.remote_media) is part:
            del self.by_addr[part.leg.remote_media]

    # ----- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick every 20 ms until ``stop`` is set; a failing tick is logged and the next one runs."""
        self.clock = MediaClock(PTIME_MS / 1000)
        self.started = time.monotonic()
        while not stop.is_set():
            tick = self.clock.wait()
            started = time.perf_counter()
            try:
                self.tick()
            except Exception:
                self.metrics.media_errors.labels("tick").inc()
                log.exception("media frame %d failed", tick.index)
            self.metrics.frame_seconds.observe(time.perf_counter() - started)
            self.last_tick = time.monotonic()
            if self.last_tick > tick.deadline + self.clock.period:
                self.metrics.overruns.inc()

    def stuck(self) -> bool:
        """True when the loop runs but has finished no tick for more than STUCK_AFTER_S."""
        if self.started is None:
            return False
        return time.monotonic() - (self.last_tick or self.started) > STUCK_AFTER_S

    def tick(self) -> None:
        """One 20 ms frame: read every packet waiting, mix every room, send every leg its mix."""
        with self.lock:
            self._drain()
            sends = _Outgoing()
            for plan in self._current_plans().values():
                sends.extend(self._mix_contained(plan))
            self.metrics.participants.set(len(self.by_call))
            self.metrics.rooms.set(len(self.rooms))
        # Back to back, lock released: SIP and the control API are never kept waiting by the sends.
        report = self.io.send(*sends.columns()) if sends.rows else Sent()
        for dest, exc in report.failed:
            if not isinstance(exc, OSError):  # an address no socket takes
                self.metrics.media_errors.labels("send").inc()
                log.warning("RTP send to %s refused: %s", dest, exc)
            elif exc.errno not in _SEND_ERRORS_QUIET:
                log.warning("RTP send to %s failed: %s", dest, exc)
        self.metrics.packets_out.inc(report.sent)
        self.metrics.socket_calls.labels("send").inc(report.calls)
        self.frames += 1

    # ----- receiving ----------------------------------------------------------------------------

    def _drain(self) -> None:
        accepted = 0
        read = 0
        recv = self.io.recv
        calls = 0
        while read < MAX_PACKETS_PER_TICK:
            batch = recv()
            calls += batch.calls
            if batch.count:
                accepted += self._file(batch)
                read += batch.count
            if batch.count < self.io.capacity:
                break  # the socket is empty
        self.metrics.packets_in.inc(accepted)
        self.metrics.socket_calls.labels("recv").inc(calls)

    def _file(self, batch: Received) -> int:
        """File one batch of datagrams in their legs' jitter buffers; the number accepted."""
        by_addr = self.by_addr
        bad = self._bad
        flat = batch.flat
        accepted = 0
        # The fixed headers of the whole batch at once: most packets are plain RTP (version 2, no
        # padding, extension or CSRC), read from these columns without a parse of their own.
        head = batch.arena[:, :12]
        words = np.ascontiguousarray(head[:, 4:12]).view(">u4")
        plain = (head[:, 0] == 0x80) & (batch.lengths >= 12) & ~batch.truncated
        # A packet that is not plain gets payload type -1: no leg's, so it takes the full parse below.
        payload_types = np.where(plain, head[:, 1] & 0x7F, -1)
        starts = np.arange(batch.count, dtype=np.intp) * batch.arena.shape[1]
        columns = zip(
            batch.sources,
            payload_types.tolist(),
            ((head[:, 2].astype(np.intp) << 8) | head[:, 3]).tolist(),
            words[:, 0].tolist(),
            words[:, 1].tolist(),
            (starts + 12).tolist(),
            (starts + batch.lengths).tolist(),
            strict=True,
        )
        for i, (source, payload_type, sequence, timestamp, ssrc, start, end) in enumerate(columns):
            part = by_addr.get(source)
            if part is not None and payload_type == part.leg.choice.payload_type:
                payload = flat[start:end].tobytes()
                verdict = part.jitter.push_fields(sequence, timestamp, ssrc, payload)
                if verdict is Verdict.ABSURD:
                    bad("absurd_sequence_or_timestamp", source)
                    continue
                if verdict is Verdict.LATE:
                    bad("late", source)
                    continue
                accepted += 1
                if part.send_to != source:
                    part.send_to = source  # latching: answer where the leg's own RTP comes from
                continue
            if batch.truncated[i]:
                bad("truncated", source)
                continue
            try:
                packet = parse_rtp(batch.data(i))
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
                    continue
                if verdict is Verdict.LATE:
                    bad("late", source)
                    continue
                accepted += 1
            elif choice.dtmf_payload_type is not None and packet.payload_type == choice.dtmf_payload_type:
                accepted += 1
                self._forward_event(part, packet)
            else:
                bad("unknown_payload_type", source)
                continue
            if part.send_to != source:
                part.send_to = source
        return accepted

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
            if other is source or other.deaf or pt is None or other.send_to is None:
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
                self.sock.sendto(data, other.send_to)
            except (OSError, OverflowError, ValueError, TypeError) as exc:
                log.warning("telephone-event to %s failed: %s", other.send_to, exc)

    # ----- mixing -------------------------------------------------------------------------------

    def _current_plans(self) -> dict[int, _Plan]:
        if self._plans is None:
            groups: dict[int, list[Room]] = {}
            for room in self.rooms.values():
                groups.setdefault(room.config.rate, []).append(room)
            self._plans = {rate: self._plan_of(rate, rooms) for rate, rooms in groups.items()}
        return self._plans

    def _mix_contained(self, plan: _Plan) -> _Outgoing:
        """Mix one rate's block; if that fails, mix its rooms one by one so only a broken room is lost."""
        try:
            return self._mix_plan(plan)
        except Exception:
            self.metrics.media_errors.labels("mix").inc()
            log.exception("mixing the %d Hz block failed; mixing its rooms one by one", plan.rate)
        sends = _Outgoing()
        for room_id in plan.room_ids:
            room = self.rooms.get(room_id)
            if room is None or not room.members:
                continue
            try:
                sends.extend(self._mix_plan(self._plan_of(plan.rate, [room])))
            except Exception:
                self.metrics.media_errors.labels("room").inc()
                log.exception("room %s failed to mix this frame", room_id)
        return sends

    def _decode(self, plan: _Plan, samples: int) -> np.ndarray:
        """The block of what every leg said this frame, at the plan's rate (silence for the quiet)."""
        parts = plan.parts
        block = np.zeros((len(parts), samples), dtype=np.int16)
        lost = 0
        empty = JitterBuffer.EMPTY
        for rows in plan.decode_groups:
            present: list[int] = []
            wanted: list[bytes | None] = []
            for r in rows:
                popped = parts[r].jitter.pop()
                if popped is empty:
                    resampler = parts[r].resample_in
                    if resampler is not None:
                        resampler.reset()  # no stale audio when the leg starts talking again
                    continue
                if popped is None:
                    lost += 1
                present.append(r)
                wanted.append(popped)  # type: ignore[arg-type]
            if not present:
                continue
            decoders = [parts[r].decoder for r in present]
            try:
                pcm = decoders[0].decode_many(decoders, wanted)
            except Exception:
                pcm = self._decode_one_by_one(plan, present, wanted)
            if parts[present[0]].resample_in is None and pcm.shape[1] == samples:
                block[present] = pcm
                continue
            for i, r in enumerate(present):
                resampler = parts[r].resample_in
                block[r] = fit(resampler.process(pcm[i]) if resampler is not None else pcm[i], samples)
        if lost:
            self.metrics.packets_lost.inc(lost)
        return block

    def _decode_one_by_one(self, plan: _Plan, rows: list[int], payloads: list[bytes | None]) -> Pcm:
        # A payload its codec rejects (garbage under a valid payload type) silences that leg only.
        first = plan.parts[rows[0]].decoder
        samples = first.spec.samples()
        out = np.zeros((len(rows), samples), dtype=np.int16)
        for i, (r, payload) in enumerate(zip(rows, payloads, strict=True)):
            try:
                out[i] = fit(plan.parts[r].decoder.decode(payload), samples)
            except Exception as exc:
                self.metrics.media_errors.labels("decode").inc()
                self._bad("undecodable", plan.parts[r].leg.remote_media)
                log.debug("leg %s: undecodable payload: %s", plan.parts[r].pid, exc)
        return out

    def _mix_plan(self, plan: _Plan) -> _Outgoing:
        parts = plan.parts
        samples = plan.rate * PTIME_MS // 1000
        block = self._decode(plan, samples)
        prev = np.array([p.energy for p in parts], dtype=np.float32)
        result = mix.mix_frame(block, plan.room_of, plan.gain, plan.muted, plan.deaf, plan.k, prev)
        energies = result.energy.tolist()  # plain floats: numpy scalars are slow to handle one by one
        talking = result.talking.tolist()
        payloads = self._encode(plan, result, block)

        sends = _Outgoing()
        append = sends.rows.append
        for part, payload, energy, talks in zip(parts, payloads, energies, talking, strict=True):
            part.energy = energy
            part.talking = talks
            part.sequence = sequence = (part.sequence + 1) & 0xFFFF
            part.timestamp = timestamp = (part.timestamp + part.ts_step) & 0xFFFFFFFF
            if part.send_to is None:
                continue  # no RTP from it yet and its SDP address is not trusted
            marker = 0x80 if part.marker else 0
            part.marker = False
            append((marker | part.leg.choice.payload_type, sequence, timestamp, part.ssrc, payload, part.send_to))
        return sends

    def _encode(self, plan: _Plan, result: mix.MixResult, block: np.ndarray) -> list[bytes]:
        """One payload per row; rows that hear their room's whole mix share one encode per codec."""
        parts = plan.parts
        out = result.out
        payloads: list[bytes] = [b""] * len(parts)
        own: np.ndarray | None = None
        saved = encodes = 0
        if self.batch_codecs:
            # A row that put nothing into its room's sum (outside the loudest K, muted, silent) hears the sum.
            hears_sum = (~result.mixed | ~block.any(axis=1) | (plan.gain == 0)) & ~plan.deaf & plan.shareable
            if hears_sum.any():
                shared: dict[tuple[int, Hashable], list[int]] = {}
                for row in np.flatnonzero(hears_sum).tolist():
                    shared.setdefault((int(plan.room_of[row]), parts[row].share_key), []).append(row)
                own = np.ones(len(parts), dtype=bool)
                for (room_index, key), rows in shared.items():
                    if len(rows) < 2:
                        continue
                    encoder = self._shared_encoder(plan.room_ids[room_index], key)
                    payload = encoder.encode_many([encoder], out[rows[:1]])[0]
                    encodes += 1
                    for r in rows:
                        payloads[r] = payload
                    own[rows] = False
                    saved += len(rows) - 1
        for rows in plan.encode_groups:
            if own is not None:
                rows = [r for r in rows if own[r]]
                if not rows:
                    continue
            encoders = [parts[r].encoder for r in rows]
            first = parts[rows[0]]
            if first.resample_out is None:
                pcm = out[rows]  # one fancy-index for the whole group, no per-row copies
            else:
                pcm = np.stack([parts[r].resample_out.process(out[r]) for r in rows])  # type: ignore[union-attr]
            coded = encoders[0].encode_many(encoders, pcm)
            encodes += len(coded)
            for r, payload in zip(rows, coded, strict=True):
                payloads[r] = payload
        self.metrics.encodes.inc(encodes)
        if saved:
            self.metrics.encodes_saved.inc(saved)
        return payloads

    def _shared_encoder(self, room_id: str, key: Hashable) -> Encoder:
        """The encoder of a room's shared mix for one codec (made on first use, dropped with the room)."""
        encoder = self._shared.get((room_id, key))
        if encoder is None:
            room = self.rooms[room_id]
            encoder = get_encoder(str(key), complexity=room.config.opus_complexity)
            self._shared[(room_id, key)] = encoder
        return encoder

    def _plan_of(self, rate: int, rooms: list[Room]) -> _Plan:
        parts: list[Participant] = []
        room_of: list[int] = []
        k: list[int] = []
        for index, room in enumerate(rooms):
            for part in room.members.values():
                parts.append(part)
                room_of.append(index)
                k.append(room.config.loudest_k)
        decode_groups: dict[Hashable, list[int]] = {}
        encode_groups: dict[Hashable, list[int]] = {}
        for row, part in enumerate(parts):
            # Per-leg reference mode: every row its own group, so every leg is coded on its own.
            decode_groups.setdefault(part.decoder.block_key if self.batch_codecs else row, []).append(row)
            key = (part.encoder.block_key, part.resample_out is None) if self.batch_codecs else row
            encode_groups.setdefault(key, []).append(row)
        return _Plan(
            rate,
            tuple(parts),
            tuple(r.config.room_id for r in rooms),
            np.array(room_of, dtype=np.intp),
            np.array([p.gain for p in parts], dtype=np.float32),
            np.array([p.muted for p in parts], dtype=bool),
            np.array([p.deaf for p in parts], dtype=bool),
            np.array(k, dtype=np.intp),
            np.array([p.share_key is not None for p in parts], dtype=bool),
            tuple(decode_groups.values()),
            tuple(encode_groups.values()),
        )
