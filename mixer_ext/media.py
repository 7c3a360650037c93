"""The media loop: the room tables, the RTP socket and the 20 ms clock that mixes every room.

``MediaLoop`` owns its lock. Membership changes (``add``, ``update``, ``remove``, rooms) take it
for the change only; each tick takes it to read the packets and mix, then sends with it released.
Legs live in lanes (``lanes.Lane``: one codec at one room rate, as slot arrays), so a tick files a
whole batch of packets, plays out, decodes, encodes and stamps the headers of a whole lane with a
few numpy operations, and sends the lanes' packet rows in place. Codecs are reached only through
the codec interface (slot codecs for G.711 and L16, ``decode_many`` / ``encode_many`` for the
others), and legs of one room that hear the same mix (everyone outside the loudest K, and everyone
silent) share one encode per codec.
"""

from __future__ import annotations

import errno
import logging
import secrets
import socket
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mixer_ext import mix
from mixer_ext.batchio import OutBatch, Received, Sent, address_key, open_io
from mixer_ext.clock import MediaClock
from mixer_ext.codecs import get_encoder
from mixer_ext.codecs.base import Encoder, Pcm, fit
from mixer_ext.jitter import LOST_FRAME, PRESENT_FRAME, Verdict
from mixer_ext.lanes import HEADER_BYTES, Lane
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


@dataclass(frozen=True)
class _LaneRows:
    """The rows of a plan that are legs of one lane, and those legs' slots."""

    lane: Lane
    rows: np.ndarray
    slots: np.ndarray
    whole: bool  # the lane is every row of the block, in order (the plan has one lane)


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
    share: np.ndarray  # per row, the (room, codec) mix it may share (an index of shares), -1: never shared
    shares: tuple[tuple[int, Hashable, bool], ...]  # (room index, share key, coded by a slot codec)
    lanes: tuple[_LaneRows, ...]
    layout: mix.RoomLayout
    can_share: np.ndarray  # not deaf and with a share: would hear the shared mix if it put nothing in
    any_can_share: bool
    gain_zero: np.ndarray | None  # rows at gain 0, None when there are none (the common case)
    coded_apart: np.ndarray  # rows whose shared mix is encoded apart (a codec with per-leg state)
    # gain, muted, deaf, k as the kernel takes them: a plain 1.0, None or 0 where no row differs from the default.
    kernel_flags: tuple[Any, Any, Any, Any]


@dataclass(frozen=True)
class _Addresses:
    """Every leg's source address as a sorted key column, so a batch finds its legs with one search."""

    keys: np.ndarray
    lane: np.ndarray
    slot: np.ndarray
    only_lane: int  # the one lane every leg is in, -1 when there are several


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
        # The series every tick touches, looked up once (a labels() call costs more than the increment).
        self._recv_calls = metrics.socket_calls.labels("recv")
        self._send_calls = metrics.socket_calls.labels("send")
        self._filed_batch = metrics.filed.labels("batch")
        self._filed_alone = metrics.filed.labels("one_by_one")
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
        self.lanes: list[Lane] = []
        self._lane_of: dict[tuple[str, int], Lane] = {}
        self._addresses: _Addresses | None = None  # rebuilt when by_addr changes
        self._outbox: OutBatch | None = None  # every lane's packet rows with a destination
        self._outbox_lanes: list[Lane] = []  # the lane of each of its segments
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
                self._lane,
                send_to=self._first_destination(leg),
                opus_complexity=room.config.opus_complexity,
            )
            room.members[part.pid] = part
            self.by_call[leg.call_id] = part
            self.by_addr[leg.remote_media] = part
            self._addresses = None
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
            self._addresses = None
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
            part.release()
            self._plans = None
        log.info("leg %s left room %s (%s)", part.pid, part.leg.room_id, reason)
        return part

    def changed(self) -> None:
        """Flags (mute, deaf, gain) changed: rebuild the plans before the next tick."""
        with self.lock:
            self._plans = None

    def _lane(self, codec_key: str, room_rate: int) -> Lane:
        """The lane of one codec at one room rate (made on first use, kept: its slots are reused)."""
        lane = self._lane_of.get((codec_key, room_rate))
        if lane is None:
            lane = self._lane_of[(codec_key, room_rate)] = Lane(len(self.lanes), codec_key, room_rate)
            self.lanes.append(lane)
        return lane

    def _first_destination(self, leg: Leg) -> Address | None:
        # Before any RTP arrives only a trusted (FreeSWITCH node) SDP address is sent to: no reflector.
        return leg.remote_media if leg.remote_media[0] in self.trusted else None

    def _unmap(self, part: Participant) -> None:
        # Only drop the address if it still points at this leg (another may have latched it since).
        if self.by_addr.get(part.leg.remote_media) is part:
            del self.by_addr[part.leg.remote_media]
            self._addresses = None

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
            for plan in self._current_plans().values():
                self._mix_contained(plan)
            batch = self._sendable()
        # Back to back, lock released: SIP and the control API are never kept waiting by the sends.
        report = self.io.send_batch(batch) if len(batch) else Sent()
        for dest, exc in report.failed:
            if not isinstance(exc, OSError):  # an address no socket takes
                self.metrics.media_errors.labels("send").inc()
                log.warning("RTP send to %s refused: %s", dest, exc)
            elif exc.errno not in _SEND_ERRORS_QUIET:
                log.warning("RTP send to %s failed: %s", dest, exc)
        self.metrics.packets_out.inc(report.sent)
        self._send_calls.inc(report.calls)
        self.frames += 1

    def _sendable(self) -> OutBatch:
        """This tick's packets: every lane row with a destination, as laid out when legs last changed."""
        if self._outbox is None or any(lane.dirty for lane in self.lanes):
            self._outbox = OutBatch()
            self._outbox_lanes = []
            for lane in self.lanes:
                slots = [s for s, dest in enumerate(lane.dests) if dest is not None]
                if slots:
                    dests = [lane.dests[s] for s in slots]
                    self._outbox.add(lane.rows, np.array(slots, dtype=np.intp), lane.out_len, HEADER_BYTES, dests)  # type: ignore[arg-type]
                    self._outbox_lanes.append(lane)
                lane.dirty = False
        batch = self._outbox
        segments = list(zip(self._outbox_lanes, batch.segments, strict=True))
        if not all(lane.fresh[slots].all() for lane, (_, slots, _, _) in segments):
            # A room failed to mix this frame: its legs get nothing rather than the last frame again.
            only = OutBatch()
            dests = iter(batch.dests)
            for lane, (rows, slots, lengths, head) in segments:
                wanted = [next(dests) for _ in range(len(slots))]
                keep = lane.fresh[slots]
                only.add(rows, slots[keep], lengths, head, [d for d, k in zip(wanted, keep.tolist(), strict=True) if k])
            batch = only
        for lane in self.lanes:
            lane.fresh[:] = False
        return batch

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
        self._recv_calls.inc(calls)

    def _file(self, batch: Received) -> int:
        """File one batch of datagrams in their legs' jitter buffers; the number accepted."""
        filed = self._file_plain(batch)
        accepted = int(np.count_nonzero(filed))
        self._filed_batch.inc(accepted)
        rest = np.flatnonzero(~filed).tolist() if accepted < batch.count else []
        if rest:
            alone = self._file_one_by_one(batch, rest)
            self._filed_alone.inc(alone)
            accepted += alone
        return accepted

    def _file_plain(self, batch: Received) -> np.ndarray:
        """File, a lane at a time, every plain RTP packet that is its leg's next one; True where filed.

        Plain: version 2, no padding, extension or CSRC, the leg's payload type. The fixed headers of
        the whole batch are read as numpy columns."""
        table = self._address_table()
        if not table.keys.size:
            return np.zeros(batch.count, dtype=bool)
        head = batch.arena[:, :12]
        at = np.minimum(np.searchsorted(table.keys, batch.keys), table.keys.size - 1)
        found = (table.keys[at] == batch.keys) & (head[:, 0] == 0x80) & (batch.lengths >= 12) & ~batch.truncated
        if found.all():  # the steady tick: every datagram is a known leg's plain RTP, no index to go through
            rows, words = None, head[:, 4:12].copy().view(">u4").astype(np.int64)
        else:
            rows = np.flatnonzero(found)
            if not rows.size:
                return found
            at, head = at[rows], head[rows]
            words = np.ascontiguousarray(head[:, 4:12]).view(">u4").astype(np.int64)
        lane_of, slot_of = table.lane[at], table.slot[at]
        sequences = (head[:, 2].astype(np.int64) << 8) | head[:, 3]
        payload_types = head[:, 1] & 0x7F
        filed = np.zeros(batch.count, dtype=bool)
        lanes = [table.only_lane] if table.only_lane >= 0 else np.flatnonzero(np.bincount(lane_of)).tolist()
        for index in lanes:
            lane = self.lanes[index]
            typed = payload_types == lane.payload_type[slot_of]  # DTMF goes one by one
            if len(lanes) > 1:
                typed &= lane_of == index
            if typed.all():  # one lane, no DTMF: the batch's columns as they are
                slots, taken, columns = slot_of, rows, (sequences, words[:, 0], words[:, 1])
            else:
                mine = np.flatnonzero(typed)
                slots, columns = slot_of[mine], (sequences[mine], words[mine, 0], words[mine, 1])
                taken = mine if rows is None else rows[mine]
            # taken None: every datagram of the batch, in order (slices, not copies)
            payloads = (
                batch.arena[:, 12 : 12 + lane.jitter.width]
                if taken is None
                else batch.arena[taken, 12 : 12 + lane.jitter.width]
            )
            lengths = batch.lengths if taken is None else batch.lengths[taken]
            ok = lane.jitter.push_batch(slots, *columns, payloads, lengths - 12)
            if not ok.all():
                taken = np.flatnonzero(ok) if taken is None else taken[ok]
                slots = slots[ok]
            if taken is None:
                filed[:] = True
                moved = lane.dest_key[slots] != batch.keys
            else:
                filed[taken] = True
                moved = lane.dest_key[slots] != batch.keys[taken]
            if moved.any():
                sources = batch.sources
                where = np.flatnonzero(moved) if taken is None else taken[moved]
                for row, slot in zip(where.tolist(), slots[moved].tolist(), strict=True):
                    lane.parts[slot].send_to = sources[row]  # latching: answer where the leg's own RTP comes from
        return filed

    def _address_table(self) -> _Addresses:
        if self._addresses is None:
            entries = sorted(
                (address_key(addr), part.lane.index, part.slot)
                for addr, part in self.by_addr.items()
                if part.lane is not None and address_key(addr)
            )
            columns = list(zip(*entries, strict=True)) or [(), (), ()]
            self._addresses = _Addresses(
                np.array(columns[0], dtype=np.uint64),
                np.array(columns[1], dtype=np.intp),
                np.array(columns[2], dtype=np.intp),
                columns[1][0] if len(set(columns[1])) == 1 else -1,
            )
        return self._addresses

    def _file_one_by_one(self, batch: Received, rows: list[int]) -> int:
        """File the datagrams the batch path left, each with the full parse and checks."""
        by_addr = self.by_addr
        bad = self._bad
        sources = batch.sources
        accepted = 0
        for i in rows:
            source = sources[i]
            part = by_addr.get(source)
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
            if p.leg.remote_media[1] == source[1]
            and p.leg.choice.payload_type == payload_type
            and p.jitter.received == 0  # last: it reads the lane's arrays
        ]
        if len(candidates) != 1:
            return None
        part = candidates[0]
        log.info("leg %s latched media from %s:%s (SDP said %s:%s)", part.pid, *source, *part.leg.remote_media)
        self._unmap(part)
        part.leg = replace(part.leg, remote_media=source)
        self.by_addr[source] = part
        self._addresses = None
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
            # Every join, leave and room change drops the plans: the gauges need setting only here.
            self.metrics.participants.set(len(self.by_call))
            self.metrics.rooms.set(len(self.rooms))
        return self._plans

    def _mix_contained(self, plan: _Plan) -> None:
        """Mix one rate's block; if that fails, mix its rooms one by one so only a broken room is lost."""
        try:
            self._mix_plan(plan)
            return
        except Exception:
            self.metrics.media_errors.labels("mix").inc()
            log.exception("mixing the %d Hz block failed; mixing its rooms one by one", plan.rate)
        for room_id in plan.room_ids:
            room = self.rooms.get(room_id)
            if room is None or not room.members:
                continue
            try:
                self._mix_plan(self._plan_of(plan.rate, [room]))
            except Exception:
                self.metrics.media_errors.labels("room").inc()
                log.exception("room %s failed to mix this frame", room_id)

    def _mix_plan(self, plan: _Plan) -> None:
        samples = plan.rate * PTIME_MS // 1000
        block = np.zeros((len(plan.parts), samples), dtype=np.int16)
        prev = np.empty(len(plan.parts), dtype=np.float32)
        lost = 0
        for lane_rows in plan.lanes:
            lost += self._decode(lane_rows, block)
            if lane_rows.whole:
                prev = lane_rows.lane.energy[lane_rows.slots]
            else:
                prev[lane_rows.rows] = lane_rows.lane.energy[lane_rows.slots]
        if lost:
            self.metrics.packets_lost.inc(lost)
        gain, muted, deaf, k = plan.kernel_flags
        result = mix.mix_frame(block, plan.room_of, gain, muted, deaf, k, prev, layout=plan.layout)
        shared = self._encode(plan, result, block)
        for lane_rows in plan.lanes:
            lane, rows, slots = lane_rows.lane, lane_rows.rows, lane_rows.slots
            lane.energy[slots] = result.energy if lane_rows.whole else result.energy[rows]
            lane.talking[slots] = result.talking if lane_rows.whole else result.talking[rows]
            self._encode_lane(plan, lane_rows, result.out, shared)
            self._stamp(lane, slots)

    def _decode(self, lane_rows: _LaneRows, block: np.ndarray) -> int:
        """Play out one frame of every leg of a lane into its rows of ``block``; the frames lost."""
        lane, rows, slots = lane_rows.lane, lane_rows.rows, lane_rows.slots
        state, position = lane.jitter.pop_many(slots)
        present = state == PRESENT_FRAME
        lost = 0
        if not present.all():  # some leg is silent or lost its frame (the steady tick skips this)
            heard = state != 0
            if lane.resampled:
                for slot in slots[~heard].tolist():
                    lane.parts[slot].resample_in.reset()  # no stale audio when the leg starts talking again
            if not heard.any():
                return 0
            if not heard.all():
                rows, slots, state, position, present = (
                    rows[heard],
                    slots[heard],
                    state[heard],
                    position[heard],
                    present[heard],
                )
            lost = int(np.count_nonzero(state == LOST_FRAME))
        ring = lane.jitter
        decoder = lane.slot_decoder
        if decoder is not None and self.batch_codecs:
            if lost:
                pcm = np.empty((rows.size, lane.spec.samples()), dtype=np.int16)
                got = slots[present]
                pcm[present] = decoder.decode_slots(
                    got, ring.data[got, position[present]], ring.length[got, position[present]]
                )
                pcm[~present] = decoder.conceal_slots(slots[~present])
            else:
                pcm = decoder.decode_slots(slots, ring.data[slots, position], ring.length[slots, position])
        else:
            parts = [lane.parts[s] for s in slots.tolist()]
            payloads = [
                ring.payload(s, p) if here else None
                for s, p, here in zip(slots.tolist(), position.tolist(), present.tolist(), strict=True)
            ]
            pcm = self._decode_legs(parts, payloads)
        if not lane.resampled and pcm.shape[1] == block.shape[1]:
            if rows.size == block.shape[0] and lane_rows.whole:
                block[:] = pcm  # every row of the block, in order: no index to go through
            else:
                block[rows] = pcm
            return lost
        for i, (row, slot) in enumerate(zip(rows.tolist(), slots.tolist(), strict=True)):
            resampler = lane.parts[slot].resample_in
            block[row] = fit(resampler.process(pcm[i]) if resampler is not None else pcm[i], block.shape[1])
        return lost

    def _decode_legs(self, parts: list[Participant], payloads: list[bytes | None]) -> Pcm:
        """Codecs with per-leg state: one ``decode_many`` for the lane (each leg on its own in per-leg mode)."""
        decoders = [p.decoder for p in parts]
        if self.batch_codecs:
            try:
                return decoders[0].decode_many(decoders, payloads)
            except Exception:
                pass  # one bad payload: find it, below
        # A payload its codec rejects (garbage under a valid payload type) silences that leg only.
        samples = decoders[0].spec.samples()
        out = np.zeros((len(parts), samples), dtype=np.int16)
        for i, (part, payload) in enumerate(zip(parts, payloads, strict=True)):
            try:
                out[i] = fit(part.decoder.decode(payload), samples)
            except Exception as exc:
                self.metrics.media_errors.labels("decode").inc()
                self._bad("undecodable", part.leg.remote_media)
                log.debug("leg %s: undecodable payload: %s", part.pid, exc)
        return out

    def _encode(self, plan: _Plan, result: mix.MixResult, block: np.ndarray) -> dict[int, bytes]:
        """Count the encodes; legs that hear their room's whole mix share one per codec.

        Returns the shared payloads of codecs with per-leg state, by row (a slot codec's lane is one
        operation whatever it shares, so its rows are coded with the lane)."""
        encodes = len(plan.parts)
        payloads: dict[int, bytes] = {}
        if self.batch_codecs and plan.shares and plan.any_can_share:
            # A row that put nothing into its room's sum (outside the loudest K, muted, silent) hears the sum.
            hears_sum = result.mixed & block.any(axis=1)  # rows in their room's sum, for now
            if plan.gain_zero is not None:
                hears_sum &= ~plan.gain_zero
            np.logical_and(plan.can_share, ~hears_sum, out=hears_sum)
            if hears_sum.any():
                counts = np.bincount(plan.share[hears_sum], minlength=len(plan.shares))
                sharing = hears_sum.copy()
                sharing[hears_sum] = counts[plan.share[hears_sum]] >= 2
                groups = np.flatnonzero(counts >= 2)
                saved = int(np.count_nonzero(sharing)) - groups.size
                encodes -= saved
                if saved:
                    self.metrics.encodes_saved.inc(saved)
                # Only codecs with per-leg state encode a shared mix apart: their sharing rows, grouped in one sort.
                apart = np.flatnonzero(sharing & plan.coded_apart)
                if apart.size:
                    apart = apart[np.argsort(plan.share[apart], kind="stable")]
                    bounds = np.flatnonzero(np.diff(plan.share[apart])) + 1
                    for rows in np.split(apart, bounds):
                        room_index, key, _ = plan.shares[int(plan.share[rows[0]])]
                        encoder = self._shared_encoder(plan.room_ids[room_index], key)
                        payload = encoder.encode_many([encoder], result.out[rows[:1]])[0]
                        for row in rows.tolist():
                            payloads[row] = payload
        self.metrics.encodes.inc(encodes)
        return payloads

    def _encode_lane(self, plan: _Plan, lane_rows: _LaneRows, out: np.ndarray, shared: dict[int, bytes]) -> None:
        """Encode what every leg of a lane hears into its outgoing row: one slot-codec operation, or
        leg by leg for codecs with per-leg state, resampled legs and the per-leg reference mode."""
        lane = lane_rows.lane
        if lane.slot_encoder is not None and not lane.resampled and self.batch_codecs:
            coded = lane.slot_encoder.encode_block(out if lane_rows.whole else out[lane_rows.rows])
            lane.out_payload[lane_rows.slots, : coded.shape[1]] = coded
            lane.out_len[lane_rows.slots] = coded.shape[1]
            return
        rows = [r for r in lane_rows.rows.tolist() if r not in shared]
        coded: list[bytes] = []
        if rows:
            parts = [plan.parts[r] for r in rows]
            if lane.resampled:
                pcm = np.stack([p.resample_out.process(out[r]) for p, r in zip(parts, rows, strict=True)])  # type: ignore[union-attr]
            else:
                pcm = out[rows]
            if not self.batch_codecs:
                coded = [p.encoder.encode(frame) for p, frame in zip(parts, pcm, strict=True)]
            elif lane.slot_encoder is not None:
                coded = [row.tobytes() for row in lane.slot_encoder.encode_block(pcm)]
            else:
                encoders = [p.encoder for p in parts]
                coded = encoders[0].encode_many(encoders, pcm)
        by_row = dict(zip(rows, coded, strict=True))
        by_row.update((r, shared[r]) for r in lane_rows.rows.tolist() if r in shared)
        payload_rows = lane.out_payload
        width = payload_rows.shape[1]
        for row, slot in zip(lane_rows.rows.tolist(), lane_rows.slots.tolist(), strict=True):
            payload = by_row[row][:width]
            payload_rows[slot, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
            lane.out_len[slot] = len(payload)

    def _stamp(self, lane: Lane, slots: np.ndarray) -> None:
        """Advance the lane's streams one frame and write their RTP headers (the rows are ready to send)."""
        lane.seq[slots] += 1  # uint16 and uint32 columns of the rows: they wrap by themselves
        lane.ts[slots] += lane.step
        if lane.marking:
            # The marker goes on a leg's first packet sent: a leg not sent to yet keeps it.
            sending = lane.dest_key[slots] != 0
            marks = lane.marker[slots] & sending
            lane.out_mpt[slots] = lane.payload_type[slots] | np.where(marks, 0x80, 0)
            lane.marker[slots] &= ~sending
            # Once no row carries or awaits a marker, the rows' marker and payload type bytes stay as written.
            lane.marking = bool((((lane.out_mpt & 0x80) != 0) | lane.marker)[lane.active].any())
        lane.fresh[slots] = True

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
        shares: dict[tuple[int, Hashable], int] = {}
        share: list[int] = []
        lanes: dict[int, tuple[Lane, list[int], list[int]]] = {}
        for row, part in enumerate(parts):
            key = part.share_key
            if key is None or not self.batch_codecs:
                share.append(-1)
            else:
                share.append(shares.setdefault((room_of[row], key), len(shares)))
            lane = part.lane
            assert lane is not None  # members are in their lanes until they leave
            entry = lanes.setdefault(lane.index, (lane, [], []))
            entry[1].append(row)
            entry[2].append(part.slot)
        slot_coded = {lane.index: lane.slot_encoder is not None for lane, _, _ in lanes.values()}
        share_lane = {}
        for row, part in enumerate(parts):
            if share[row] >= 0:
                share_lane[share[row]] = part.lane.index  # type: ignore[union-attr]
        share_coded = {i: slot_coded[share_lane[i]] for i in shares.values()}
        gain_v = np.array([p.gain for p in parts], dtype=np.float32)
        deaf_v = np.array([p.deaf for p in parts], dtype=bool)
        muted_v = np.array([p.muted for p in parts], dtype=bool)
        k_v = np.array(k, dtype=np.intp)
        share_v = np.array(share, dtype=np.intp)
        can_share = ~deaf_v & (share_v >= 0)
        gain_zero = gain_v == 0
        return _Plan(
            rate,
            tuple(parts),
            tuple(r.config.room_id for r in rooms),
            np.array(room_of, dtype=np.intp),
            gain_v,
            muted_v,
            deaf_v,
            k_v,
            share_v,
            tuple((room, key, share_coded[i]) for (room, key), i in shares.items()),
            tuple(
                _LaneRows(lane, np.array(r, dtype=np.intp), np.array(sl, dtype=np.intp), len(lanes) == 1)
                for lane, r, sl in lanes.values()
            ),
            mix.room_layout(room_of),
            can_share,
            bool(can_share.any()),
            gain_zero if gain_zero.any() else None,
            np.array([s >= 0 and not share_coded[s] for s in share], dtype=bool),
            (
                1.0 if bool((gain_v == 1).all()) else gain_v,
                muted_v if muted_v.any() else None,
                deaf_v if deaf_v.any() else None,
                k_v if k_v.any() else 0,
            ),
        )
