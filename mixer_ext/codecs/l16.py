"""L16: uncompressed network-order 16-bit PCM, at any of the room rates."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from mixer_ext.codecs.base import CodecSpec, ConcealingDecoder, Decoder, Encoder, Pcm, fit


def l16_spec(rate: int) -> CodecSpec:
    return CodecSpec("L16", rate, rate)


class L16Encoder:
    """Byte-swaps; a whole block of legs is one conversion."""

    def __init__(self, spec: CodecSpec, complexity: int | None = None) -> None:
        self.spec = spec  # complexity: nothing to choose for raw PCM, accepted and ignored

    @property
    def block_key(self) -> Hashable:
        return self.spec.key

    def encode(self, frame: Pcm) -> bytes:
        return np.asarray(frame, dtype=np.int16).astype(">i2").tobytes()

    def encode_many(self, group: Sequence[Encoder], block: Pcm) -> list[bytes]:
        size = 2 * block.shape[1]
        coded = np.asarray(block, dtype=np.int16).astype(">i2").tobytes()
        return [coded[i : i + size] for i in range(0, len(coded), size)]


class L16Decoder:
    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec
        self._plc = ConcealingDecoder(spec.samples())

    @property
    def block_key(self) -> Hashable:
        return self.spec.key

    def decode(self, payload: bytes | None) -> Pcm:
        if payload is None:
            return self._plc.conceal()
        usable = len(payload) - len(payload) % 2
        return self._plc.remember(np.frombuffer(payload[:usable], dtype=">i2").astype(np.int16))

    def decode_many(self, group: Sequence[Decoder], payloads: Sequence[bytes | None]) -> Pcm:
        samples = self.spec.samples()
        whole = [i for i, p in enumerate(payloads) if p is not None and len(p) == 2 * samples]
        out = np.empty((len(group), samples), dtype=np.int16)
        if whole:
            joined = np.frombuffer(b"".join(payloads[i] for i in whole), dtype=">i2")  # type: ignore[misc]
            out[whole] = joined.reshape(len(whole), samples)
            for i in whole:
                decoder = group[i]
                assert isinstance(decoder, L16Decoder)  # same block_key, same class
                decoder._plc.remember(out[i])
        done = set(whole)
        for i, payload in enumerate(payloads):
            if i not in done:
                out[i] = fit(group[i].decode(payload), samples)
        return out
