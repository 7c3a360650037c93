"""A lane: every leg of one codec in rooms of one rate, as numpy arrays indexed by the leg's slot.

A lane holds what the media loop touches every tick for each of its legs, as columns: the jitter
ring (``jitter.JitterRing``), the outgoing RTP stream (SSRC, sequence, timestamp, marker), the
talker state the kernel feeds back (energy, talking), where to send (one integer key per leg,
the (host, port) kept beside it) and the outgoing packets themselves: one preallocated row per
slot, a 12-byte RTP header then the payload, which ``batchio.OutBatch`` sends in place.
Codecs without per-leg state (G.711, L16) bring slot codecs (``codecs.get_slot_codec``), so a
whole lane decodes and encodes in one numpy operation; the others keep one codec object per leg.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixer_ext.batchio import Address, address_key
from mixer_ext.codecs import get_slot_codec, get_spec
from mixer_ext.jitter import JitterRing

PTIME_MS = 20
HEADER_BYTES = 12
# Payload room per slot for codecs of variable frame size: no 20 ms Opus or G.722 frame is longer.
VARIABLE_WIDTH = 1500


class Lane:
    """The legs of one (codec, room rate): slot arrays, grown by doubling, slots reused once freed."""

    FIRST_CAPACITY = 16

    def __init__(self, index: int, codec_key: str, room_rate: int) -> None:
        self.index = index  # the media loop's number for this lane
        self.spec = get_spec(codec_key)
        self.room_rate = room_rate
        self.resampled = self.spec.sample_rate != room_rate
        slot_codec = get_slot_codec(codec_key)
        self.slot_decoder, self.slot_encoder = slot_codec if slot_codec is not None else (None, None)
        width = self.slot_decoder.frame_bytes if self.slot_decoder is not None else VARIABLE_WIDTH
        out_width = self.slot_encoder.frame_bytes if self.slot_encoder is not None else VARIABLE_WIDTH
        self.step = self.spec.timestamp_step(PTIME_MS)
        self.jitter = JitterRing(self.step, width, 0)
        self.packet = np.dtype(
            [
                ("flags", np.uint8),
                ("mpt", np.uint8),
                ("seq", ">u2"),
                ("ts", ">u4"),
                ("ssrc", ">u4"),
                ("payload", np.uint8, (out_width,)),
            ]
        )
        self.capacity = 0
        self.parts: list[Any] = []  # the Participant in each slot (None: free)
        self.dests: list[Address | None] = []
        self._free: list[int] = []
        self.active = np.zeros(0, dtype=bool)
        self.payload_type = np.zeros(0, dtype=np.int64)
        self.ssrc = np.zeros(0, dtype=np.int64)
        self.marker = np.zeros(0, dtype=bool)
        self.energy = np.zeros(0, dtype=np.float32)
        self.talking = np.zeros(0, dtype=bool)
        self.dest_key = np.zeros(0, dtype=np.uint64)  # address_key of dests[slot]; 0: send nothing yet
        self.out_len = np.zeros(0, dtype=np.intp)  # payload bytes in each outgoing row
        self.fresh = np.zeros(0, dtype=bool)  # the row was written this tick
        self.out = np.zeros(0, dtype=self.packet)
        self.rows = self.out.view(np.uint8).reshape(0, self.packet.itemsize)
        self._field_views()
        self.dirty = True  # slots or destinations changed: the send batch must be rebuilt
        # Some slot's row has yet to get its payload type, or carries or awaits its first packet's marker.
        self.marking = False

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` slots; every existing slot keeps its state."""
        old = self.capacity
        if capacity <= old:
            return
        for name in ("active", "payload_type", "ssrc", "marker", "energy", "talking"):
            setattr(self, name, _grown(getattr(self, name), capacity))
        for name in ("dest_key", "out_len", "fresh"):
            setattr(self, name, _grown(getattr(self, name), capacity))
        out = np.zeros(capacity, dtype=self.packet)
        out[:old] = self.out
        out["flags"] = 0x80  # version 2, no padding, extension or CSRC
        self.out = out
        self.rows = out.view(np.uint8).reshape(capacity, self.packet.itemsize)
        self._field_views()
        self.jitter.grow(capacity)
        if self.slot_decoder is not None:
            self.slot_decoder.grow(capacity)
        self.parts.extend([None] * (capacity - old))
        self.dests.extend([None] * (capacity - old))
        self._free.extend(range(capacity - 1, old - 1, -1))
        self.capacity = capacity
        self.dirty = True

    def _field_views(self) -> None:
        # The columns of the outgoing rows a tick writes, made once per growth (a field lookup costs a call).
        # A stream's sequence and timestamp live in its row: advanced in place, they wrap as RTP's do.
        self.seq, self.ts = self.out["seq"], self.out["ts"]
        self.out_mpt, self.out_payload = self.out["mpt"], self.out["payload"]

    def alloc(self, part: Any, payload_type: int) -> int:
        """A slot for ``part`` with a fresh jitter buffer and concealment state."""
        if not self._free:
            self.grow(max(self.FIRST_CAPACITY, 2 * self.capacity))
        slot = self._free.pop()
        self.parts[slot] = part
        self.active[slot] = True
        self.payload_type[slot] = payload_type
        self.marker[slot] = True
        self.marking = True
        self.energy[slot] = 0.0
        self.talking[slot] = False
        self.jitter.reset(slot)
        if self.slot_decoder is not None:
            self.slot_decoder.reset(slot)
        self.set_dest(slot, None)
        return slot

    def free(self, slot: int) -> None:
        """Give ``slot`` back: nothing is sent from it any more."""
        self.parts[slot] = None
        self.active[slot] = False
        self.marker[slot] = False
        self.set_dest(slot, None)
        self._free.append(slot)

    def set_dest(self, slot: int, dest: Address | None) -> None:
        """Where slot ``slot``'s packets go (None: nowhere yet)."""
        if self.dests[slot] != dest:
            self.dests[slot] = dest
            self.dest_key[slot] = 0 if dest is None else address_key(dest)
            self.dirty = True

    def set_ssrc(self, slot: int, ssrc: int) -> None:
        """Slot ``slot``'s outgoing SSRC (written into its packet row once, not every tick)."""
        self.ssrc[slot] = ssrc
        self.out["ssrc"][slot] = ssrc


def _grown(column: np.ndarray, capacity: int) -> np.ndarray:
    bigger = np.zeros(capacity, dtype=column.dtype)
    bigger[: column.size] = column
    return bigger
