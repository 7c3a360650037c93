"""Codec round trips with real tones, G.711 tables against the stdlib reference, and resampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from mixer_testkit import level_db, tone

from mixer_ext.codecs import available, get_decoder, get_encoder, get_slot_codec, get_spec
from mixer_ext.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from mixer_ext.codecs.resample import FrameResampler

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the stdlib's G.711, a reference independent of our tables (gone in 3.13)


def roundtrip(name: str, freq: float, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
    spec = get_spec(name)
    enc, dec = get_encoder(name), get_decoder(name)
    n = spec.samples()
    x = tone(freq, spec.sample_rate, int(seconds * spec.sample_rate), amplitude=8000)
    y = np.concatenate([dec.decode(enc.encode(x[i : i + n])) for i in range(0, x.size, n)])
    return x, y, spec.sample_rate


def aligned_snr(x: np.ndarray, y: np.ndarray, max_delay: int = 600) -> float:
    """Waveform SNR after removing the codec's delay (found by cross-correlation)."""
    a = x[2000:-max_delay].astype(np.float64)
    best = max(range(max_delay), key=lambda d: float(np.dot(a, y[2000 + d : 2000 + d + a.size])))
    err = a - y[2000 + best : 2000 + best + a.size]
    return float(10 * np.log10((a**2).sum() / max((err**2).sum(), 1e-9)))


def test_g711_tables_match_the_stdlib_reference_for_every_sample() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    codes = np.arange(256, dtype=np.uint8)
    raw = samples.tobytes()
    assert np.array_equal(ulaw_encode(samples), np.frombuffer(audioop.lin2ulaw(raw, 2), np.uint8))
    assert np.array_equal(alaw_encode(samples), np.frombuffer(audioop.lin2alaw(raw, 2), np.uint8))
    assert np.array_equal(ulaw_decode(codes), np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), np.int16))
    assert np.array_equal(alaw_decode(codes), np.frombuffer(audioop.alaw2lin(codes.tobytes(), 2), np.int16))


# Stated round-trip quality for a -12 dBFS 1 kHz tone (G.711 is ~38 dB in theory; G.722 at 64k better).
@pytest.mark.parametrize(("name", "min_snr"), [("PCMU", 33), ("PCMA", 33), ("G722", 40)])
def test_waveform_codecs_round_trip_within_stated_snr(name: str, min_snr: float) -> None:
    x, y, _ = roundtrip(name, 1000)
    assert aligned_snr(x, y) >= min_snr


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_l16_is_lossless(rate: int) -> None:
    x, y, _ = roundtrip(f"L16/{rate}", 1000)
    assert np.array_equal(x, y)


def test_opus_keeps_the_tone_and_adds_little_else() -> None:
    # Opus is perceptual: judge by spectrum, not waveform. The tone must be within 1 dB and
    # a neighbouring frequency 30 dB below it.
    x, y, rate = roundtrip("opus/48000", 1000)
    tail = y[rate // 2 :]
    assert abs(level_db(tail, rate, 1000) - level_db(x[rate // 2 :], rate, 1000)) < 1.0
    assert level_db(tail, rate, 1000) - level_db(tail, rate, 1700) > 30


def test_g722_carries_7khz_and_g711_cannot() -> None:
    _, wide, rate = roundtrip("G722", 7000)
    assert level_db(wide[4000:], rate, 7000) > -20
    assert get_spec("PCMU").sample_rate / 2 < 7000  # nothing above 4 kHz exists in G.711


def test_registry_lookups() -> None:
    names = {s.key for s in available()}
    assert {"pcmu/8000", "pcma/8000", "g722/8000", "l16/16000", "l16/48000"} <= names
    assert get_spec("g722").sample_rate == 16000 and get_spec("G722").clock_rate == 8000
    with pytest.raises(KeyError):
        get_encoder("GSM")
    with pytest.raises(KeyError):
        get_spec("L16")  # ambiguous without a rate


def test_lost_frames_are_concealed_then_faded_to_silence() -> None:
    dec = get_decoder("PCMU")
    enc = get_encoder("PCMU")
    frame = tone(500, 8000, 160)
    dec.decode(enc.encode(frame))
    first = dec.decode(None)
    assert level_db(first, 8000, 500) > level_db(frame, 8000, 500) - 7
    for _ in range(5):
        last = dec.decode(None)
    assert not last.any()


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (48000, 16000), (16000, 48000)])
def test_frame_resampler_keeps_frame_size_and_tone(src: int, dst: int) -> None:
    r = FrameResampler(src, dst)
    x = tone(1000, src, src)
    out = np.concatenate([r.process(x[i : i + src // 50]) for i in range(0, src, src // 50)])
    assert out.size == dst
    assert level_db(out[dst // 4 :], dst, 1000) == pytest.approx(level_db(x, src, 1000), abs=0.5)


def test_resampling_to_8khz_removes_a_7khz_tone() -> None:
    r = FrameResampler(16000, 8000)
    x = tone(7000, 16000, 16000)
    out = np.concatenate([r.process(x[i : i + 320]) for i in range(0, 16000, 320)])
    # 7 kHz cannot exist at 8 kHz; its alias would land on 1 kHz.
    assert level_db(out[2000:], 8000, 1000) < -70


def test_opus_conceals_a_lost_frame_with_its_own_plc() -> None:
    enc, dec = get_encoder("opus"), get_decoder("opus")
    x = tone(440, 48000, 960 * 10)
    for i in range(10):
        dec.decode(enc.encode(x[i * 960 : (i + 1) * 960]))
    concealed = dec.decode(None)
    assert concealed.size == 960 and level_db(concealed, 48000, 440) > -40


@pytest.mark.parametrize("name", ["PCMU", "PCMA", "L16/8000", "L16/16000", "L16/48000"])
def test_slot_codecs_code_a_lane_as_the_per_leg_codecs_code_each_leg(name: str) -> None:
    slot_codec = get_slot_codec(name)
    assert slot_codec is not None
    slot_decoder, slot_encoder = slot_codec
    spec = get_spec(name)
    n = spec.samples()
    frames = np.stack([tone(300 + 100 * leg, spec.sample_rate, n, amplitude=6000) for leg in range(4)])
    encoders = [get_encoder(name) for _ in range(4)]
    decoders = [get_decoder(name) for _ in range(4)]
    coded = slot_encoder.encode_block(frames)
    assert [row.tobytes() for row in coded] == [e.encode(f) for e, f in zip(encoders, frames, strict=True)]
    slot_decoder.grow(8)
    slots = np.array([5, 1, 7, 2], dtype=np.intp)  # a lane's slots come in any order
    lengths = np.full(4, coded.shape[1], dtype=np.intp)
    pcm = slot_decoder.decode_slots(slots, coded, lengths)
    assert np.array_equal(pcm, np.stack([d.decode(c.tobytes()) for d, c in zip(decoders, coded, strict=True)]))
    # Lost frames: the same fade to silence, slot by slot, as each leg's own decoder.
    for _ in range(5):
        concealed = slot_decoder.conceal_slots(slots[:2])
        assert np.array_equal(concealed, np.stack([d.decode(None) for d in decoders[:2]]))
    # A short frame: what the sender did not send is silence.
    short = slot_decoder.decode_slots(slots[:1], coded[:1], np.array([coded.shape[1] // 2]))
    assert np.array_equal(short[0, : n // 2], pcm[0, : n // 2]) and not short[0, n // 2 :].any()


def test_codecs_with_per_leg_state_have_no_slot_codec() -> None:
    assert get_slot_codec("opus") is None and get_slot_codec("G722") is None
