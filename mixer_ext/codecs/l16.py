"""L16: uncompressed network-order 16-bit PCM, at any of the room rates."""

from __future__ import annotations

import numpy as np

from mixer_ext.codecs.base import CodecSpec, ConcealingDecoder, Pcm


def l16_spec(rate: int) -> CodecSpec:
    return CodecSpec("L16", rate, rate)


class L16Encoder:
    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec

    def encode(self, frame: Pcm) -> bytes:
        return np.asarray(frame, dtype=np.int16).astype(">i2").tobytes()


class L16Decoder:
    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec
        self._plc = ConcealingDecoder(spec.samples())

    def decode(self, payload: bytes | None) -> Pcm:
        if payload is None:
            return self._plc.conceal()
        usable = len(payload) - len(payload) % 2
        return self._plc.remember(np.frombuffer(payload[:usable], dtype=">i2").astype(np.int16))
