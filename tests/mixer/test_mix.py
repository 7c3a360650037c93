"""The numpy kernel: what each participant hears, checked by FFT and against the reference loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_testkit import level_db, tone

from mixer_ext.mix import DEFAULT_TALK_THRESHOLD, mix_frame, mix_reference, room_groups

RATE = 8000
N = 800  # 100 ms: 10 Hz FFT bins
FREQS = [300, 500, 700, 900, 1100, 1300]


def block(freqs: list[float], rate: int = RATE, n: int = N, amplitude: float = 6000) -> np.ndarray:
    return np.stack([tone(f, rate, n, amplitude=amplitude) for f in freqs])


def test_each_participant_hears_everyone_else_but_not_itself() -> None:
    pcm = block(FREQS[:4])
    out = mix_frame(pcm, [0, 0, 0, 0]).out
    for i, own in enumerate(FREQS[:4]):
        assert level_db(out[i], RATE, own) < -70
        for other in FREQS[:4]:
            if other != own:
                assert level_db(out[i], RATE, other) > -20


def test_rooms_in_one_block_do_not_leak_into_each_other() -> None:
    pcm = block(FREQS)
    out = mix_frame(pcm, [0, 0, 0, 1, 1, 2]).out
    assert level_db(out[0], RATE, FREQS[1]) > -20
    assert level_db(out[0], RATE, FREQS[3]) < -70
    assert level_db(out[3], RATE, FREQS[4]) > -20
    assert level_db(out[3], RATE, FREQS[0]) < -70
    assert not out[5].any()  # alone in its room: hears silence


def test_kernel_matches_the_per_participant_reference_loop() -> None:
    rng = np.random.default_rng(3)
    pcm = rng.integers(-20000, 20000, (40, 160)).astype(np.int16)
    rooms = np.sort(rng.integers(0, 7, 40))
    gain = rng.uniform(0, 2, 40).astype(np.float32)
    muted = rng.random(40) < 0.2
    deaf = rng.random(40) < 0.2
    got = mix_frame(pcm, rooms, gain, muted, deaf).out.astype(np.int32)
    want = mix_reference(pcm, rooms, gain, muted, deaf).astype(np.int32)
    assert np.abs(got - want).max() <= 1  # float summation order only


def test_muted_participant_is_heard_by_nobody_but_still_hears() -> None:
    pcm = block(FREQS[:3])
    out = mix_frame(pcm, [0, 0, 0], muted=[True, False, False]).out
    assert level_db(out[1], RATE, FREQS[0]) < -70
    assert level_db(out[2], RATE, FREQS[0]) < -70
    assert level_db(out[0], RATE, FREQS[1]) > -20


def test_deaf_participant_hears_nothing_but_is_heard() -> None:
    pcm = block(FREQS[:3])
    out = mix_frame(pcm, [0, 0, 0], deaf=[False, True, False]).out
    assert not out[1].any()
    assert level_db(out[0], RATE, FREQS[1]) > -20


def test_gain_scales_what_others_hear() -> None:
    pcm = block(FREQS[:3])
    plain = mix_frame(pcm, [0, 0, 0]).out
    quiet = mix_frame(pcm, [0, 0, 0], gain=[0.5, 1, 1]).out
    drop = level_db(plain[1], RATE, FREQS[0]) - level_db(quiet[1], RATE, FREQS[0])
    assert drop == pytest.approx(6.02, abs=0.2)
    assert level_db(quiet[1], RATE, FREQS[2]) == pytest.approx(level_db(plain[1], RATE, FREQS[2]), abs=0.1)


def test_loud_rooms_saturate_instead_of_wrapping() -> None:
    loud = np.full((4, 160), 30000, dtype=np.int16)
    out = mix_frame(loud, [0, 0, 0, 0]).out
    assert (out == 32767).all()  # 90000 clipped, never wrapped to a negative value
    out = mix_frame(-loud, [0, 0, 0, 0]).out
    assert (out == -32768).all()


def test_talker_detection_follows_energy() -> None:
    pcm = np.stack([tone(400, RATE, 160), np.zeros(160, np.int16), tone(600, RATE, 160, amplitude=20)])
    result = mix_frame(pcm, [0, 0, 0])
    assert result.talking.tolist() == [True, False, False]
    assert result.energy[0] > DEFAULT_TALK_THRESHOLD > result.energy[2]
    # Smoothing: a talker who falls silent stays "talking" for a frame or two, not forever.
    silent = np.zeros_like(pcm)
    energy = result.energy
    states = []
    for _ in range(30):
        r = mix_frame(silent, [0, 0, 0], prev_energy=energy)
        energy = r.energy
        states.append(bool(r.talking[0]))
    assert states[0] is True and states[-1] is False


def test_loudest_k_mixes_only_the_k_loudest_talkers() -> None:
    freqs = [200 + 100 * i for i in range(12)]
    amps = [500 + 400 * i for i in range(12)]  # the last three are the loudest
    pcm = np.stack([tone(f, RATE, N, amplitude=a) for f, a in zip(freqs, amps, strict=True)])
    result = mix_frame(pcm, [0] * 12, k=3)
    assert result.mixed.tolist() == [False] * 9 + [True] * 3
    quiet_listener = result.out[0]
    for f in freqs[9:]:
        assert level_db(quiet_listener, RATE, f) > -30
    for f in freqs[1:9]:
        assert level_db(quiet_listener, RATE, f) < -70
    loud_listener = result.out[11]  # one of the K: hears the other two loud ones, not itself
    assert level_db(loud_listener, RATE, freqs[10]) > -30
    assert level_db(loud_listener, RATE, freqs[11]) < -70


def test_loudest_k_never_picks_muted_or_silent_rows() -> None:
    pcm = block([300, 500, 700, 900])
    pcm[3] = 0
    result = mix_frame(pcm, [0, 0, 0, 0], muted=[True, False, False, False], k=3)
    assert result.mixed.tolist() == [False, True, True, False]


def test_rows_must_be_grouped_by_room() -> None:
    with pytest.raises(ValueError):
        mix_frame(block(FREQS[:3]), [1, 0, 1])
    starts, group = room_groups([4, 4, 7, 9, 9])
    assert starts.tolist() == [0, 2, 3] and group.tolist() == [0, 0, 1, 2, 2]


def test_empty_block_is_fine() -> None:
    assert mix_frame(np.zeros((0, 160), np.int16), []).out.shape == (0, 160)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=8),
    seed=st.integers(0, 2**32 - 1),
    samples=st.sampled_from([160, 320, 960]),
)
def test_kernel_equals_the_reference_for_any_room_layout(sizes: list[int], seed: int, samples: int) -> None:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    rooms = np.repeat(np.arange(len(sizes)) * 3, sizes)  # room ids need not be dense
    pcm = rng.integers(-32768, 32768, (n, samples)).astype(np.int16)
    gain = rng.uniform(0, 3, n).astype(np.float32)
    muted, deaf = rng.random(n) < 0.3, rng.random(n) < 0.3
    got = mix_frame(pcm, rooms, gain, muted, deaf).out.astype(np.int32)
    want = mix_reference(pcm, rooms, gain, muted, deaf).astype(np.int32)
    assert np.abs(got - want).max(initial=0) <= 2  # float32 summation order only
