"""Test kit for the mixer: Python SIP/RTP test phones that play tones, and FFT helpers."""

from __future__ import annotations

import random
import secrets
import socket
import time
from dataclasses import dataclass, field

import numpy as np
from flask.testing import FlaskClient

from mixer_ext.api import create_app
from mixer_ext.codecs import get_decoder, get_encoder, get_spec
from mixer_ext.engine import Mixer
from mixer_ext.rtp import build_rtp, parse_rtp, seq_distance
from mixer_ext.sdp import RtpMap, build_offer, parse_offer
from mixer_ext.sip import parse_sip

LOCAL = "127.0.0.1"
TONE_AMPLITUDE = 6000
TOKEN = "mixer-test-token-" + secrets.token_hex(8)


def control_client(mixer: Mixer) -> FlaskClient:
    """A test client of the mixer's control API (token ``TOKEN``) that sends that token with every request."""
    client = create_app(mixer, TOKEN).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


def tone(freq: float, rate: int, n: int, start: int = 0, amplitude: float = TONE_AMPLITUDE) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def level_db(pcm: np.ndarray, rate: int, freq: float) -> float:
    """Amplitude of ``freq`` in ``pcm`` in dB relative to int16 full scale (Hann window, +-2 bins)."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size == 0:
        return -200.0
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window)) * 2 / window.sum()
    b = round(freq * x.size / rate)
    peak = spectrum[max(b - 2, 0) : b + 3].max()
    return float(20 * np.log10(peak / 32768 + 1e-12))


OFFERS = {
    "PCMU": RtpMap(0, "PCMU", 8000),
    "PCMA": RtpMap(8, "PCMA", 8000),
    "G722": RtpMap(9, "G722", 8000),
    "L16/16000": RtpMap(97, "L16", 16000),
    "L16/8000": RtpMap(98, "L16", 8000),
    "L16/48000": RtpMap(99, "L16", 48000),
    "opus": RtpMap(111, "opus", 48000, 2, "useinbandfec=1"),
    "GSM": RtpMap(3, "GSM", 8000),
}
DTMF = RtpMap(101, "telephone-event", 8000, 1, "0-16")


@dataclass(eq=False)
class Phone:
    """A Python SIP+RTP test endpoint playing one tone and recording everything it receives."""

    freq: float
    codecs: list[str]
    dtmf: bool = False
    dtmf_rate: int = 8000
    amplitude: float = TONE_AMPLITUDE
    loss: float = 0.0
    reorder: float = 0.0
    sip: socket.socket = field(init=False)
    rtp: socket.socket = field(init=False)
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@test")
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    received: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # (pt, seq, ts, payload)
    ssrcs: set[int] = field(default_factory=set)
    payload_type: int = -1
    codec: str = ""
    target: tuple[str, int] = ("", 0)
    seq: int = field(default_factory=lambda: random.randrange(65536))
    ts: int = field(default_factory=lambda: random.randrange(2**32))
    ssrc: int = field(default_factory=lambda: random.randrange(2**32))
    sent_frames: int = 0
    sent_packets: int = 0
    _held: bytes | None = None
    _rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((LOCAL, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((LOCAL, 0))
        self.rtp.setblocking(False)
        self.sip.settimeout(2)

    @property
    def rtp_addr(self) -> tuple[str, int]:
        return self.rtp.getsockname()

    def invite(self, mixer_sip: tuple[str, int], room: str) -> tuple[int, str]:
        """Send an INVITE for room-<room>; returns (status, body). On 200 sends the ACK."""
        event = RtpMap(DTMF.payload_type, DTMF.name, self.dtmf_rate, 1, DTMF.fmtp)
        formats = [OFFERS[c] for c in self.codecs] + ([event] if self.dtmf else [])
        body = build_offer(formats, LOCAL, self.rtp_addr[1])
        port = self.sip.getsockname()[1]
        msg = (
            f"INVITE sip:room-{room}@{mixer_sip[0]}:{mixer_sip[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:tester@{LOCAL}>;tag={self.tag}\r\n"
            f"To: <sip:room-{room}@{mixer_sip[0]}>\r\nCall-ID: {self.call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:tester@{LOCAL}:{port}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        self.sip.sendto(msg.encode(), mixer_sip)
        resp = parse_sip(self.sip.recvfrom(65535)[0])
        if resp.status == 200:
            answer = parse_offer(resp.body)
            fmt = answer.formats[0]
            self.payload_type = fmt.payload_type
            self.codec = f"{fmt.name}/{fmt.clock_rate}"
            self.target = (answer.address, answer.port)
            ack = (
                f"ACK sip:room-{room}@{mixer_sip[0]}:{mixer_sip[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                f"From: <sip:tester@{LOCAL}>;tag={self.tag}\r\nTo: {resp.get('to')}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            )
            self.sip.sendto(ack.encode(), mixer_sip)
            spec = get_spec(self.codec)
            self.encoder = get_encoder(self.codec)
            self.frame = spec.samples()
            self.rate = spec.sample_rate
            self.step = spec.timestamp_step()
        return resp.status, resp.body

    def send_frame(self) -> None:
        start = self.sent_frames * self.frame
        pcm = tone(self.freq, self.rate, self.frame, start=start, amplitude=self.amplitude)
        self.sent_frames += 1
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + self.step) & 0xFFFFFFFF
        data = build_rtp(self.payload_type, self.seq, self.ts, self.ssrc, self.encoder.encode(pcm))
        if self.loss and self._rng.random() < self.loss:
            return
        if self._held is not None:
            self.rtp.sendto(data, self.target)
            self.rtp.sendto(self._held, self.target)
            self._held = None
            self.sent_packets += 2
            return
        if self.reorder and self._rng.random() < self.reorder:
            self._held = data  # sent after the next packet: a swap of two neighbours
            return
        self.rtp.sendto(data, self.target)
        self.sent_packets += 1

    def drain(self) -> None:
        while True:
            try:
                data = self.rtp.recv(4096)
            except BlockingIOError:
                return
            p = parse_rtp(data)
            self.received.append((p.payload_type, p.sequence, p.timestamp, p.payload))
            self.ssrcs.add(p.ssrc)

    def heard(self, skip_s: float = 0.3) -> np.ndarray:
        """Decode everything received in the negotiated codec (sequence order), skipping warm-up."""
        dec = get_decoder(self.codec)
        frames = sorted(unwrap([(s, pl) for pt, s, _, pl in self.received if pt == self.payload_type]))
        pcm = np.concatenate([dec.decode(pl) for _, pl in frames]) if frames else np.zeros(0, np.int16)
        # Skip the warm-up and the last 100 ms (the stream stops mid-frame when the test does).
        return pcm[int(skip_s * self.rate) : max(pcm.size - self.rate // 10, 0)]

    def clear(self) -> None:
        self.received.clear()
        self.ssrcs.clear()

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()


def unwrap(packets: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Extend 16-bit sequence numbers (arrival order) so sorting survives a wrap."""
    out: list[tuple[int, bytes]] = []
    highest = None
    for seq, payload in packets:
        ext = seq if highest is None else highest + seq_distance(highest & 0xFFFF, seq)
        highest = ext if highest is None else max(highest, ext)
        out.append((ext, payload))
    return out


class Swarm:
    """Drives many phones on one 20 ms clock from the test thread."""

    def __init__(self) -> None:
        self.phones: list[Phone] = []

    def add(self, freq: float, codecs: list[str] | str = "PCMU", **kw: object) -> Phone:
        phone = Phone(freq, [codecs] if isinstance(codecs, str) else codecs, **kw)  # type: ignore[arg-type]
        self.phones.append(phone)
        return phone

    def run(self, seconds: float, phones: list[Phone] | None = None) -> None:
        active = [p for p in (phones or self.phones) if p.payload_type >= 0]
        start = time.monotonic()
        frames = int(seconds / 0.02)
        before = {id(p): len(p.received) for p in active}
        i = 0
        # Keep talking past ``seconds`` while a starved machine has delivered too little to judge
        # (up to three times as long): what is heard is checked as strictly as ever.
        while i < frames or (i < 3 * frames and any(len(p.received) - before[id(p)] < frames * 3 // 4 for p in active)):
            for p in active:
                p.send_frame()
                p.drain()
            i += 1
            delay = start + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        time.sleep(0.06)
        for p in active:
            p.drain()

    def close(self) -> None:
        for p in self.phones:
            p.close()
