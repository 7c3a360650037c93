"""G.722 wideband (16 kHz audio on an 8000 Hz RTP clock) over the ``G722`` PyPI package (libg722)."""

from __future__ import annotations

import numpy as np
from G722 import G722 as _G722

from mixer_ext.codecs.base import CodecSpec, ConcealingDecoder, Pcm, PerFrameDecoder, PerFrameEncoder

G722 = CodecSpec("G722", 8000, 16000, static_pt=9)
_BITRATE = 64000


class G722Encoder(PerFrameEncoder):
    def __init__(self, complexity: int | None = None) -> None:
        # complexity: G.722 has none to choose, accepted and ignored
        self.spec = G722
        self._state = _G722(G722.sample_rate, _BITRATE)

    def encode(self, frame: Pcm) -> bytes:
        return bytes(self._state.encode(np.asarray(frame, dtype=np.int16)))


class G722Decoder(PerFrameDecoder):
    def __init__(self) -> None:
        self.spec = G722
        self._state = _G722(G722.sample_rate, _BITRATE)
        self._plc = ConcealingDecoder(G722.samples())

    def decode(self, payload: bytes | None) -> Pcm:
        if payload is None:
            return self._plc.conceal()
        return self._plc.remember(np.asarray(self._state.decode(payload), dtype=np.int16))
