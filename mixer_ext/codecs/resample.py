"""Fixed-size streaming resampling with soxr: a narrowband leg in an HD room, or the way back."""

from __future__ import annotations

import numpy as np
import soxr

from mixer_ext.codecs.base import Pcm


class FrameResampler:
    """Resamples consecutive frames, keeping filter state, and always returns ``out_samples``.

    soxr's stream output size varies while its filter fills; a small FIFO, primed with the
    filter's delay in silence, turns that into exactly one output frame per input frame.
    """

    def __init__(self, in_rate: int, out_rate: int, ptime_ms: int = 20) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.out_samples = out_rate * ptime_ms // 1000
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        self._fifo = np.zeros(0, dtype=np.int16)

    def process(self, frame: Pcm) -> Pcm:
        produced = self._stream.resample_chunk(np.asarray(frame, dtype=np.int16))
        self._fifo = np.concatenate((self._fifo, produced)) if self._fifo.size else produced
        if self._fifo.size < self.out_samples:
            short = self.out_samples - self._fifo.size
            # Silence while the filter fills (only the first frame or two of a leg).
            self._fifo = np.concatenate((np.zeros(short, dtype=np.int16), self._fifo))
        out, self._fifo = self._fifo[: self.out_samples], self._fifo[self.out_samples :]
        return out


def resample_block(pcm: Pcm, in_rate: int, out_rate: int) -> Pcm:
    """One-shot resampling of a whole signal (tests and tools; the media path uses FrameResampler)."""
    if in_rate == out_rate:
        return np.asarray(pcm, dtype=np.int16)
    return soxr.resample(np.asarray(pcm, dtype=np.int16), in_rate, out_rate, quality="HQ")
