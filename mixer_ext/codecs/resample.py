"""Fixed-size streaming resampling with soxr: a narrowband leg in an HD room, or the way back."""

from __future__ import annotations

import numpy as np
import soxr

from mixer_ext.codecs.base import Pcm


class FrameResampler:
    """Resamples consecutive 20 ms frames with soxr's HQ filter, one frame in, one frame out.

    soxr's streaming API releases output in bursts of 50-100 ms, far too lumpy for a 20 ms
    media clock, so each call resamples a three-frame window (one frame of past, the frame
    to emit, one frame of future) in one shot and emits its middle: exactly one frame, 20 ms
    late, matching a whole-signal resampling to within int16 rounding.
    """

    def __init__(self, in_rate: int, out_rate: int, ptime_ms: int = 20) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.in_samples = in_rate * ptime_ms // 1000
        self.out_samples = out_rate * ptime_ms // 1000
        self._window = np.zeros(3 * self.in_samples, dtype=np.int16)

    def reset(self) -> None:
        """Forget the past (the leg went silent): the next frames start from silence."""
        self._window[:] = 0

    def process(self, frame: Pcm) -> Pcm:
        """Take one input frame, return one output frame (the previous input frame, resampled)."""
        pcm = np.asarray(frame, dtype=np.int16)
        if pcm.size != self.in_samples:
            fitted = np.zeros(self.in_samples, dtype=np.int16)
            fitted[: min(pcm.size, self.in_samples)] = pcm[: self.in_samples]
            pcm = fitted
        self._window = np.concatenate((self._window[self.in_samples :], pcm))
        out = soxr.resample(self._window, self.in_rate, self.out_rate, quality="HQ")
        return out[self.out_samples : 2 * self.out_samples]


def resample_block(pcm: Pcm, in_rate: int, out_rate: int) -> Pcm:
    """One-shot resampling of a whole signal (tests and tools; the media path uses FrameResampler)."""
    if in_rate == out_rate:
        return np.asarray(pcm, dtype=np.int16)
    return soxr.resample(np.asarray(pcm, dtype=np.int16), in_rate, out_rate, quality="HQ")
