"""End to end over loopback: test phones call the mixer over SIP, play tones as RTP, and we listen.

Every phone plays its own tone; what each one receives is decoded and checked by FFT.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from mixer_testkit import DTMF, LOCAL, Phone, Swarm, level_db

from mixer_ext.engine import Mixer
from mixer_ext.rtp import TelephoneEvent, build_event, build_rtp, parse_event, seq_distance
from mixer_ext.sip import parse_sip

HEARD = -35.0  # a 6000-amplitude tone arrives at about -15 dBFS; anything near it is "heard"
SILENT = -60.0


def ssrc_of(phone: Phone) -> int:
    """The one SSRC of everything the phone received from the mixer (asserts there is one)."""
    (ssrc,) = phone.ssrcs
    return ssrc


def join(mixer: Mixer, swarm: Swarm, room: str, specs: list[tuple[float, str]], **kw: object) -> list[Phone]:
    phones = [swarm.add(freq, codec, **kw) for freq, codec in specs]
    for p in phones:
        status, _ = p.invite((LOCAL, mixer.sip_port), room)
        assert status == 200
    return phones


def assert_hears_others_not_self(phones: list[Phone], muted: frozenset[Phone] = frozenset()) -> None:
    for p in phones:
        pcm = p.heard()
        assert pcm.size > p.rate * 4 // 10, f"{p.codec} phone received too little audio"
        own = level_db(pcm, p.rate, p.freq)
        for other in phones:
            if other is not p and other not in muted:
                got = level_db(pcm, p.rate, other.freq)
                assert got > HEARD, f"{p.freq} Hz phone ({p.codec}) hears {other.freq} Hz at {got:.1f} dB"
                # Its own tone is at most codec noise: 40 dB under what it hears of the others.
                assert own < got - 40, f"{p.freq} Hz phone hears itself at {own:.1f} dB"


def test_narrowband_room_everyone_hears_everyone_else(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("nb", 8000)
    phones = join(mixer, swarm, "nb", [(400, "PCMU"), (650, "PCMU"), (900, "PCMA"), (1300, "L16/8000")])
    swarm.run(1.2)
    assert_hears_others_not_self(phones)


def test_hd_room_mixes_every_codec_and_resamples_the_narrowband_caller(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("hd", 16000)
    phones = join(mixer, swarm, "hd", [(500, "G722"), (1500, "L16/16000"), (2500, "opus"), (3100, "PCMU")])
    assert [p.codec for p in phones] == ["G722/8000", "L16/16000", "opus/48000", "PCMU/8000"]
    assert mixer.describe_room("hd")["rate"] == 16000  # the narrowband caller did not pull the room down
    swarm.run(1.2)
    assert_hears_others_not_self(phones)


def test_7khz_survives_a_16khz_room_and_is_absent_from_an_8khz_one(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("wide", 16000)
    mixer.create_room("narrow", 8000)
    # Wideband phones in both rooms: only the room rate differs.
    _, w_listen = join(mixer, swarm, "wide", [(7000, "L16/16000"), (300, "L16/16000")])
    n_talk, n_listen = join(mixer, swarm, "narrow", [(7000, "L16/16000"), (300, "L16/16000")])
    swarm.run(1.2)
    assert level_db(w_listen.heard(), 16000, 7000) > HEARD
    assert level_db(n_listen.heard(), 16000, 7000) < SILENT
    assert level_db(n_talk.heard(), 16000, 300) > HEARD  # the narrow room works, it just stops at 4 kHz


def test_mute_and_deaf_through_the_engine(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("md", 8000)
    a, b, c = join(mixer, swarm, "md", [(400, "PCMU"), (700, "PCMU"), (1100, "PCMU")])
    ids = {p["call_id"]: p["id"] for p in mixer.describe_room("md")["participants"]}
    mixer.set_flags("md", ids[a.call_id], muted=True)
    mixer.set_flags("md", ids[b.call_id], deaf=True)
    swarm.run(1.2)
    pcm_a, pcm_b, pcm_c = a.heard(), b.heard(), c.heard()
    assert level_db(pcm_c, 8000, 400) < SILENT  # nobody hears the muted one
    assert level_db(pcm_c, 8000, 700) > HEARD  # the deaf one is still heard
    assert level_db(pcm_a, 8000, 700) > HEARD and level_db(pcm_a, 8000, 1100) > HEARD  # muted still hears
    assert level_db(pcm_b, 8000, 1100) < SILENT and level_db(pcm_b, 8000, 400) < SILENT  # deaf hears nothing
    assert len(b.received) > 40  # ...but still gets a steady (silent) stream


def test_big_room_with_loudest_k_mixes_only_the_loud_talkers(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("big", 16000, loudest_k=2)
    loud = [swarm.add(f, "L16/16000", amplitude=8000) for f in (500, 900)]
    quiet = [swarm.add(f, "L16/16000", amplitude=700) for f in (1300, 1700, 2100, 2500)]
    for p in loud + quiet:
        assert p.invite((LOCAL, mixer.sip_port), "big")[0] == 200
    swarm.run(1.2)
    listener = quiet[0].heard()
    assert level_db(listener, 16000, 500) > HEARD and level_db(listener, 16000, 900) > HEARD
    for p in quiet[1:]:
        # Mixed, a 700-amplitude tone would arrive at about -33 dBFS; left out, it is not there.
        assert level_db(listener, 16000, p.freq) < SILENT
    assert level_db(loud[0].heard(), 16000, 900) > HEARD  # the loud ones hear each other


def test_loss_and_reordering_do_not_break_the_stream(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("lossy", 16000)
    talker = swarm.add(600, "G722", loss=0.05, reorder=0.05)
    listener = swarm.add(1500, "G722")
    for p in (talker, listener):
        assert p.invite((LOCAL, mixer.sip_port), "lossy")[0] == 200
    swarm.run(2.0)
    pcm = listener.heard()
    # The tone is there in every 100 ms stretch: concealment bridged every gap.
    window = 1600
    levels = [level_db(pcm[i : i + window], 16000, 600) for i in range(0, pcm.size - window, window)]
    assert len(levels) >= 12 and min(levels) > HEARD - 10
    stats = next(p for p in mixer.describe_room("lossy")["participants"] if p["call_id"] == talker.call_id)
    assert stats["packets"]["lost"] > 0  # losses were seen and concealed, not ignored
    assert stats["packets"]["late"] <= 2  # swapped neighbours were reordered, not dropped


def test_bad_rtp_is_counted_and_other_rooms_carry_on(
    mixer: Mixer, swarm: Swarm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mixer_ext")
    mixer.create_room("victim", 8000)
    mixer.create_room("bystander", 8000)
    bad = join(mixer, swarm, "victim", [(500, "PCMU"), (800, "PCMU")])
    good = join(mixer, swarm, "bystander", [(450, "PCMU"), (950, "PCMU")])
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp = (LOCAL, mixer.rtp_port)
    try:
        stranger.bind((LOCAL, 0))
        stranger.sendto(b"\x00garbage from nowhere", rtp)
        for _ in range(20):
            bad[0].rtp.sendto(b"\xde\xad\xbe\xef not rtp at all", rtp)
            bad[0].rtp.sendto(build_rtp(77, 1, 1, bad[0].ssrc, b"\x00" * 160), rtp)  # unknown payload type
            absurd_ts = bad[0].ts ^ 0x80000000
            bad[0].rtp.sendto(build_rtp(0, bad[0].seq, absurd_ts, bad[0].ssrc, b"\xff" * 160), rtp)
        mixer.sip_sock.sendto(b"", (LOCAL, mixer.sip_port))
        stranger.sendto(b"\x80\x00 SIP? no", (LOCAL, mixer.sip_port))
        swarm.run(1.2)
    finally:
        stranger.close()
    assert_hears_others_not_self(good)
    assert level_db(bad[1].heard(), 8000, 500) > HEARD  # even the victim room still works
    bad_counts = {
        s.labels["reason"]: s.value
        for m in mixer.metrics.bad_packets.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert bad_counts["not_rtp"] >= 20
    assert bad_counts["unknown_payload_type"] >= 20
    assert bad_counts["absurd_sequence_or_timestamp"] >= 1
    assert bad_counts["unknown_source"] >= 1
    assert mixer.uas.counters["garbage"] >= 1
    assert mixer.alive()
    logged = caplog.text
    for reason in ("not_rtp", "unknown_payload_type", "absurd_sequence_or_timestamp", "unknown_source"):
        assert 1 <= logged.count(f": {reason} (counted") < 20  # logged, but not once per packet
    assert "dropped non-SIP datagram" in logged


def test_dtmf_events_pass_through_to_the_others(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("dtmf", 8000)
    a, b = join(mixer, swarm, "dtmf", [(400, "PCMU"), (700, "PCMU")], dtmf=True)
    swarm.run(0.2)
    for i, end in enumerate([False, False, True, True, True]):
        ev = build_event(TelephoneEvent(7, end, 10, 160 * (i + 1)))
        a.rtp.sendto(build_rtp(DTMF.payload_type, a.seq + 1 + i, a.ts, a.ssrc, ev, marker=i == 0), a.target)
    time.sleep(0.1)
    swarm.run(0.2)
    events = [(ts, parse_event(pl)) for pt, _, ts, pl in b.received if pt == DTMF.payload_type]
    assert [e.event for _, e in events] == [7] * 5 and events[-1][1].end
    assert len({ts for ts, _ in events}) == 1  # one event, one timestamp, as RFC 4733 wants
    assert not [pl for pt, _, _, pl in a.received if pt == DTMF.payload_type]  # not echoed back


def test_dtmf_duration_is_rescaled_between_event_clocks(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("dtmf48", 48000)
    (narrow,) = join(mixer, swarm, "dtmf48", [(400, "PCMU")], dtmf=True)
    (wide,) = join(mixer, swarm, "dtmf48", [(700, "opus")], dtmf=True, dtmf_rate=48000)
    swarm.run(0.2)
    ev = build_event(TelephoneEvent(3, True, 10, 800))  # 100 ms on the 8 kHz clock
    narrow.rtp.sendto(
        build_rtp(DTMF.payload_type, narrow.seq + 1, narrow.ts, narrow.ssrc, ev, marker=True), narrow.target
    )
    time.sleep(0.1)
    swarm.run(0.1)
    (got,) = [parse_event(pl) for pt, _, _, pl in wide.received if pt == DTMF.payload_type]
    assert (got.event, got.end, got.duration) == (3, True, 4800)  # 100 ms on the 48 kHz clock


def test_kick_sends_bye_and_the_others_carry_on(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("k", 8000)
    a, b, c = join(mixer, swarm, "k", [(400, "PCMU"), (700, "PCMU"), (1000, "PCMU")])
    pid = next(p["id"] for p in mixer.describe_room("k")["participants"] if p["call_id"] == c.call_id)
    mixer.kick("k", pid)
    bye = parse_sip(c.sip.recvfrom(65535)[0])
    assert bye.method == "BYE" and bye.get("call-id") == c.call_id
    swarm.run(1.0, [a, b])
    assert len(mixer.describe_room("k")["participants"]) == 2
    assert level_db(a.heard(), 8000, 700) > HEARD


def test_bye_from_the_phone_removes_it(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("b", 8000)
    (a,) = join(mixer, swarm, "b", [(400, "PCMU")])
    to_tag = mixer.uas.legs[a.call_id].local_tag
    port = a.sip.getsockname()[1]
    bye = (
        f"BYE sip:room-b@{LOCAL}:{mixer.sip_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bKb\r\n"
        f"From: <sip:tester@{LOCAL}>;tag={a.tag}\r\nTo: <sip:room-b@{LOCAL}>;tag={to_tag}\r\n"
        f"Call-ID: {a.call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    a.sip.sendto(bye.encode(), (LOCAL, mixer.sip_port))
    assert parse_sip(a.sip.recvfrom(65535)[0]).status == 200
    assert mixer.describe_room("b")["participants"] == []


def test_room_moves_to_another_mixer_with_every_participant(mixer_factory: Callable[[], Mixer], swarm: Swarm) -> None:
    first: Mixer = mixer_factory()
    second: Mixer = mixer_factory()
    first.create_room("move", 16000, loudest_k=5)
    phones = join(first, swarm, "move", [(500, "G722"), (1200, "PCMU"), (2100, "L16/16000")])
    ids = {p["call_id"]: p["id"] for p in first.describe_room("move")["participants"]}
    first.set_flags("move", ids[phones[1].call_id], deaf=True, gain=0.5)
    swarm.run(0.4)
    state = first.export_room("move")
    first.delete_room("move")
    last_before = {p.call_id: (p.received[-1][1], ssrc_of(p)) for p in phones}
    second.import_room(state)
    for p in phones:  # what a re-INVITE from FreeSWITCH would do: point the media at the new mixer
        p.target = (LOCAL, second.rtp_port)
        p.clear()
    swarm.run(1.2)
    for p in phones:
        # Each phone sees the same stream go on: same SSRC, sequence numbers moving forward.
        seq_before, ssrc_before = last_before[p.call_id]
        assert ssrc_of(p) == ssrc_before
        assert 0 < seq_distance(seq_before, p.received[0][1]) < 100
    moved = {p["id"]: p for p in second.describe_room("move")["participants"]}
    assert set(moved) == set(ids.values())
    assert moved[ids[phones[1].call_id]]["deaf"] is True and moved[ids[phones[1].call_id]]["gain"] == 0.5
    assert second.describe_room("move")["loudest_k"] == 5
    assert level_db(phones[0].heard(), 16000, 1200) > HEARD
    assert level_db(phones[0].heard(), 16000, 2100) > HEARD
    assert level_db(phones[2].heard(), 16000, 500) > HEARD
    assert level_db(phones[1].heard(), 8000, 500) < SILENT  # still deaf after the move
    # The new mixer owns the dialogs too: a BYE for a moved call is understood there.
    assert phones[0].call_id in second.uas.legs


@pytest.mark.parametrize(
    ("codec", "rate"),
    [("PCMU", 48000), ("G722", 48000), ("opus", 48000), ("G722", 32000), ("L16/48000", 32000), ("opus", 8000)],
)
def test_two_party_codec_path_keeps_the_tone(mixer: Mixer, swarm: Swarm, codec: str, rate: int) -> None:
    mixer.create_room("pair", rate)
    a, b = join(mixer, swarm, "pair", [(440, codec), (1000, codec)])
    swarm.run(1.2)
    assert_hears_others_not_self([a, b])


def test_phone_behind_nat_is_latched_by_where_its_rtp_comes_from(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("nat", 8000)
    a, b = join(mixer, swarm, "nat", [(400, "PCMU"), (900, "PCMU")])
    # b's SDP claimed a private address; its packets come from 127.0.0.1 on the same port.
    leg = mixer.by_call[b.call_id].leg
    mixer.update(replace(leg, remote_media=("192.0.2.77", leg.remote_media[1])))
    mixer.by_call[b.call_id].jitter.received = 0
    swarm.run(1.0)
    assert mixer.by_call[b.call_id].leg.remote_media == b.rtp_addr
    assert level_db(b.heard(), 8000, 400) > HEARD and level_db(a.heard(), 8000, 900) > HEARD


def test_bad_sip_over_the_wire_gets_its_answer_and_the_room_carries_on(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("sip", 8000)
    a, b = join(mixer, swarm, "sip", [(400, "PCMU"), (900, "PCMU")])
    gsm_only = swarm.add(1200, "GSM")
    assert gsm_only.invite((LOCAL, mixer.sip_port), "sip")[0] == 488
    assert swarm.add(1200, "PCMU").invite((LOCAL, mixer.sip_port), "no-such-room")[0] == 404
    port = a.sip.getsockname()[1]
    a.sip.sendto(
        (
            f"INVITE sip:room-sip@{LOCAL} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bKx\r\n"
            "From: <sip:x@y>;tag=1\r\nTo: <sip:room-sip@y>\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode(),
        (LOCAL, mixer.sip_port),
    )
    assert parse_sip(a.sip.recvfrom(65535)[0]).status == 400  # no Call-ID
    swarm.run(1.2)
    assert len(mixer.describe_room("sip")["participants"]) == 2
    assert_hears_others_not_self([a, b])
