"""The one interface every codec module implements, as aiortc's codecs do.

An Encoder turns one frame of int16 PCM at the codec's sample rate into an RTP payload; a
Decoder turns a payload back into int16 PCM (``None`` asks it to conceal a lost frame).
"""

from __future__ import annotations

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

    def encode(self, frame: Pcm) -> bytes:
        """Encode one frame of int16 PCM at ``spec.sample_rate``."""
        ...


class Decoder(Protocol):
    spec: CodecSpec

    def decode(self, payload: bytes | None) -> Pcm:
        """Decode one payload to int16 PCM at ``spec.sample_rate``; ``None`` conceals a lost frame."""
        ...


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
