"""PCMU (G.711 mu-law, RTP payload type 0): a numpy table lookup per frame."""

from __future__ import annotations

from mixer_ext.codecs.base import CodecSpec
from mixer_ext.codecs.g711 import (
    ULAW_DECODE,
    ULAW_ENCODE,
    TableDecoder,
    TableEncoder,
    TableSlotDecoder,
    TableSlotEncoder,
)

PCMU = CodecSpec("PCMU", 8000, 8000, static_pt=0)


def encoder(complexity: int | None = None) -> TableEncoder:
    # A table lookup has no complexity to choose: the option is accepted and ignored.
    return TableEncoder(PCMU, ULAW_ENCODE)


def decoder() -> TableDecoder:
    return TableDecoder(PCMU, ULAW_DECODE)


def slot_encoder() -> TableSlotEncoder:
    return TableSlotEncoder(PCMU, ULAW_ENCODE)


def slot_decoder() -> TableSlotDecoder:
    return TableSlotDecoder(PCMU, ULAW_DECODE)
