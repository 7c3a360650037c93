"""G.711 arithmetic shared by PCMU and PCMA: the lookup tables and the table-driven encoder/decoder."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from mixer_ext.codecs.base import CodecSpec, ConcealingDecoder, ConcealingSlotDecoder, Decoder, Encoder, Pcm, fit

_BIAS = 0x84
_CLIP = 32635


def _ulaw_encode_scalar(sample: int) -> int:
    # Work on the 14-bit value (sample >> 2) as G.191 does, so negative samples round alike.
    sign = 0x80 if sample < 0 else 0
    magnitude = min((-(sample >> 2) if sample < 0 else sample >> 2) << 2, _CLIP) + _BIAS
    exponent = max(magnitude.bit_length() - 8, 0)
    exponent = min(exponent, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw_decode_scalar(code: int) -> int:
    code = ~code & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -magnitude if sign else magnitude


def _alaw_encode_scalar(sample: int) -> int:
    # A-law works on 13-bit magnitudes; the sign bit is set for positive samples.
    if sample >= 0:
        sign = 0xD5
        magnitude = sample >> 3
    else:
        sign = 0x55
        magnitude = (-sample - 1) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = min(magnitude.bit_length() - 5, 7)
        mantissa = (magnitude >> exponent) & 0x0F
        code = (exponent << 4) | mantissa
        if magnitude >= 4096:
            code = 0x7F
    return (code ^ sign) & 0xFF


def _alaw_decode_scalar(code: int) -> int:
    code ^= 0x55
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if sign else -magnitude


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    samples = np.arange(65536, dtype=np.int64).astype(np.uint16).view(np.int16)
    ulaw_enc = np.array([_ulaw_encode_scalar(int(s)) for s in samples], dtype=np.uint8)
    alaw_enc = np.array([_alaw_encode_scalar(int(s)) for s in samples], dtype=np.uint8)
    ulaw_dec = np.array([_ulaw_decode_scalar(c) for c in range(256)], dtype=np.int16)
    alaw_dec = np.array([_alaw_decode_scalar(c) for c in range(256)], dtype=np.int16)
    return ulaw_enc, ulaw_dec, alaw_enc, alaw_dec


# Indexed by the int16 sample viewed as uint16 (encode) or by the code byte (decode).
ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE = _tables()


def ulaw_encode(pcm: Pcm) -> np.ndarray:
    """mu-law codes for any shape of int16 samples (vectorised over whole blocks)."""
    return ULAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)]


def ulaw_decode(codes: np.ndarray) -> Pcm:
    """int16 samples for any shape of mu-law codes."""
    return ULAW_DECODE[np.asarray(codes, dtype=np.uint8)]


def alaw_encode(pcm: Pcm) -> np.ndarray:
    """A-law codes for any shape of int16 samples."""
    return ALAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)]


def alaw_decode(codes: np.ndarray) -> Pcm:
    """int16 samples for any shape of A-law codes."""
    return ALAW_DECODE[np.asarray(codes, dtype=np.uint8)]


class TableEncoder:
    """Encodes by table lookup; a whole block of legs on the same table is one lookup."""

    def __init__(self, spec: CodecSpec, table: np.ndarray) -> None:
        self.spec = spec
        self.table = table

    @property
    def block_key(self) -> Hashable:
        return ("table", id(self.table))

    def encode(self, frame: Pcm) -> bytes:
        return self.table[np.asarray(frame, dtype=np.int16).view(np.uint16)].tobytes()

    def encode_many(self, group: Sequence[Encoder], block: Pcm) -> list[bytes]:
        samples = block.shape[1]
        coded = self.table[np.ascontiguousarray(block, dtype=np.int16).view(np.uint16)].tobytes()
        return [coded[i : i + samples] for i in range(0, len(coded), samples)]


class TableDecoder:
    """Decodes by table lookup, with fade-out concealment of lost frames."""

    def __init__(self, spec: CodecSpec, table: np.ndarray) -> None:
        self.spec = spec
        self.table = table
        self.plc = ConcealingDecoder(spec.samples())

    @property
    def block_key(self) -> Hashable:
        return ("table", id(self.table))

    def decode(self, payload: bytes | None) -> Pcm:
        if payload is None:
            return self.plc.conceal()
        return self.plc.remember(self.table[np.frombuffer(payload, dtype=np.uint8)])

    def decode_many(self, group: Sequence[Decoder], payloads: Sequence[bytes | None]) -> Pcm:
        samples = self.spec.samples()
        whole = [i for i, p in enumerate(payloads) if p is not None and len(p) == samples]
        out = np.empty((len(group), samples), dtype=np.int16)
        if whole:
            codes = np.frombuffer(b"".join(payloads[i] for i in whole), dtype=np.uint8)  # type: ignore[misc]
            out[whole] = self.table[codes.reshape(len(whole), samples)]
            for i in whole:
                decoder = group[i]
                assert isinstance(decoder, TableDecoder)  # same block_key, same class
                decoder.plc.remember(out[i])
        if len(whole) < len(group):
            done = set(whole)
            # Lost frames and odd-sized payloads: the one-frame path conceals and fits them.
            for i, payload in enumerate(payloads):
                if i not in done:
                    out[i] = fit(group[i].decode(payload), samples)
        return out


class TableSlotEncoder:
    """A whole block of legs on one table is one lookup, written straight into the payload rows."""

    def __init__(self, spec: CodecSpec, table: np.ndarray) -> None:
        self.spec = spec
        self.table = table
        self.frame_bytes = spec.samples()

    def encode_block(self, block: Pcm) -> npt.NDArray[np.uint8]:
        return self.table[np.asarray(block, dtype=np.int16).view(np.uint16)]  # type: ignore[no-any-return]


class TableSlotDecoder(ConcealingSlotDecoder):
    """A whole lane's frames in one lookup; fade-out concealment per slot."""

    def __init__(self, spec: CodecSpec, table: np.ndarray) -> None:
        super().__init__(spec)
        self.table = table

    def samples_of(self, codes: npt.NDArray[np.uint8]) -> Pcm:
        return self.table[codes]  # type: ignore[no-any-return]
