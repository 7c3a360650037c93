"""L16: uncompressed network-order 16-bit PCM, at any of the room rates."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from mixer_ext.codecs.base import CodecSpec, ConcealingDecoder, ConcealingSlotDecoder, Decoder, Encoder, Pcm, fit


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


class L16SlotEncoder:
    """A whole block byte-swapped at once into the payload rows."""

    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec
        self.frame_bytes = 2 * spec.samples()

    def encode_block(self, block: Pcm) -> npt.NDArray[np.uint8]:
        big = np.ascontiguousarray(block, dtype=np.int16).astype(">i2")
        return big.view(np.uint8).reshape(block.shape[0], self.frame_bytes)


class L16SlotDecoder(ConcealingSlotDecoder):
    """A whole lane's frames in one conversion; fade-out concealment per slot."""

    bytes_per_sample = 2

    def samples_of(self, codes: npt.NDArray[np.uint8]) -> Pcm:
        return np.ascontiguousarray(codes).view(">i2").astype(np.int16)
