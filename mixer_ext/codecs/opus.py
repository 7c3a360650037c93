"""Opus (mono, 48 kHz, written ``opus/48000/2`` in SDP) over ``opuslib`` and the system libopus.

``opuslib`` raises at import time when libopus0 is missing, so this module is imported
lazily by the codec registry: without libopus the mixer runs and simply does not offer Opus.
"""

from __future__ import annotations

import numpy as np
import opuslib

from mixer_ext.codecs.base import CodecSpec, Pcm, PerFrameDecoder, PerFrameEncoder

OPUS = CodecSpec("opus", 48000, 48000, channels=2, fmtp="useinbandfec=1; stereo=0; sprop-stereo=0")
_BITRATE = 32000


class OpusEncoder(PerFrameEncoder):
    """libopus at 32 kbit/s; ``complexity`` 0-10 trades quality for CPU (None keeps libopus's default)."""

    def __init__(self, complexity: int | None = None) -> None:
        self.spec = OPUS
        self._state = opuslib.Encoder(OPUS.sample_rate, 1, opuslib.APPLICATION_VOIP)
        self._state.bitrate = _BITRATE
        if complexity is not None:
            self._state.complexity = complexity

    def encode(self, frame: Pcm) -> bytes:
        pcm = np.asarray(frame, dtype=np.int16)
        return bytes(self._state.encode(pcm.tobytes(), pcm.size))


class OpusDecoder(PerFrameDecoder):
    def __init__(self) -> None:
        self.spec = OPUS
        self._state = opuslib.Decoder(OPUS.sample_rate, 1)
        self._frame = OPUS.samples()

    def decode(self, payload: bytes | None) -> Pcm:
        # An empty payload asks libopus for its own packet loss concealment.
        data = self._state.decode(payload or b"", self._frame)
        return np.frombuffer(data, dtype=np.int16).copy()
