"""One bad leg never stops the media loop; the mixer is not an RTP reflector; /healthz and /metrics tell the truth.

Bad values are refused at the edge (SIP 488, HTTP 400) or contained to the leg that sent them,
while every other room keeps hearing each other.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable

import pytest
from mixer_testkit import LOCAL, OFFERS, Swarm, control_client, level_db
from test_audio import HEARD, SILENT, assert_hears_others_not_self, join

from mixer_ext.engine import Mixer
from mixer_ext.rtp import build_rtp
from mixer_ext.sdp import build_offer
from mixer_ext.sip import parse_sip


def invite_with_sdp(mixer: Mixer, room: str, body: str) -> int:
    """Send one INVITE for room-<room> carrying ``body`` as its SDP; the response's status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCAL, 0))
        sock.settimeout(2)
        port = sock.getsockname()[1]
        msg = (
            f"INVITE sip:room-{room}@{LOCAL}:{mixer.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"From: <sip:evil@{LOCAL}>;tag=e1\r\nTo: <sip:room-{room}@{LOCAL}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 INVITE\r\nContact: <sip:evil@{LOCAL}:{port}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )
        sock.sendto(msg.encode(), (LOCAL, mixer.sip_port))
        return parse_sip(sock.recvfrom(65535)[0]).status


def metric(mixer: Mixer, name: str, **labels: str) -> float:
    """The current value of one series of the mixer's registry (0 when it has none yet)."""
    value = mixer.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.mark.parametrize(
    ("address", "port"),
    [("127.0.0.1", 70000), ("127.0.0.1", 0), ("fs1.example.com", 4000), ("::1", 4000)],
)
def test_unsendable_sdp_address_is_488_and_the_room_carries_on(
    mixer: Mixer, swarm: Swarm, address: str, port: int
) -> None:
    mixer.create_room("edge", 8000)
    phones = join(mixer, swarm, "edge", [(400, "PCMU"), (900, "PCMU")])
    body = build_offer([OFFERS["PCMU"]], LOCAL, 4000).replace(f"IN IP4 {LOCAL}", f"IN IP4 {address}")
    body = body.replace("m=audio 4000", f"m=audio {port}")
    assert invite_with_sdp(mixer, "edge", body) == 488
    swarm.run(1.0)
    assert len(mixer.describe_room("edge")["participants"]) == 2
    assert_hears_others_not_self(phones)


def test_absurd_loudest_k_is_400_and_nothing_is_created(mixer: Mixer, swarm: Swarm) -> None:
    client = control_client(mixer)
    r = client.post("/rooms", json={"room": "huge", "rate": 8000, "loudest_k": 10**22})
    assert r.status_code == 400 and "loudest_k" in r.json["error"]
    assert client.get("/rooms/huge").status_code == 404
    assert client.post("/rooms", json={"room": "c", "rate": 48000, "opus_complexity": 11}).status_code == 400
    mixer.create_room("fine", 8000)
    phones = join(mixer, swarm, "fine", [(400, "PCMU"), (900, "PCMU")])
    swarm.run(1.0)
    assert_hears_others_not_self(phones)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"remote_media": ["127.0.0.1", 99999]},
        {"remote_media": ["nowhere.example", 4000]},
        {"payload_type": 300},
        {"gain": 1e30},
    ],
)
def test_imported_participant_with_unusable_values_is_400_and_leaves_nothing(
    mixer_factory: Callable[[], Mixer], swarm: Swarm, change: dict
) -> None:
    a, b = mixer_factory(), mixer_factory()
    a.create_room("mv", 8000)
    join(a, swarm, "mv", [(400, "PCMU"), (900, "PCMU")])
    state = a.export_room("mv")
    state["participants"][1].update(change)
    r = control_client(b).post("/rooms/import", json=state)
    assert r.status_code == 400 and set(r.json) == {"error", "detail"}
    assert "mv" not in b.rooms
    # The mixer that refused it still mixes: a room of its own is heard.
    b.create_room("other", 8000)
    phones = join(b, swarm, "other", [(500, "PCMU"), (1100, "PCMU")])
    swarm.run(1.0)
    assert_hears_others_not_self(phones)


def test_a_leg_sending_undecodable_payloads_does_not_silence_anyone(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("opus-a", 48000)
    mixer.create_room("opus-b", 48000)
    room_a = join(mixer, swarm, "opus-a", [(440, "opus"), (1000, "opus")])
    room_b = join(mixer, swarm, "opus-b", [(600, "opus"), (1500, "opus")])
    vandal = join(mixer, swarm, "opus-a", [(2000, "opus")])[0]
    seq = vandal.seq
    for i in range(60):  # garbage under the negotiated Opus payload type: libopus refuses it
        seq = (seq + 1) & 0xFFFF
        packet = build_rtp(vandal.payload_type, seq, vandal.ts + 960 * i, vandal.ssrc, os.urandom(60))
        vandal.rtp.sendto(packet, vandal.target)
    swarm.run(1.2, room_a + room_b)
    assert_hears_others_not_self(room_a)
    assert_hears_others_not_self(room_b)
    assert metric(mixer, "fsfarm_mixer_media_errors_total", stage="decode") >= 1
    assert mixer.alive()


def test_healthz_is_503_while_the_media_loop_is_stuck_and_counts_the_late_tick(mixer: Mixer, swarm: Swarm) -> None:
    client = control_client(mixer)
    assert wait_until(lambda: client.get("/healthz").status_code == 200)
    late_before = metric(mixer, "fsfarm_mixer_overruns_total")
    with mixer.media.lock:  # what a tick that never returns looks like from outside
        assert wait_until(lambda: client.get("/healthz").status_code == 503)
        assert client.get("/healthz").json["media_stuck"] is True
    assert wait_until(lambda: client.get("/healthz").status_code == 200)
    assert metric(mixer, "fsfarm_mixer_overruns_total") > late_before


def test_untrusted_sdp_address_gets_no_rtp_until_the_leg_sends_and_then_only_where_it_sends_from(
    swarm: Swarm,
) -> None:
    mixer = Mixer(LOCAL, trusted=["10.1.0.0/16"]).start()  # loopback is not a FreeSWITCH node here
    try:
        mixer.create_room("refl", 8000)
        talker, quiet = join(mixer, swarm, "refl", [(400, "PCMU"), (900, "PCMU")])
        swarm.run(0.6, [talker])
        quiet.drain()
        assert quiet.received == []  # its SDP address is not trusted and it has sent nothing
        swarm.run(1.0)  # now it talks too: its RTP source is where the mix goes
        assert level_db(quiet.heard(), 8000, 400) > HEARD
        assert level_db(talker.heard(), 8000, 900) > HEARD
    finally:
        mixer.stop()


def test_trusted_sdp_address_is_sent_the_mix_before_it_sends_anything(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("fs", 8000)
    talker, listener = join(mixer, swarm, "fs", [(400, "PCMU"), (900, "PCMU")])
    swarm.run(1.0, [talker])
    listener.drain()
    assert level_db(listener.heard(), 8000, 400) > HEARD  # loopback is trusted by default


def test_sdp_pointing_at_a_victim_sends_the_victim_nothing(swarm: Swarm) -> None:
    mixer = Mixer(LOCAL, trusted=["10.1.0.0/16"]).start()
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind((LOCAL, 0))
    victim.setblocking(False)
    try:
        mixer.create_room("v", 8000)
        talker = join(mixer, swarm, "v", [(400, "PCMU")])[0]
        body = build_offer([OFFERS["PCMU"]], LOCAL, victim.getsockname()[1])
        assert invite_with_sdp(mixer, "v", body) == 200
        swarm.run(0.6, [talker])
        with pytest.raises(BlockingIOError):
            victim.recv(2048)
    finally:
        victim.close()
        mixer.stop()


@pytest.mark.parametrize(("codec", "rate"), [("PCMU", 8000), ("opus", 48000), ("L16/16000", 16000)])
def test_listeners_outside_the_loudest_k_share_one_encode_and_hear_the_talkers(
    mixer: Mixer, swarm: Swarm, codec: str, rate: int
) -> None:
    mixer.create_room("share", rate, loudest_k=2)
    talkers = join(mixer, swarm, "share", [(440, codec), (1000, codec)])
    listeners = [swarm.add(1500 + 300 * i, codec, amplitude=0) for i in range(3)]
    for p in listeners:
        assert p.invite((LOCAL, mixer.sip_port), "share")[0] == 200
    encodes_before = metric(mixer, "fsfarm_mixer_encodes_total")
    saved_before = metric(mixer, "fsfarm_mixer_encodes_saved_total")
    swarm.run(1.2)
    assert_hears_others_not_self(talkers)
    for p in listeners:
        pcm = p.heard()
        assert level_db(pcm, p.rate, 440) > HEARD and level_db(pcm, p.rate, 1000) > HEARD
    # Three listeners hearing one mix: two encodes saved per frame.
    assert metric(mixer, "fsfarm_mixer_encodes_saved_total") - saved_before >= 2 * 40
    assert metric(mixer, "fsfarm_mixer_encodes_total") > encodes_before


def test_metrics_count_packets_in_and_out(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("count", 8000)
    phones = join(mixer, swarm, "count", [(400, "PCMU"), (900, "PCMU")])
    swarm.run(0.6)
    received = sum(len(p.received) for p in phones)
    assert metric(mixer, "fsfarm_mixer_packets_sent_total") >= received > 0
    assert metric(mixer, "fsfarm_mixer_packets_received_total") >= sum(p.sent_packets for p in phones) // 2
    assert metric(mixer, "fsfarm_mixer_frame_seconds_count") > 0


def test_deaf_listener_outside_the_k_hears_nothing(mixer: Mixer, swarm: Swarm) -> None:
    mixer.create_room("deafk", 8000, loudest_k=1)
    join(mixer, swarm, "deafk", [(440, "PCMU")])
    a, b = (swarm.add(1500 + 300 * i, "PCMU", amplitude=0) for i in range(2))
    for p in (a, b):
        assert p.invite((LOCAL, mixer.sip_port), "deafk")[0] == 200
    pid = next(p["id"] for p in mixer.describe_room("deafk")["participants"] if p["call_id"] == a.call_id)
    mixer.set_flags("deafk", pid, deaf=True)
    swarm.run(1.0)
    assert level_db(a.heard(), 8000, 440) < SILENT
    assert level_db(b.heard(), 8000, 440) > HEARD


def test_sip_is_answered_while_the_media_loop_holds_its_lock(mixer: Mixer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, mixer.media.lock:
        sock.bind((LOCAL, 0))
        sock.settimeout(2)
        port = sock.getsockname()[1]
        options = (
            f"OPTIONS sip:room-x@{LOCAL}:{mixer.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bKping\r\n"
            f"From: <sip:fs@{LOCAL}>;tag=p1\r\nTo: <sip:room-x@{LOCAL}>\r\n"
            "Call-ID: ping-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(options.encode(), (LOCAL, mixer.sip_port))
        assert parse_sip(sock.recvfrom(65535)[0]).status == 200  # keepalives never wait for a frame


def test_opus_complexity_is_per_room_and_travels_with_the_room(
    mixer_factory: Callable[[], Mixer], swarm: Swarm
) -> None:
    a, b = mixer_factory(), mixer_factory()
    client = control_client(a)
    r = client.post("/rooms", json={"room": "cheap", "rate": 48000, "opus_complexity": 0})
    assert r.status_code == 201 and r.json["opus_complexity"] == 0
    phones = join(a, swarm, "cheap", [(440, "opus"), (1000, "opus")])
    swarm.run(1.0)
    assert_hears_others_not_self(phones)
    state = a.export_room("cheap")
    a.delete_room("cheap")
    b.import_room(state)
    assert b.describe_room("cheap")["opus_complexity"] == 0
