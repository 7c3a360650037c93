"""PCMA (G.711 A-law, RTP payload type 8): a numpy table lookup per frame."""

from __future__ import annotations

from mixer_ext.codecs.base import CodecSpec
from mixer_ext.codecs.g711 import (
    ALAW_DECODE,
    ALAW_ENCODE,
    TableDecoder,
    TableEncoder,
    TableSlotDecoder,
    TableSlotEncoder,
)

PCMA = CodecSpec("PCMA", 8000, 8000, static_pt=8)


def encoder(complexity: int | None = None) -> TableEncoder:
    # A table lookup has no complexity to choose: the option is accepted and ignored.
    return TableEncoder(PCMA, ALAW_ENCODE)


def decoder() -> TableDecoder:
    return TableDecoder(PCMA, ALAW_DECODE)


def slot_encoder() -> TableSlotEncoder:
    return TableSlotEncoder(PCMA, ALAW_ENCODE)


def slot_decoder() -> TableSlotDecoder:
    return TableSlotDecoder(PCMA, ALAW_DECODE)
