"""Jitter buffers for many legs at once: reorder by sequence, report losses, reject nonsense.

``JitterRing`` holds the buffers of every leg of one lane (codec and room rate) as numpy arrays
indexed by a leg's slot: the stream state as columns, the queued payloads as one
``[slots x DEPTH x width]`` byte ring (frame ``ext`` sits at ``ext % DEPTH``, tagged with ``ext``).
A whole batch of plain in-order packets is filed by ``push_plain`` and a whole lane is played out
by ``pop_many``, one numpy operation per column; anything else (reordering, loss, a new SSRC,
absurd numbers) goes through ``push``, the one-packet path with every check.

``JitterBuffer`` is one slot of a ring seen as a single leg's buffer (``push`` / ``pop`` / counters):
``pop`` returns the next frame's payload, ``None`` for a lost frame (the decoder conceals it), or
``JitterBuffer.EMPTY`` while the sender is silent and nothing is queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt

from mixer_ext.rtp import RtpPacket, seq_distance, ts_distance

IntVec = npt.NDArray[np.intp]
# "No frame here" in the tag ring and "nothing to play yet" for next: no extended sequence gets near it.
NONE = -(1 << 62)
# Playout states pop_many reports per slot.
EMPTY_FRAME, LOST_FRAME, PRESENT_FRAME = 0, 1, 2


class Verdict(Enum):
    QUEUED = "queued"
    LATE = "late"  # its frame was already played (or concealed)
    DUPLICATE = "duplicate"
    ABSURD = "absurd"  # sequence or timestamp far outside the stream
    RESYNC = "resync"  # a new SSRC or a run of absurd packets: the stream restarted


class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


@dataclass(frozen=True)
class JitterStats:
    received: int
    lost: int
    late: int
    absurd: int
    depth: int


_STATE = ("ssrc", "base_seq", "base_ts", "ref_ext", "next", "highest", "absurd_run", "count")
_COUNTERS = ("received", "lost", "late", "absurd")
# Every int64 column is a view of one [slots x columns] array, so a batch reads a slot's state in one gather.
_COLUMNS = (*_STATE, *_COUNTERS)
_SSRC, _BASE_SEQ, _BASE_TS, _REF_EXT, _NEXT, _HIGHEST, _ABSURD_RUN, _COUNT, _RECEIVED = range(9)


class JitterRing:
    """The playout buffers of ``capacity`` streams (20 ms frames, one timestamp step), one per slot."""

    # Ring positions per slot: a power of two above max_depth, so a frame's place is ext & (DEPTH - 1).
    DEPTH = 16
    # A jump of more than this many packets (about 20 s) is not reordering: it is nonsense.
    MAX_SEQ_JUMP = 1000
    # One hour of 20 ms frames: the longest silence a sender may skip over with its timestamps.
    MAX_TS_AHEAD_FRAMES = 180_000
    # This many absurd packets in a row means the sender really restarted its stream.
    RESYNC_AFTER = 5

    def __init__(
        self, timestamp_step: int, width: int, capacity: int = 1, prefill: int = 2, max_depth: int = 10
    ) -> None:
        if not 0 < max_depth < self.DEPTH:
            raise ValueError(f"max_depth must be 1 to {self.DEPTH - 1}")
        self.timestamp_step = timestamp_step
        self.width = width
        self.prefill = prefill
        self.max_depth = max_depth
        self.capacity = 0
        self.state = np.zeros((0, len(_COLUMNS)), dtype=np.int64)
        self._column_views()
        self.playing = self.started = np.zeros(0, dtype=bool)
        self.tag = np.zeros((0, self.DEPTH), dtype=np.int64)
        self.length = np.zeros((0, self.DEPTH), dtype=np.intp)
        self.data = np.zeros((0, self.DEPTH, width), dtype=np.uint8)
        self.grow(capacity)

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` slots, keeping every existing slot's state."""
        old = self.capacity
        if capacity <= old:
            return
        state = np.zeros((capacity, len(_COLUMNS)), dtype=np.int64)
        state[:old] = self.state
        self.state = state
        self._column_views()
        for name in ("playing", "started"):
            flags = np.zeros(capacity, dtype=bool)
            flags[:old] = getattr(self, name)
            setattr(self, name, flags)
        tag = np.full((capacity, self.DEPTH), NONE, dtype=np.int64)
        tag[:old] = self.tag
        length = np.zeros((capacity, self.DEPTH), dtype=np.intp)
        length[:old] = self.length
        data = np.zeros((capacity, self.DEPTH, self.width), dtype=np.uint8)
        data[:old] = self.data
        self.tag, self.length, self.data = tag, length, data
        self.capacity = capacity
        for slot in range(old, capacity):
            self.reset(slot)

    def _column_views(self) -> None:
        # In _COLUMNS order: views, so a write through a column is a write into ``state``.
        st = self.state
        self.ssrc, self.base_seq, self.base_ts, self.ref_ext = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
        self.next, self.highest, self.absurd_run, self.count = st[:, 4], st[:, 5], st[:, 6], st[:, 7]
        self.received, self.lost, self.late, self.absurd = st[:, 8], st[:, 9], st[:, 10], st[:, 11]

    def reset(self, slot: int) -> None:
        """Forget slot ``slot``'s stream and counters (a new leg takes it)."""
        self.ssrc[slot] = -1
        self._restart(slot, 0, 0, -1)
        for name in _COUNTERS:
            getattr(self, name)[slot] = 0

    def _restart(self, slot: int, sequence: int, timestamp: int, ssrc: int) -> None:
        self.tag[slot] = NONE
        self.count[slot] = 0
        self.ssrc[slot] = ssrc
        self.base_seq[slot] = sequence
        self.base_ts[slot] = timestamp
        self.ref_ext[slot] = 0
        self.next[slot] = NONE
        self.highest[slot] = 0
        self.playing[slot] = False
        self.started[slot] = False
        self.absurd_run[slot] = 0

    # ----- filing -----------------------------------------------------------------------------

    def push_batch(
        self,
        slots: IntVec,
        sequences: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        ssrcs: npt.NDArray[np.int64],
        payloads: npt.NDArray[np.uint8],
        lengths: IntVec,
    ) -> npt.NDArray[np.bool_]:
        """``push_plain`` for a batch in arrival order where a slot may come more than once (a late
        tick reads two frames' worth): its packets are filed in rounds, first ones first. True where
        filed; the caller files the rest with ``push``, in order (a slot's first miss ends its rounds)."""
        if not slots.size or np.bincount(slots).max() == 1:
            return self.push_plain(slots, sequences, timestamps, ssrcs, payloads, lengths)
        order = np.argsort(slots, kind="stable")
        starts = np.flatnonzero(np.r_[True, slots[order][1:] != slots[order][:-1]])
        turn = np.empty(slots.size, dtype=np.intp)
        turn[order] = np.arange(slots.size) - np.repeat(starts, np.diff(np.r_[starts, slots.size]))
        filed = np.zeros(slots.size, dtype=bool)
        fallen = np.zeros(self.capacity, dtype=bool)
        for round_ in range(int(turn.max()) + 1):
            now = np.flatnonzero((turn == round_) & ~fallen[slots])
            ok = self.push_plain(slots[now], sequences[now], timestamps[now], ssrcs[now], payloads[now], lengths[now])
            filed[now[ok]] = True
            fallen[slots[now[~ok]]] = True
        return filed

    def push_plain(
        self,
        slots: IntVec,
        sequences: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        ssrcs: npt.NDArray[np.int64],
        payloads: npt.NDArray[np.uint8],
        lengths: IntVec,
    ) -> npt.NDArray[np.bool_]:
        """File every packet that is its stream's next one (what most are); True where filed.

        ``slots`` must be distinct; ``payloads`` is ``[packets x >= width]`` (bytes past ``width`` are
        cut, as a codec's block decode fits them anyway). A full buffer drops its oldest frame, as
        ``push`` does. The rest is left for ``push``."""
        st = self.state[slots]  # every column of these slots, in one gather
        ext = st[:, _HIGHEST] + 1
        expected_ts = (st[:, _BASE_TS] + (ext - st[:, _REF_EXT]) * self.timestamp_step) & 0xFFFFFFFF
        position = ext & (self.DEPTH - 1)
        ok = (
            (ssrcs == st[:, _SSRC])
            & (st[:, _NEXT] != NONE)
            & (sequences == (st[:, _BASE_SEQ] + ext) & 0xFFFF)
            & (timestamps == expected_ts)
            & (self.tag[slots, position] == NONE)  # its ring place is free
        )
        if ok.all():  # the steady state: no copies of the columns for a mask
            s, e, p, ts, lengths, payloads = slots, ext, position, timestamps, lengths, payloads[:, : self.width]
        else:
            s, e, p, ts, lengths, payloads = slots[ok], ext[ok], position[ok], timestamps[ok], lengths[ok], payloads[ok]
            st = st[ok]
        self.tag[s, p] = e
        self.length[s, p] = np.minimum(lengths, self.width)
        self.data[s, p] = payloads[:, : self.width]
        st[:, _HIGHEST] = e
        st[:, _REF_EXT] = e
        st[:, _BASE_TS] = ts
        st[:, _ABSURD_RUN] = 0
        st[:, _COUNT] += 1
        st[:, _RECEIVED] += 1
        self.state[s] = st  # the rows back in one scatter (slots are distinct)
        full = s[st[:, _COUNT] > self.max_depth]
        if full.size:
            self._trim_many(full)
        return ok

    def _trim_many(self, slots: IntVec) -> None:
        """``_trim`` for slots one frame over ``max_depth`` (a sender ahead of playout, or a mixer that
        fell behind): each drops its oldest frame and plays on from the next oldest."""
        tags = self.tag[slots]
        present = tags != NONE
        held = np.where(present, tags, np.iinfo(np.int64).max)
        oldest = held.min(axis=1)
        self.tag[slots, oldest & (self.DEPTH - 1)] = NONE
        self.count[slots] -= 1
        held[held == oldest[:, None]] = np.iinfo(np.int64).max
        self.next[slots] = held.min(axis=1)

    def push(self, slot: int, sequence: int, timestamp: int, ssrc: int, payload: bytes) -> Verdict:
        """File one packet with every check; the verdict says what happened to it."""
        self.received[slot] += 1
        verdict = Verdict.QUEUED
        if int(self.ssrc[slot]) != ssrc:
            if int(self.ssrc[slot]) >= 0:
                verdict = Verdict.RESYNC
            self._restart(slot, sequence, timestamp, ssrc)
        step = self.timestamp_step
        highest = int(self.highest[slot])
        ext = highest + seq_distance((int(self.base_seq[slot]) + highest) & 0xFFFF, sequence)
        expected_ts = int(self.base_ts[slot]) + (ext - int(self.ref_ext[slot])) * step
        # Timestamps run ahead of sequence numbers after silence suppression or hold, so
        # forward gaps up to an hour pass; a minute backwards or more is nonsense.
        ts_off = ts_distance(expected_ts & 0xFFFFFFFF, timestamp)
        ahead = self.MAX_TS_AHEAD_FRAMES * step
        behind = self.MAX_SEQ_JUMP * step * 3
        if abs(ext - highest) > self.MAX_SEQ_JUMP or not -behind <= ts_off <= ahead:
            self.absurd_run[slot] += 1
            if self.absurd_run[slot] < self.RESYNC_AFTER:
                self.absurd[slot] += 1
                return Verdict.ABSURD
            self._restart(slot, sequence, timestamp, ssrc)
            ext = highest = 0
            verdict = Verdict.RESYNC
        self.absurd_run[slot] = 0
        if ext >= highest:
            # Re-anchor the timestamp check on the newest sane packet.
            self.ref_ext[slot], self.base_ts[slot] = ext, timestamp
        nxt = int(self.next[slot])
        if self.started[slot] and nxt != NONE and ext < nxt:
            self.late[slot] += 1
            return Verdict.LATE
        position = ext & (self.DEPTH - 1)
        held = int(self.tag[slot, position])
        if held == ext:
            return Verdict.DUPLICATE
        if held != NONE:
            # A frame DEPTH away holds the place (a long gap): the newer of the two stays.
            if held > ext:
                self.late[slot] += 1
                return Verdict.LATE
            self.count[slot] -= 1
        self.tag[slot, position] = ext
        size = min(len(payload), self.width)
        self.length[slot, position] = size
        self.data[slot, position, :size] = np.frombuffer(payload, dtype=np.uint8, count=size)
        self.count[slot] += 1
        self.highest[slot] = max(highest, ext)
        if nxt == NONE or ext < nxt or held != NONE:
            self.next[slot] = self._oldest(slot)
        self._trim(slot)
        return verdict

    def _oldest(self, slot: int) -> int:
        tags = self.tag[slot]
        return int(tags[tags != NONE].min())

    def _trim(self, slot: int) -> None:
        # A sender running ahead (or a burst) would add delay for good: drop the oldest frames.
        while self.count[slot] > self.max_depth:
            oldest = self._oldest(slot)
            self.tag[slot, oldest & (self.DEPTH - 1)] = NONE
            self.count[slot] -= 1
            self.next[slot] = self._oldest(slot)

    # ----- playout ----------------------------------------------------------------------------

    def pop_many(self, slots: IntVec) -> tuple[npt.NDArray[np.int8], IntVec]:
        """Play one frame of every slot in ``slots``: its state (EMPTY_FRAME, LOST_FRAME or
        PRESENT_FRAME) and ring position (read ``data`` / ``length`` there for a present frame)."""
        nxt = self.next[slots]
        position = nxt & (self.DEPTH - 1)
        steady = (self.tag[slots, position] == nxt) & self.playing[slots] & (nxt != NONE)
        if steady.all():
            # The steady tick: every slot plays its queued next frame (a third of the general path's calls).
            self.next[slots] = nxt + 1
            self.tag[slots, position] = NONE
            self.count[slots] -= 1
            return np.full(slots.size, PRESENT_FRAME, dtype=np.int8), position
        count = self.count[slots]
        nothing = (nxt == NONE) | (count == 0)
        self.playing[slots[nothing]] = False
        waiting = (
            ~nothing & ~self.playing[slots] & (count < self.prefill) & (self.highest[slots] - nxt + 1 < self.prefill)
        )
        plays = ~(nothing | waiting)
        hit = plays & (self.tag[slots, position] == nxt)
        # EMPTY_FRAME 0, LOST_FRAME 1, PRESENT_FRAME 2: a hit is always a play.
        state = plays.astype(np.int8) + hit.astype(np.int8)
        playing = slots[plays]
        self.playing[playing] = True
        self.started[playing] = True
        self.next[playing] += 1
        got = slots[hit]
        self.tag[got, position[hit]] = NONE
        self.count[got] -= 1
        self.lost[slots[plays & ~hit]] += 1
        return state, position

    def payload(self, slot: int, position: int) -> bytes:
        """The payload queued at ``position`` of ``slot`` (as ``pop_many`` reported it)."""
        return self.data[slot, position, : self.length[slot, position]].tobytes()


class JitterBuffer:
    """One leg's playout buffer: slot ``slot`` of a ring (a ring of its own when none is given)."""

    EMPTY = _Empty()

    def __init__(
        self,
        timestamp_step: int = 160,
        prefill: int = 2,
        max_depth: int = 10,
        ring: JitterRing | None = None,
        slot: int = 0,
    ) -> None:
        self.ring = ring if ring is not None else JitterRing(timestamp_step, 2048, 1, prefill, max_depth)
        self.slot = slot

    @property
    def max_depth(self) -> int:
        return self.ring.max_depth

    def push(self, packet: RtpPacket) -> Verdict:
        """File one packet; the verdict says what happened to it."""
        return self.ring.push(self.slot, packet.sequence, packet.timestamp, packet.ssrc, packet.payload)

    def pop(self) -> bytes | _Empty | None:
        """The payload of the next 20 ms frame, ``None`` if it was lost, EMPTY if there is nothing to play."""
        slots = np.array([self.slot], dtype=np.intp)
        state, position = self.ring.pop_many(slots)
        if state[0] == EMPTY_FRAME:
            return self.EMPTY
        if state[0] == LOST_FRAME:
            return None
        return self.ring.payload(self.slot, int(position[0]))

    received = property(lambda self: self._get("received"), lambda self, v: self._put("received", v))
    lost = property(lambda self: self._get("lost"), lambda self, v: self._put("lost", v))
    late = property(lambda self: self._get("late"), lambda self, v: self._put("late", v))
    absurd = property(lambda self: self._get("absurd"), lambda self, v: self._put("absurd", v))

    def _get(self, counter: str) -> int:
        return int(getattr(self.ring, counter)[self.slot])

    def _put(self, counter: str, value: int) -> None:
        getattr(self.ring, counter)[self.slot] = value

    def stats(self) -> JitterStats:
        return JitterStats(self.received, self.lost, self.late, self.absurd, int(self.ring.count[self.slot]))
