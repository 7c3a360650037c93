"""RTP parsing, RFC 4733 events, the jitter buffer and the drift-free media clock."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer_ext.clock import MediaClock, next_tick
from mixer_ext.jitter import PRESENT_FRAME, JitterBuffer, JitterRing, Verdict
from mixer_ext.rtp import (
    RtpError,
    RtpPacket,
    TelephoneEvent,
    build_event,
    build_rtp,
    parse_event,
    parse_rtp,
    seq_distance,
)


def test_build_and_parse_round_trip() -> None:
    data = build_rtp(0, 65535, 2**32 - 1, 0xDEADBEEF, b"\x01\x02", marker=True)
    assert parse_rtp(data) == RtpPacket(0, 65535, 2**32 - 1, 0xDEADBEEF, b"\x01\x02", True)


def test_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 8, 7, 160, 42)
    csrcs = struct.pack("!II", 1, 2)
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    data = header + csrcs + ext + b"abc" + b"\x00\x00\x03"
    packet = parse_rtp(data)
    assert (packet.payload_type, packet.sequence, packet.payload) == (8, 7, b"abc")


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x80\x00",
        b"hello world, not rtp",
        bytes(range(40)),
        struct.pack("!BBHII", 0x80, 200, 1, 1, 1),  # RTCP sender report on the RTP port
        struct.pack("!BBHII", 0x8F, 0, 1, 1, 1),  # claims 15 CSRCs it does not have
        struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"\x09",  # padding longer than the packet
    ],
)
def test_garbage_is_rejected_not_crashed_on(garbage: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(garbage)


def test_telephone_event_round_trip() -> None:
    event = TelephoneEvent(event=5, end=True, volume=10, duration=1280)
    assert parse_event(build_event(event)) == event
    with pytest.raises(RtpError):
        parse_event(b"\x05")


def test_sequence_distance_wraps() -> None:
    assert seq_distance(65535, 0) == 1
    assert seq_distance(0, 65535) == -1
    assert seq_distance(100, 90) == -10


def packets(first_seq: int, count: int, ssrc: int = 1, step: int = 160, first_ts: int = 1000) -> list[RtpPacket]:
    return [
        RtpPacket(0, (first_seq + i) & 0xFFFF, (first_ts + i * step) & 0xFFFFFFFF, ssrc, bytes([i % 256]))
        for i in range(count)
    ]


def play(jb: JitterBuffer, stream: list[RtpPacket], per_tick: int = 1) -> list[object]:
    """Push packets in the given order, one per tick, popping one frame per tick; then drain."""
    out: list[object] = []
    for i in range(0, len(stream), per_tick):
        for p in stream[i : i + per_tick]:
            jb.push(p)
        out.append(jb.pop())
    while True:
        item = jb.pop()
        if item is JitterBuffer.EMPTY:
            break
        out.append(item)
    return [o for o in out if o is not JitterBuffer.EMPTY]


def test_jitter_buffer_puts_reordered_packets_back_in_order() -> None:
    stream = packets(65530, 40)  # crosses the sequence wrap too
    shuffled = stream[:]
    for i in range(0, 38, 3):
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    played = play(JitterBuffer(160), shuffled)
    assert played == [p.payload for p in stream]


def test_jitter_buffer_reports_losses_as_none_and_counts_them() -> None:
    stream = packets(10, 100)
    rng = random.Random(5)
    kept = [p for p in stream if rng.random() > 0.05]
    jb = JitterBuffer(160)
    played: list[object] = []
    for p in stream:  # one tick per packet slot; a lost packet just never arrives
        if p in kept:
            jb.push(p)
        played.append(jb.pop())
    played += play(jb, [])
    played = [o for o in played if o is not JitterBuffer.EMPTY]
    first, last = stream.index(kept[0]), stream.index(kept[-1])
    assert played == [p.payload if p in kept else None for p in stream[first : last + 1]]
    assert jb.lost == played.count(None) > 0


def test_absurd_timestamp_is_dropped_and_the_stream_goes_on() -> None:
    jb = JitterBuffer(160)
    good = packets(1, 10)
    for p in good[:5]:
        assert jb.push(p) is Verdict.QUEUED
    bogus = RtpPacket(0, 6, good[5].timestamp + 3_000_000_000 & 0xFFFFFFFF, 1, b"bogus")
    assert jb.push(bogus) is Verdict.ABSURD
    far_seq = RtpPacket(0, 30000, good[5].timestamp, 1, b"far")
    assert jb.push(far_seq) is Verdict.ABSURD
    for p in good[5:]:
        assert jb.push(p) is Verdict.QUEUED
    played = play(jb, [])
    assert played == [p.payload for p in good]
    assert jb.absurd == 2


def test_timestamps_jumping_ahead_after_silence_are_fine() -> None:
    jb = JitterBuffer(160)
    for p in packets(1, 5):
        assert jb.push(p) is Verdict.QUEUED
    # Two minutes on hold: the sequence goes on by one, the timestamp by 120 s.
    after_hold = packets(6, 5, first_ts=1000 + 5 * 160 + 120 * 8000)
    assert [jb.push(p) for p in after_hold] == [Verdict.QUEUED] * 5
    assert jb.absurd == 0


def test_a_stream_that_really_restarts_is_followed() -> None:
    jb = JitterBuffer(160)
    for p in packets(1, 5):
        jb.push(p)
    restarted = packets(40000, 10, first_ts=2_000_000_000)
    verdicts = [jb.push(p) for p in restarted]
    assert Verdict.RESYNC in verdicts
    assert jb.push(packets(7, 1, ssrc=99)[0]) is Verdict.RESYNC  # a new SSRC restarts at once


def test_late_and_duplicate_packets() -> None:
    jb = JitterBuffer(160)
    stream = packets(1, 6)
    for p in stream[:4]:
        jb.push(p)
    jb.pop()
    jb.pop()
    assert jb.push(stream[0]) is Verdict.LATE
    assert jb.push(stream[3]) is Verdict.DUPLICATE


def test_jitter_buffer_bounds_its_depth() -> None:
    jb = JitterBuffer(160, max_depth=5)
    for p in packets(1, 50):
        jb.push(p)
    assert jb.stats().depth == 5
    assert jb.pop() == packets(1, 50)[45].payload  # the oldest frames were dropped, not the newest


def test_clock_deadlines_never_drift_whatever_the_wakeup_jitter() -> None:
    rng = random.Random(1)
    start, period = 1000.0, 0.02
    tick = next_tick(start, period, 0, start)
    for _ in range(5000):
        now = tick.deadline + rng.uniform(0, 0.015)  # woke late, worked a while
        tick = next_tick(start, period, tick.index, now)
    assert tick.index == 5001
    assert tick.deadline == start + 5001 * period


def test_clock_skips_frames_when_far_behind() -> None:
    tick = next_tick(0.0, 0.02, 10, 0.02 * 15.5)
    assert tick.skipped == 4 and tick.index == 15 and tick.deadline == pytest.approx(0.3)


def test_media_clock_sleeps_to_absolute_deadlines() -> None:
    now = [50.0]
    sleeps: list[float] = []

    def sleep(d: float) -> None:
        sleeps.append(d)
        now[0] += d + 0.001  # the OS always oversleeps a little

    clock = MediaClock(0.02, now=lambda: now[0], sleep=sleep)
    for _ in range(100):
        clock.wait()
        now[0] += 0.005  # the frame's work
    assert clock.tick.index == 100
    assert clock.tick.deadline == pytest.approx(50.0 + 100 * 0.02)
    assert clock.overruns == 0
    assert sum(sleeps) == pytest.approx(100 * 0.02 - 99 * 0.006 - 0.0, abs=0.01)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_datagrams_parse_or_raise_rtp_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - 12


@settings(max_examples=200, deadline=None)
@given(seqs=st.lists(st.integers(0, 65535), max_size=60), tss=st.lists(st.integers(0, 2**32 - 1), max_size=60))
def test_jitter_buffer_survives_any_packet_sequence(seqs: list[int], tss: list[int]) -> None:
    jb = JitterBuffer(160)
    for seq, ts in zip(seqs, tss, strict=False):
        jb.push(RtpPacket(0, seq, ts, 1, b"x"))
        jb.pop()
        assert jb.stats().depth <= jb.max_depth


def ring_stream(rng: random.Random, ticks: int) -> list[list[RtpPacket]]:
    """One leg's packets tick by tick: mostly one in order, with losses, late pairs, reordering, a
    burst that fills the buffer and a restart."""
    seq, ts, ssrc = rng.randrange(65536), rng.randrange(2**32), 7
    out: list[list[RtpPacket]] = []
    held: list[RtpPacket] = []
    for tick in range(ticks):
        if tick == ticks // 2:
            ssrc, seq = 8, rng.randrange(65536)  # the sender restarts its stream
        now = [*held]
        held = []
        # Mostly one a tick; for a while three a tick (a sender catching up), which fills the buffer.
        for _ in range(3 if 40 <= tick < 52 else rng.choice([1, 1, 1, 1, 1, 2, 0])):
            seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
            packet = RtpPacket(0, seq, ts, ssrc, bytes([seq & 0xFF]) * 160)
            roll = rng.random()
            if roll < 0.05:
                continue  # lost
            if roll < 0.1:
                held.append(packet)  # late: arrives next tick, after its successor
                continue
            now.append(packet)
        out.append(now)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_filed_at_once_plays_out_as_packets_filed_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    legs = [ring_stream(rng, 200) for _ in range(5)]
    one_by_one, batched = JitterRing(160, 160, 5), JitterRing(160, 160, 5)
    slots = np.arange(5, dtype=np.intp)
    for tick in range(200):
        # Legs interleave at random; each leg's own packets keep the order they were sent in.
        queues = [list(legs[slot][tick]) for slot in range(5)]
        arrived = []
        while any(queues):
            slot = rng.choice([s for s in range(5) if queues[s]])
            arrived.append((slot, queues[slot].pop(0)))
        for slot, p in arrived:
            one_by_one.push(slot, p.sequence, p.timestamp, p.ssrc, p.payload)
        if arrived:
            fields = [(s, p.sequence, p.timestamp, p.ssrc) for s, p in arrived]
            columns = [np.array(c, dtype=np.int64) for c in zip(*fields, strict=True)]
            payloads = np.frombuffer(b"".join(p.payload for _, p in arrived), dtype=np.uint8).reshape(len(arrived), 160)
            lengths = np.full(len(arrived), 160, dtype=np.intp)
            filed = batched.push_batch(columns[0].astype(np.intp), *columns[1:], payloads, lengths)
            for (slot, p), done in zip(arrived, filed.tolist(), strict=True):
                if not done:
                    batched.push(slot, p.sequence, p.timestamp, p.ssrc, p.payload)
        want, got = one_by_one.pop_many(slots), batched.pop_many(slots)
        assert want[0].tolist() == got[0].tolist()
        for slot in np.flatnonzero(want[0] == PRESENT_FRAME).tolist():
            assert one_by_one.payload(slot, int(want[1][slot])) == batched.payload(slot, int(got[1][slot]))
    for counter in ("received", "lost", "late", "absurd"):
        assert getattr(one_by_one, counter).tolist() == getattr(batched, counter).tolist()
