"""Conference load for ``bench/mixer.py --freeswitch``: a farm on a test database and light SIP/RTP legs.

- ``Farm``: a PostgreSQL in a temp dir, ``fsfarm up`` on it, and one stock FreeSWITCH started from
  ``fsfarm freeswitch bootstrap`` files only (everything else over xml_curl), as the freeswitch test
  tier does (a few lines copied from tests/freeswitch/farm_harness.py: bench/ does not import tests/).
- ``Leg``: one SIP call (digest-authenticated as a tenant user when the far end challenges) from its own
  127.0.x.y address, sending a pre-encoded tone of its own frequency every 20 ms and counting, or
  for a few sampled legs keeping, what comes back.
- ``drive``: every leg on one 20 ms clock from this process; the CPU of the measured process (FreeSWITCH
  or the mixer) is read from /proc over a fixed window once every leg is up, the generator's is not.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixer_ext.codecs import get_decoder, get_encoder, get_spec
from mixer_ext.rtp import build_rtp, parse_rtp, seq_distance
from mixer_ext.sdp import RtpMap, build_offer, parse_offer
from mixer_ext.sip import SipMessage, parse_sip

FRAME_S = 0.020
PR_SET_PDEATHSIG = 1  # linux/prctl.h
TONE_AMPLITUDE = 2500  # ten of these summed stay below int16 full scale
BUNDLE = Path("/opt/fsfarm-freeswitch/bin/freeswitch")


def freeswitch_binary() -> Path | None:
    """``FREESWITCH_BIN``, else the test bundle's, else ``freeswitch`` on PATH (as the freeswitch test tier)."""
    if os.environ.get("FREESWITCH_BIN"):
        return Path(os.environ["FREESWITCH_BIN"])
    if BUNDLE.exists():
        return BUNDLE
    found = shutil.which("freeswitch")
    return Path(found) if found else None


FSFARM = str(Path(sys.executable).with_name("fsfarm"))


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(check: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the bench dies, so a killed run leaves nothing on a shared host."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def pin_child(cpu: int | None) -> None:
    die_with_parent()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- the farm


class Farm:
    """``fsfarm up`` on its own PostgreSQL plus one FreeSWITCH node from bootstrap files, in ``workdir``."""

    def __init__(self, workdir: Path, cpu: int | None) -> None:
        from controller.database.embedded import EmbeddedPostgres

        binary = freeswitch_binary()
        if binary is None or not binary.exists():
            raise RuntimeError(f"no FreeSWITCH binary ({binary}): set FREESWITCH_BIN or install ../shared/freeswitch")
        self.binary = binary
        self.workdir = workdir
        self.cpu = cpu
        self.pg = EmbeddedPostgres(workdir / "pg", port=free_port(), dbname="fsfarm_bench")
        state = workdir / "state"
        state.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.env = {
            **os.environ,
            "FSFARM_DATABASE_URL": self.pg.conninfo,
            "FSFARM_STATE_DIR": str(state),
            "FSFARM_HTTP_PORT": str(self.http_port),
            "FSFARM_IVR_PORT": str(free_port()),
            "FSFARM_CONTROLLER_ADDRESS": "127.0.0.1",
            "FSFARM_LOG_LEVEL": "WARNING",
            "FSFARM_ESL_BACKOFF_MAX": "1",  # the watcher reconnects within a second of FreeSWITCH coming up
            # L16 is not in fsfarm's default codec list: the bench compares mixing at 16 and 48 kHz without codec cost.
            "FSFARM_SIP_CODECS": "PCMU,L16@16000h,L16@48000h,OPUS,G722,PCMA",
        }
        self.controller: subprocess.Popen[bytes] | None = None
        self.freeswitch: subprocess.Popen[bytes] | None = None
        self.sip_host = "127.0.0.1"
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.esl_port = free_port()

    @property
    def sip(self) -> tuple[str, int]:
        return self.sip_host, self.sip_port

    def cli(self, *args: str) -> str:
        done = subprocess.run([FSFARM, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"fsfarm {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One REST call under /api/v1 with the farm-admin token ``fsfarm up`` wrote."""
        token = (self.workdir / "state" / "admin-token").read_text().strip()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/v1{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def fs_cli(self, command: str) -> str:
        done = subprocess.run(
            [
                str(self.binary.with_name("fs_cli")),
                "-H",
                "127.0.0.1",
                "-P",
                str(self.esl_port),
                "-p",
                "ClueCon",
                "-x",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout

    def start(self) -> None:
        """PostgreSQL, ``fsfarm up``, ``fsfarm node add``: tenants and rooms go in next, then ``start_freeswitch``."""
        self.pg.start()
        log = (self.workdir / "controller.log").open("ab")
        self.controller = subprocess.Popen(
            [FSFARM, "up", "--host", "127.0.0.1", "--port", str(self.http_port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        wait_for(self._controller_up, 60, "fsfarm up to answer /healthz")
        # Above the kernel's ephemeral ports (32768-60999) and the test tier's node ranges (20000-39999): on a
        # shared host another process held a port of a range derived from the SIP port, and FreeSWITCH
        # answered that leg 488 ("AUDIO RTP REPORTS ERROR: [Bind Error! ...]").
        base = 61000 + secrets.randbelow(1000) * 2
        self.cli(
            "node",
            "add",
            "fs1",
            "--sip",
            f"{self.sip_host}:{self.sip_port}",
            "--esl",
            f"127.0.0.1:{self.esl_port}",
            "--esl-password",
            "ClueCon",
            "--capacity",
            "1000",
            "--switchname",
            f"fsfarm-bench-{self.sip_port}",
            "--rtp-min",
            str(base),
            "--rtp-max",
            str(base + 1998),
        )

    def start_freeswitch(self) -> None:
        """FreeSWITCH from ``fsfarm freeswitch bootstrap`` files only, until the controller sees it up."""
        conf = self.workdir / "fs" / "conf"
        self.cli("freeswitch", "bootstrap", "--node", "fs1", "--out", str(conf))
        args = [str(self.binary), "-nc", "-nf", "-nonat", "-conf", str(conf)]
        for name in ("log", "db", "run", "storage", "cache", "recordings", "sounds", "certs"):
            (self.workdir / "fs" / name).mkdir(parents=True, exist_ok=True)
            args += [f"-{name}", str(self.workdir / "fs" / name)]
        cpu = self.cpu
        self.freeswitch = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: pin_child(cpu),
        )
        wait_for(lambda: "RUNNING" in self._alive_fs_cli("sofia status"), 60, "FreeSWITCH's sofia profile")
        wait_for(self._node_up, 60, "the controller to see fs1 up")

    def _alive_fs_cli(self, command: str) -> str:
        if self.freeswitch is not None and self.freeswitch.poll() is not None:
            raise RuntimeError(f"FreeSWITCH exited {self.freeswitch.returncode}; see {self.workdir}/fs/log")
        return self.fs_cli(command)

    def _controller_up(self) -> bool:
        if self.controller is not None and self.controller.poll() is not None:
            raise RuntimeError(f"fsfarm up exited; see {self.workdir}/controller.log")
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=1):
                pass
        except OSError:
            return False
        return True

    def _node_up(self) -> bool:
        return any(n["name"] == "fs1" and n.get("health") == "up" for n in self.api("GET", "/nodes"))

    @property
    def pid(self) -> int:
        assert self.freeswitch is not None
        return self.freeswitch.pid

    def stop(self) -> None:
        stop_process(self.freeswitch)
        stop_process(self.controller)
        self.pg.stop()


# --------------------------------------------------------------------------- legs


def digest(method: str, uri: str, challenge: str, user: str, password: str) -> str:
    """A Digest Authorization value (RFC 2617, MD5, qop=auth when offered) for ``challenge``."""
    params: dict[str, str] = {}
    for part in challenge.removeprefix("Digest").split(","):
        key, _, value = part.strip().partition("=")
        params[key.lower()] = value.strip('"')
    realm, nonce = params["realm"], params["nonce"]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    value = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in params.get("qop", "").split(","):
        cnonce = secrets.token_hex(8)
        value += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    return value + f', response="{response}"'


def encoded_tone(codec: str, freq: int, frames: int = 50) -> list[bytes]:
    """One second of a ``freq`` Hz sine (whole cycles, so it loops seamlessly) as RTP payloads."""
    spec = get_spec(codec)
    enc = get_encoder(codec)
    n = spec.samples()
    t = np.arange(n * frames) / spec.sample_rate
    pcm = (TONE_AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return [enc.encode(pcm[i * n : (i + 1) * n]) for i in range(frames)]


class SipRefused(RuntimeError):
    """The far end answered an INVITE with a final status other than 200."""

    def __init__(self, uri: str, status: int, reason: str) -> None:
        super().__init__(f"INVITE {uri} answered {status} {reason}")
        self.status = status


@dataclass(eq=False)
class Leg:
    """One call from ``host``: SIP on one socket, RTP on another, playing ``payloads`` in a loop."""

    host: str
    freq: int
    room: int
    codec: str  # as mixer_ext names it, e.g. "PCMU", "L16/16000", "opus/48000"
    offer: RtpMap
    payloads: list[bytes]
    keep: bool = False  # keep what arrives (sampled legs), else only count it
    received: int = 0
    kept: list[tuple[int, bytes]] = field(default_factory=list)
    answered: str = ""  # the codec the far end answered with

    def __post_init__(self) -> None:
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((self.host, 0))
        self.sip.settimeout(10)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((self.host, 0))
        self.rtp.setblocking(False)
        self.rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.seq = secrets.randbelow(65536)
        self.ts = secrets.randbelow(2**32)
        self.ssrc = secrets.randbits(32)
        self.step = get_spec(self.codec).timestamp_step()
        self.call_id = secrets.token_hex(10)
        self.tag = secrets.token_hex(4)
        self.frame = 0
        self.pt = -1
        self.target: tuple[str, int] = ("", 0)

    # -- SIP ----------------------------------------------------------------------------------

    def _request(
        self, method: str, uri: str, cseq: int, to: str, branch: str, extra: str = "", body: str = ""
    ) -> bytes:
        port = self.sip.getsockname()[1]
        head = (
            f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {self.host}:{port};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {self.from_}\r\nTo: {to}\r\nCall-ID: {self.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:bench@{self.host}:{port}>\r\n"
            f"User-Agent: fsfarm-bench\r\n{extra}"
        )
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()

    def call(
        self, target: tuple[str, int], uri: str, user: str = "bench", domain: str = "bench", password: str | None = None
    ) -> None:
        """INVITE ``uri`` at ``target``, answering one digest challenge; ACK the 200 and start RTP."""
        self.remote = target
        self.uri = uri
        self.from_ = f"<sip:{user}@{domain}>;tag={self.tag}"
        self.to = f"<{uri}>"
        body = build_offer(
            [self.offer, RtpMap(101, "telephone-event", 8000, 1, "0-16")], self.host, self.rtp.getsockname()[1]
        )
        self.cseq = 1
        auth = ""
        for _attempt in range(2):
            branch = secrets.token_hex(8)
            self.sip.sendto(self._request("INVITE", uri, self.cseq, self.to, branch, auth, body), target)
            try:
                resp = self._final(self.cseq)
            except TimeoutError:
                raise SipRefused(uri, 408, "no final answer within 10 s") from None
            if resp.status in (401, 407) and password is not None and not auth:
                self._ack_failure(resp, branch)
                header = "proxy-authenticate" if resp.status == 407 else "www-authenticate"
                name = "Proxy-Authorization" if resp.status == 407 else "Authorization"
                auth = f"{name}: {digest('INVITE', uri, resp.get(header), user, password)}\r\n"
                self.cseq += 1
                continue
            break
        if resp.status != 200:
            raise SipRefused(uri, resp.status, resp.reason)
        self.to = resp.get("to")
        answer = parse_offer(resp.body)
        fmt = answer.formats[0]
        self.pt, self.target = fmt.payload_type, (answer.address, answer.port)
        self.answered = f"{fmt.name}/{fmt.clock_rate}"
        self.sip.sendto(self._request("ACK", uri, self.cseq, self.to, secrets.token_hex(8)), target)

    def _final(self, cseq: int) -> SipMessage:
        while True:
            msg = parse_sip(self.sip.recvfrom(65535)[0])
            if msg.status >= 200 and msg.get("cseq").startswith(f"{cseq} "):
                return msg

    def _ack_failure(self, resp: SipMessage, branch: str) -> None:
        # A non-2xx final response is ACKed in the INVITE's own transaction (same branch).
        self.sip.sendto(self._request("ACK", self.uri, self.cseq, resp.get("to"), branch), self.remote)

    def hangup(self) -> None:
        """BYE, without waiting long for its answer (the far end may already be gone)."""
        if self.pt < 0:
            return
        self.cseq += 1
        self.sip.sendto(self._request("BYE", self.uri, self.cseq, self.to, secrets.token_hex(8)), self.remote)
        self.sip.settimeout(2)
        try:
            self._final(self.cseq)
        except OSError:
            pass

    # -- RTP ----------------------------------------------------------------------------------

    def send(self) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + self.step) & 0xFFFFFFFF
        payload = self.payloads[self.frame % len(self.payloads)]
        self.frame += 1
        self.rtp.sendto(build_rtp(self.pt, self.seq, self.ts, self.ssrc, payload), self.target)

    def drain(self) -> None:
        while True:
            try:
                data = self.rtp.recv(4096)
            except BlockingIOError:
                return
            self.received += 1
            if self.keep:
                packet = parse_rtp(data)
                if packet.payload_type == self.pt:
                    self.kept.append((packet.sequence, packet.payload))

    def heard(self) -> tuple[np.ndarray, int]:
        """What was kept, decoded in sequence order (the window only: ``kept`` is cleared at its start)."""
        dec = get_decoder(self.codec)  # the only codec offered, so the one answered
        first = self.kept[0][0] if self.kept else 0
        # Sequence numbers counted from the window's first packet: a 16-bit wrap inside it keeps its order.
        frames = sorted(self.kept, key=lambda p: seq_distance(first, p[0]))
        pcm = np.concatenate([dec.decode(pl) for _, pl in frames]) if frames else np.zeros(0, np.int16)
        return pcm, get_spec(self.codec).sample_rate

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()


@dataclass(frozen=True)
class Window:
    """What one measured window saw."""

    seconds: float
    cpu: float  # CPU seconds the measured process used
    sent: int  # RTP packets the legs sent
    received: int  # RTP packets the legs received
    late: float  # the generator's worst lateness against its 20 ms schedule, seconds

    @property
    def per_core(self) -> float:
        """Participants one core of the measured process carries: its CPU per 20 ms frame it delivered."""
        return self.received * FRAME_S / self.cpu if self.cpu else float("inf")

    @property
    def cpu_share(self) -> float:
        return self.cpu / self.seconds


@contextmanager
def realtime_thread() -> Iterator[None]:
    """Run the calling thread at SCHED_FIFO 1 (FreeSWITCH's own policy) where allowed, then back to normal."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def drive(legs: list[Leg], pid: int, warmup: float, seconds: float) -> Window:
    """Send every leg's frame every 20 ms; measure ``pid``'s CPU over ``seconds`` after ``warmup``."""
    # Other FreeSWITCH processes on a shared host run SCHED_FIFO: at normal priority the generator stalls.
    with realtime_thread():
        return _drive(legs, pid, warmup, seconds)


def _drive(legs: list[Leg], pid: int, warmup: float, seconds: float) -> Window:
    start = time.monotonic()
    total = int((warmup + seconds) / FRAME_S)
    mark = int(warmup / FRAME_S)
    cpu0 = wall0 = late = 0.0
    sent = 0
    for i in range(total):
        if i > mark:
            late = max(late, time.monotonic() - (start + i * FRAME_S))
        if i == mark:
            for leg in legs:
                leg.drain()
                leg.received = 0
                leg.kept.clear()
            cpu0, wall0, sent = cpu_seconds(pid), time.monotonic(), 0
        for leg in legs:
            leg.send()
        sent += len(legs)
        for leg in legs:
            leg.drain()
        delay = start + (i + 1) * FRAME_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - wall0
    for leg in legs:
        leg.drain()
    return Window(wall, cpu, sent, sum(leg.received for leg in legs), late)


def band_levels(pcm: np.ndarray, rate: int, freqs: list[int]) -> list[float]:
    """Level of each of ``freqs`` in ``pcm``, dB relative to int16 full scale (Hann window, +-2 bins)."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size < rate // 10:
        return [-200.0] * len(freqs)
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window)) * 2 / window.sum()  # once: a 15 s window at 48 kHz is 720k points
    levels = []
    for freq in freqs:
        b = round(freq * x.size / rate)
        levels.append(float(20 * np.log10(spectrum[max(b - 2, 0) : b + 3].max() / 32768 + 1e-12)))
    return levels


@dataclass(frozen=True)
class Hearing:
    """What one sampled leg heard: its peers' tones, its own, and the loudest tone of another room."""

    weakest_peer_db: float
    own_db: float
    other_room_db: float

    @property
    def ok(self) -> bool:
        # Peers clearly there; itself and other rooms at least 20 dB below the weakest peer.
        return (
            self.weakest_peer_db > -45
            and self.own_db < self.weakest_peer_db - 20
            and self.other_room_db < self.weakest_peer_db - 20
        )


def hearing(leg: Leg, legs: list[Leg]) -> Hearing:
    """Levels of ``leg``'s peers' tones, its own and the other rooms' in what it received."""
    pcm, rate = leg.heard()
    pcm = pcm[rate // 10 :]  # the first frames may still carry the jitter buffer's fill
    peers = [p.freq for p in legs if p.room == leg.room and p is not leg]
    others = [p.freq for p in legs if p.room != leg.room]
    levels = band_levels(pcm, rate, [leg.freq, *peers, *others])
    own, peer_levels, other_levels = levels[0], levels[1 : 1 + len(peers)], levels[1 + len(peers) :]
    return Hearing(min(peer_levels), own, max(other_levels, default=-200.0))


def loopback_hosts(n: int, first: int = 100) -> list[str]:
    """``n`` addresses 127.0.x.y past 127.0.0.1, so no node ACL (127.0.0.1) trusts the generator."""
    return [f"127.0.{(first + i) // 250}.{(first + i) % 250 + 2}" for i in range(n)]


def tones(n: int, top: int) -> list[int]:
    """``n`` distinct whole-Hz frequencies between 250 Hz and ``top``, evenly spaced."""
    step = (top - 250) // max(n - 1, 1)
    return [250 + i * step for i in range(n)]


def cleanup_dir(path: Path) -> None:
    if os.environ.get("FSFARM_KEEP_BENCH_DIRS") != "1":
        shutil.rmtree(path, ignore_errors=True)
