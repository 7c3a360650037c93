"""A per-participant jitter buffer: reorders by sequence, reports losses, rejects nonsense.

Playout is one frame per 20 ms tick. ``push`` files a packet by its extended sequence number;
``pop`` returns the next frame's payload, or ``None`` for a frame that is lost (the decoder
conceals it), or ``JitterBuffer.EMPTY`` while the sender is silent and nothing is queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mixer_ext.rtp import RtpPacket, seq_distance, ts_distance


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


class JitterBuffer:
    """Sequence-ordered playout buffer for one RTP stream (20 ms frames)."""

    EMPTY = _Empty()
    # A jump of more than this many packets (about 20 s) is not reordering: it is nonsense.
    MAX_SEQ_JUMP = 1000
    # One hour of 20 ms frames: the longest silence a sender may skip over with its timestamps.
    MAX_TS_AHEAD_FRAMES = 180_000
    # This many absurd packets in a row means the sender really restarted its stream.
    RESYNC_AFTER = 5

    def __init__(self, timestamp_step: int, prefill: int = 2, max_depth: int = 10) -> None:
        self.timestamp_step = timestamp_step
        self.prefill = prefill
        self.max_depth = max_depth
        self._frames: dict[int, bytes] = {}
        self._ssrc: int | None = None
        self._base_seq = 0  # extended sequence = base_seq + distance from the first packet
        self._base_ts = 0
        self._ref_ext = 0
        self._next: int | None = None  # extended sequence of the next frame to play
        self._highest = 0
        self._playing = False
        self._started = False  # a frame has been played, so earlier ones are now late
        self._absurd_run = 0
        self.received = self.lost = self.late = self.absurd = 0

    def _restart(self, packet: RtpPacket) -> None:
        self._frames.clear()
        self._ssrc = packet.ssrc
        self._base_seq = packet.sequence
        self._base_ts = packet.timestamp
        self._ref_ext = 0
        self._next = None
        self._highest = 0
        self._playing = False
        self._started = False
        self._absurd_run = 0

    def _extend(self, sequence: int) -> int:
        return self._highest + seq_distance((self._base_seq + self._highest) & 0xFFFF, sequence)

    def push_fields(self, sequence: int, timestamp: int, ssrc: int, payload: bytes) -> Verdict:
        """``push`` for a packet not yet built: the next packet of the stream, as most are, is filed
        without the reordering and sanity checks (it passes them by construction)."""
        if ssrc == self._ssrc and self._next is not None:
            ext = self._highest + 1
            expected_ts = (self._base_ts + (ext - self._ref_ext) * self.timestamp_step) & 0xFFFFFFFF
            if sequence == (self._base_seq + ext) & 0xFFFF and timestamp == expected_ts:
                self.received += 1
                self._absurd_run = 0
                self._ref_ext, self._base_ts = ext, timestamp
                self._frames[ext] = payload
                self._highest = ext
                if len(self._frames) > self.max_depth:
                    self._trim()
                return Verdict.QUEUED
        return self.push(RtpPacket(0, sequence, timestamp, ssrc, payload))

    def _trim(self) -> None:
        # A sender running ahead (or a burst) would add delay for good: drop the oldest frames.
        while len(self._frames) > self.max_depth:
            oldest = min(self._frames)
            del self._frames[oldest]
            self._next = min(self._frames)

    def push(self, packet: RtpPacket) -> Verdict:
        """File one packet; the verdict says what happened to it."""
        self.received += 1
        verdict = Verdict.QUEUED
        if self._ssrc != packet.ssrc:
            if self._ssrc is not None:
                verdict = Verdict.RESYNC
            self._restart(packet)
        ext = self._extend(packet.sequence)
        expected_ts = self._base_ts + (ext - self._ref_ext) * self.timestamp_step
        # Timestamps run ahead of sequence numbers after silence suppression or hold, so
        # forward gaps up to an hour pass; a minute backwards or more is nonsense.
        ts_off = ts_distance(expected_ts & 0xFFFFFFFF, packet.timestamp)
        ahead = self.MAX_TS_AHEAD_FRAMES * self.timestamp_step
        behind = self.MAX_SEQ_JUMP * self.timestamp_step * 3
        if abs(ext - self._highest) > self.MAX_SEQ_JUMP or not -behind <= ts_off <= ahead:
            self._absurd_run += 1
            if self._absurd_run < self.RESYNC_AFTER:
                self.absurd += 1
                return Verdict.ABSURD
            self._restart(packet)
            ext = 0
            verdict = Verdict.RESYNC
        self._absurd_run = 0
        if ext >= self._highest:
            # Re-anchor the timestamp check on the newest sane packet.
            self._ref_ext, self._base_ts = ext, packet.timestamp
        if self._started and self._next is not None and ext < self._next:
            self.late += 1
            return Verdict.LATE
        if ext in self._frames:
            return Verdict.DUPLICATE
        self._frames[ext] = packet.payload
        self._highest = max(self._highest, ext)
        if self._next is None:
            self._next = ext
        elif ext < self._next:
            self._next = ext
        self._trim()
        return verdict

    def pop(self) -> bytes | _Empty | None:
        """The payload of the next 20 ms frame, ``None`` if it was lost, EMPTY if there is nothing to play."""
        if self._next is None or not self._frames:
            self._playing = False
            return self.EMPTY
        if not self._playing:
            if len(self._frames) < self.prefill and self._highest - self._next + 1 < self.prefill:
                return self.EMPTY
            self._playing = True
        ext = self._next
        self._next = ext + 1
        self._started = True
        payload = self._frames.pop(ext, None)
        if payload is None:
            self.lost += 1
        return payload

    def stats(self) -> JitterStats:
        return JitterStats(self.received, self.lost, self.late, self.absurd, len(self._frames))
