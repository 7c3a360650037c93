"""The media-gap measures of issue 13, on synthetic RTP arrivals, lo frames and audio (no FreeSWITCH needed)."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from rtp_gaps import Arrival, largest_gap, rtp_in_frame, silence_gap, sources, tone_level_db

NODE, SPARE, PHONE = "127.0.1.2:16384", "127.0.1.3:16500", "127.0.0.1:40000"


def stream(start: float, count: int, source: str = NODE, ssrc: int = 0x1111, seq: int = 0) -> list[Arrival]:
    """``count`` packets 20 ms apart from ``source``, as a G.711 call sends them."""
    return [Arrival(start + i * 0.02, source, PHONE, seq + i, (seq + i) * 160, ssrc) for i in range(count)]


def test_a_steady_20ms_stream_has_a_20ms_largest_gap_and_one_source() -> None:
    arrivals = stream(100.0, 250)
    gap, _ = largest_gap(arrivals)
    assert gap == pytest.approx(0.02)
    assert [(s.source, s.packets) for s in sources(arrivals)] == [(NODE, 250)]


def test_a_700ms_hole_is_measured_where_it_began() -> None:
    before = stream(100.0, 100)  # the last packet at 101.98
    after = stream(101.98 + 0.7, 100, seq=100)
    gap, at = largest_gap(before + after)
    assert gap == pytest.approx(0.7) and at == pytest.approx(101.98)


def test_a_takeover_shows_as_a_new_source_after_the_gap() -> None:
    arrivals = stream(100.0, 50) + stream(101.5, 50, source=SPARE, ssrc=0x2222, seq=7000)
    runs = sources(arrivals)
    assert [(r.source, r.ssrc, r.packets) for r in runs] == [(NODE, 0x1111, 50), (SPARE, 0x2222, 50)]
    assert runs[1].first - runs[0].last == pytest.approx(largest_gap(arrivals)[0])
    # the same address taken over by a spare still shows: a new SSRC starts a new run
    assert len(sources(stream(100.0, 10) + stream(101.0, 10, ssrc=0x3333))) == 2


def test_the_window_ignores_earlier_arrivals_and_counts_media_that_never_came_back() -> None:
    ringing_then_call = stream(100.0, 5) + stream(103.0, 100)  # a 3 s wait before the call's media
    assert largest_gap(ringing_then_call, after=103.0)[0] == pytest.approx(0.02)
    assert sources(ringing_then_call, after=103.0)[0].packets == 100
    lost = stream(100.0, 50)  # the last packet at 100.98, the measurement ends at 110
    gap, at = largest_gap(lost, after=100.0, until=110.0)
    assert gap == pytest.approx(110.0 - 100.98) and at == pytest.approx(100.98)
    assert largest_gap([], after=5.0, until=6.5) == (1.5, 5.0)
    assert largest_gap([]) == (0.0, None)


def frame(payload: bytes, proto: int = socket.IPPROTO_UDP, fragment: int = 0) -> bytes:
    """An lo frame from the node to the phone: the zero Ethernet header, IPv4, UDP, then ``payload``."""
    source, destination = socket.inet_aton("127.0.1.2"), socket.inet_aton("127.0.0.1")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, fragment, 64, proto, 0, source, destination)
    udp = struct.pack("!HHHH", 16384, 40000, 8 + len(payload), 0)
    return b"\x00" * 12 + b"\x08\x00" + ip + udp + payload


def rtp(seq: int, timestamp: int, ssrc: int, payload_type: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, seq, timestamp, ssrc) + b"\xff" * 160


def test_only_rtp_is_taken_from_lo_frames() -> None:
    assert rtp_in_frame(frame(rtp(7, 1120, 0xABC))) == (NODE, PHONE, 7, 1120, 0xABC)
    assert rtp_in_frame(frame(rtp(7, 1120, 0xABC, payload_type=0x80 | 8))) is not None  # marker bit set
    assert rtp_in_frame(frame(b"SIP/2.0 200 OK\r\n" * 2)) is None
    assert rtp_in_frame(frame(rtp(7, 1120, 0xABC, payload_type=200))) is None  # RTCP sender report
    assert rtp_in_frame(frame(rtp(7, 1120, 0xABC), proto=socket.IPPROTO_TCP)) is None
    assert rtp_in_frame(frame(rtp(7, 1120, 0xABC), fragment=0x2000)) is None  # the first of several fragments
    assert rtp_in_frame(frame(rtp(7, 1120, 0xABC))[:40]) is None  # cut short


def sine(freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_a_20ms_window_tells_the_tone_from_silence_and_another_tone() -> None:
    window = sine(440, 0.02)
    assert tone_level_db(window, 8000, 440) == pytest.approx(20 * np.log10(0.3), abs=1.5)
    assert tone_level_db(np.zeros(160, dtype=np.int16), 8000, 440) == -120.0
    assert tone_level_db(sine(1200, 0.02), 8000, 440) < -40


def test_silence_gap_is_the_longest_stretch_without_the_tone() -> None:
    rate = 16000
    steady = sine(440, 3.0, rate)
    assert silence_gap(steady, rate, 440) == 0.0
    hole = np.concatenate([sine(440, 1.0, rate), np.zeros(int(rate * 0.7), dtype=np.int16), sine(440, 1.0, rate)])
    assert silence_gap(hole, rate, 440) == pytest.approx(0.7, abs=0.04)  # windows straddling the edges vary
    # the wrong party's audio is no more the tone than silence is
    other = np.concatenate([sine(440, 1.0, rate), sine(1200, 0.4, rate), sine(440, 1.0, rate)])
    assert silence_gap(other, rate, 440) == pytest.approx(0.4, abs=0.04)
