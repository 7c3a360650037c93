"""Codec registry: one small module per codec, looked up by SDP name and clock rate.

``get_encoder("PCMU")`` / ``get_decoder("opus/48000")`` return fresh stateful objects with
``encode(frame) -> bytes`` and ``decode(payload) -> int16 PCM``, and ``encode_many`` /
``decode_many`` for a block of legs at once (see ``codecs.base``). Codecs without per-leg state
(G.711, L16) also have slot codecs, ``get_slot_codec``: one operation for a whole lane of legs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import partial

from mixer_ext.codecs import pcma, pcmu
from mixer_ext.codecs.base import CodecSpec, Decoder, Encoder, SlotDecoder, SlotEncoder
from mixer_ext.codecs.l16 import L16Decoder, L16Encoder, L16SlotDecoder, L16SlotEncoder, l16_spec

log = logging.getLogger(__name__)

ROOM_RATES = (8000, 16000, 32000, 48000)

_ENCODERS: dict[str, Callable[..., Encoder]] = {pcmu.PCMU.key: pcmu.encoder, pcma.PCMA.key: pcma.encoder}
_DECODERS: dict[str, Callable[[], Decoder]] = {pcmu.PCMU.key: pcmu.decoder, pcma.PCMA.key: pcma.decoder}
SPECS: dict[str, CodecSpec] = {pcmu.PCMU.key: pcmu.PCMU, pcma.PCMA.key: pcma.PCMA}
_SLOT_CODECS: dict[str, tuple[Callable[[], SlotDecoder], Callable[[], SlotEncoder]]] = {
    pcmu.PCMU.key: (pcmu.slot_decoder, pcmu.slot_encoder),
    pcma.PCMA.key: (pcma.slot_decoder, pcma.slot_encoder),
}

for _rate in ROOM_RATES:
    _spec = l16_spec(_rate)
    SPECS[_spec.key] = _spec
    _ENCODERS[_spec.key] = partial(L16Encoder, _spec)
    _DECODERS[_spec.key] = partial(L16Decoder, _spec)
    _SLOT_CODECS[_spec.key] = (partial(L16SlotDecoder, _spec), partial(L16SlotEncoder, _spec))


def _register_optional(module: str, spec_name: str, enc: str, dec: str) -> None:
    # Optional codecs depend on native libraries; a missing one removes the codec, not the mixer.
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        log.warning("codec %s unavailable: %s", module.rsplit(".", 1)[-1], exc)
        return
    spec: CodecSpec = getattr(mod, spec_name)
    SPECS[spec.key] = spec
    _ENCODERS[spec.key] = getattr(mod, enc)
    _DECODERS[spec.key] = getattr(mod, dec)


_register_optional("mixer_ext.codecs.g722", "G722", "G722Encoder", "G722Decoder")
_register_optional("mixer_ext.codecs.opus", "OPUS", "OpusEncoder", "OpusDecoder")


def _key(name: str) -> str:
    name = name.lower()
    if "/" in name:
        return "/".join(name.split("/")[:2])
    matches = [k for k in SPECS if k.split("/")[0] == name]
    if len(matches) != 1:
        raise KeyError(f"codec {name!r} needs a clock rate" if matches else f"unknown codec {name!r}")
    return matches[0]


def get_spec(name: str) -> CodecSpec:
    """The CodecSpec for ``name`` (``PCMU``, ``G722``, ``opus/48000``, ``L16/16000``); KeyError if unknown."""
    key = _key(name)
    if key not in SPECS:
        raise KeyError(f"unknown codec {name!r}")
    return SPECS[key]


def get_encoder(name: str, complexity: int | None = None) -> Encoder:
    """A fresh encoder for ``name`` (``complexity`` 0-10 matters only to codecs that have one: Opus)."""
    return _ENCODERS[get_spec(name).key](complexity=complexity)


def get_decoder(name: str) -> Decoder:
    """A fresh decoder for ``name``."""
    return _DECODERS[get_spec(name).key]()


def get_slot_codec(name: str) -> tuple[SlotDecoder, SlotEncoder] | None:
    """A fresh slot decoder and encoder for ``name``, or None for a codec with per-leg state (Opus, G.722)."""
    makers = _SLOT_CODECS.get(get_spec(name).key)
    return None if makers is None else (makers[0](), makers[1]())


def available() -> list[CodecSpec]:
    """Every codec this mixer can use right now (Opus only when libopus is installed)."""
    return list(SPECS.values())


__all__ = [
    "ROOM_RATES",
    "SPECS",
    "CodecSpec",
    "Decoder",
    "Encoder",
    "available",
    "get_decoder",
    "get_encoder",
    "get_slot_codec",
    "get_spec",
]
