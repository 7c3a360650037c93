"""The one interface every codec module implements, as aiortc's codecs do.

An Encoder turns one frame of int16 PCM at the codec's sample rate into an RTP payload; a
Decoder turns a payload back into int16 PCM (``None`` asks it to conceal a lost frame).

The media loop codes whole blocks of legs at once: codec objects with the same ``block_key``
are handed together to ``decode_many`` / ``encode_many`` of the first of them. ``PerFrameDecoder``
and ``PerFrameEncoder`` give the plain one-frame-at-a-time loop; table codecs (G.711, L16)
override it with one numpy operation for the whole block.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True)
class CodecSpec:
    """A codec as SDP names it, plus the rates the media path needs."""

    name: str  # SDP encoding name, as written in a=rtpmap (case kept for output)
    clock_rate: int  # RTP timestamp rate (G.722 says 8000 for historical reasons)
    sample_rate: int  # PCM rate the codec really carries
    static_pt: int | None = None  # RFC 3551 static payload type, if any
    channels: int = 1  # channels in the rtpmap (Opus is always written /2)
    fmtp: str = ""

    @property
    def key(self) -> str:
        """Lookup key: lower-case name and clock rate, e.g. ``l16/16000``."""
        return f"{self.name.lower()}/{self.clock_rate}"

    def samples(self, ptime_ms: int = 20) -> int:
        """PCM samples in one frame of ``ptime_ms``."""
        return self.sample_rate * ptime_ms // 1000

    def timestamp_step(self, ptime_ms: int = 20) -> int:
        """RTP timestamp increment of one frame of ``ptime_ms``."""
        return self.clock_rate * ptime_ms // 1000


class Encoder(Protocol):
    spec: CodecSpec

    @property
    def block_key(self) -> Hashable:
        """Encoders with equal keys can be driven by one ``encode_many`` call."""
        ...

    def encode(self, frame: Pcm) -> bytes:
        """Encode one frame of int16 PCM at ``spec.sample_rate``."""
        ...

    def encode_many(self, group: Sequence[Encoder], block: Pcm) -> list[bytes]:
        """Encode row i of ``block`` [len(group) x samples] with ``group[i]``; one payload per row."""
        ...


class Decoder(Protocol):
    spec: CodecSpec

    @property
    def block_key(self) -> Hashable:
        """Decoders with equal keys can be driven by one ``decode_many`` call."""
        ...

    def decode(self, payload: bytes | None) -> Pcm:
        """Decode one payload to int16 PCM at ``spec.sample_rate``; ``None`` conceals a lost frame."""
        ...

    def decode_many(self, group: Sequence[Decoder], payloads: Sequence[bytes | None]) -> Pcm:
        """Decode ``payloads[i]`` with ``group[i]`` into row i of a [len(group) x spec.samples()] block."""
        ...


def fit(pcm: Pcm, samples: int) -> Pcm:
    """``pcm`` cut or zero-padded to exactly ``samples`` (a sender's odd-sized frame must not break a block)."""
    if pcm.size == samples:
        return pcm
    out = np.zeros(samples, dtype=np.int16)
    out[: min(samples, pcm.size)] = pcm[:samples]
    return out


class PerFrameEncoder:
    """The block interface for codecs with per-stream state: one ``encode`` per row."""

    spec: CodecSpec

    @property
    def block_key(self) -> Hashable:
        return self.spec.key

    def encode(self, frame: Pcm) -> bytes:
        raise NotImplementedError

    def encode_many(self, group: Sequence[Encoder], block: Pcm) -> list[bytes]:
        return [encoder.encode(row) for encoder, row in zip(group, block, strict=True)]


class PerFrameDecoder:
    """The block interface for codecs with per-stream state: one ``decode`` per row."""

    spec: CodecSpec

    @property
    def block_key(self) -> Hashable:
        return self.spec.key

    def decode(self, payload: bytes | None) -> Pcm:
        raise NotImplementedError

    def decode_many(self, group: Sequence[Decoder], payloads: Sequence[bytes | None]) -> Pcm:
        samples = self.spec.samples()
        out = np.empty((len(group), samples), dtype=np.int16)
        for row, (decoder, payload) in enumerate(zip(group, payloads, strict=True)):
            out[row] = fit(decoder.decode(payload), samples)
        return out


class ConcealingDecoder:
    """Loss concealment for codecs without their own: repeat the last frame, fading, then silence."""

    # Each concealed frame is half as loud as the one before; after 3 it is silence.
    FADE = 0.5
    MAX_CONCEALED = 3

    def __init__(self, frame_samples: int) -> None:
        self._last = np.zeros(frame_samples, dtype=np.int16)
        self._concealed = 0

    def remember(self, pcm: Pcm) -> Pcm:
        self._last = pcm
        self._concealed = 0
        return pcm

    def conceal(self) -> Pcm:
        self._concealed += 1
        if self._concealed > self.MAX_CONCEALED:
            return np.zeros_like(self._last)
        faded = (self._last.astype(np.float32) * self.FADE**self._concealed).astype(np.int16)
        return faded


class SlotDecoder(Protocol):
    """Decodes the streams of many legs at once, each leg in a slot of its own (its concealment too)."""

    spec: CodecSpec
    frame_bytes: int  # the payload of one 20 ms frame

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` slots."""
        ...

    def reset(self, slot: int) -> None:
        """A new leg takes ``slot``: nothing to conceal from before."""
        ...

    def decode_slots(self, slots: npt.NDArray[np.intp], codes: npt.NDArray[np.uint8], lengths: np.ndarray) -> Pcm:
        """Row i of ``codes`` (``lengths[i]`` bytes of it used) decoded for ``slots[i]``: [n x spec.samples()]."""
        ...

    def conceal_slots(self, slots: npt.NDArray[np.intp]) -> Pcm:
        """A stand-in for the lost frame of every slot in ``slots``: [n x spec.samples()]."""
        ...


class SlotEncoder(Protocol):
    """Encodes a block of frames with no per-leg state: one operation for the whole block."""

    spec: CodecSpec
    frame_bytes: int

    def encode_block(self, block: Pcm) -> npt.NDArray[np.uint8]:
        """Row i of ``block`` [n x spec.samples()] encoded into row i of an [n x frame_bytes] array."""
        ...


class SlotConcealer:
    """``ConcealingDecoder`` for many slots: each slot's last frame, repeated fading, then silence."""

    def __init__(self, frame_samples: int) -> None:
        self.last = np.zeros((0, frame_samples), dtype=np.int16)
        self.concealed = np.zeros(0, dtype=np.intp)

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` slots."""
        old = self.last.shape[0]
        if capacity <= old:
            return
        last = np.zeros((capacity, self.last.shape[1]), dtype=np.int16)
        last[:old] = self.last
        concealed = np.zeros(capacity, dtype=np.intp)
        concealed[:old] = self.concealed
        self.last, self.concealed = last, concealed

    def reset(self, slot: int) -> None:
        """Nothing to conceal in ``slot`` (a new leg took it)."""
        self.last[slot] = 0
        self.concealed[slot] = 0

    def remember(self, slots: npt.NDArray[np.intp], pcm: Pcm) -> Pcm:
        """Keep row i of ``pcm`` as the last good frame of ``slots[i]``; returns ``pcm``."""
        self.last[slots] = pcm
        self.concealed[slots] = 0
        return pcm

    def conceal(self, slots: npt.NDArray[np.intp]) -> Pcm:
        """The stand-in for each slot's lost frame: its last good one, fading, then silence."""
        self.concealed[slots] += 1
        times = self.concealed[slots]
        # The same fade as ConcealingDecoder: FADE ** n for the n-th frame in a row, silence after MAX_CONCEALED.
        scale = np.where(
            times > ConcealingDecoder.MAX_CONCEALED, 0.0, np.float32(ConcealingDecoder.FADE) ** times.astype(np.float32)
        )
        return (self.last[slots].astype(np.float32) * scale.astype(np.float32)[:, None]).astype(np.int16)


class ConcealingSlotDecoder:
    """A whole lane's frames decoded at once: a short frame's missing samples are silent, and each slot's
    lost frames are concealed by fading its last good one. Subclasses say how codes become samples."""

    bytes_per_sample = 1

    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec
        self.frame_bytes = self.bytes_per_sample * spec.samples()
        self.plc = SlotConcealer(spec.samples())

    def samples_of(self, codes: npt.NDArray[np.uint8]) -> Pcm:
        """``[slots x frame_bytes]`` codes as ``[slots x samples]`` int16 PCM, a new array."""
        raise NotImplementedError

    def grow(self, capacity: int) -> None:
        self.plc.grow(capacity)

    def reset(self, slot: int) -> None:
        self.plc.reset(slot)

    def decode_slots(self, slots: npt.NDArray[np.intp], codes: npt.NDArray[np.uint8], lengths: np.ndarray) -> Pcm:
        pcm = self.samples_of(codes[:, : self.frame_bytes])
        short = lengths < self.frame_bytes
        if short.any():
            # A sender's short frame: what it did not send is silence (a code of 0 need not be).
            pcm[np.arange(pcm.shape[1]) >= (lengths // self.bytes_per_sample)[:, None]] = 0
        return self.plc.remember(slots, pcm)

    def conceal_slots(self, slots: npt.NDArray[np.intp]) -> Pcm:
        return self.plc.conceal(slots)
