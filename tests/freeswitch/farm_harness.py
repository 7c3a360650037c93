"""The ``freeswitch`` tier's harness: the farm an operator runs, started for real on loopback.

- ``Controller``: ``fsfarm up`` as a subprocess on a test database; ``cli()`` runs ``fsfarm`` commands
  and ``api()`` calls the REST API with the farm-admin token ``fsfarm up`` wrote, as an operator would.
- ``FreeSwitch``: a stock FreeSWITCH configured only by ``fsfarm freeswitch bootstrap`` (everything else
  over xml_curl), with an inbound ESL client for what a test must read off the node itself.
- ``Phone``: a baresip phone on its own 127.0.0.x address (so no node ACL trusts it), driven over
  ctrl_tcp, playing its own sine tone and recording what it decodes, so a test can check what it heard.
- ``Kamailio``: the SIP front from ``fsfarm kamailio config``.
- ``RtpTap``: the arrival time of every RTP packet sent to one phone, read off ``lo`` (the media gap).

Binaries: ``FREESWITCH_BIN``, else ``/opt/fsfarm-freeswitch/bin/freeswitch`` (``.ci/install --test``
installs it from ``../shared/freeswitch``), else ``freeswitch`` on PATH.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests
from rtp_gaps import Arrival, rtp_in_frame, tone_level_db
from testsupport import free_port, run_kamailio

BUNDLE_PREFIX = Path("/opt/fsfarm-freeswitch/bin/freeswitch")
SHARED_BUNDLE = Path(__file__).resolve().parents[2].parent / "shared" / "freeswitch"
FSFARM = str(Path(sys.executable).with_name("fsfarm"))
BARESIP_MODULES = "/usr/lib/baresip/modules"
PHONE_RTP_PORTS = (40000, 59999)  # every phone's RTP and RTCP sockets, which RtpTap's kernel filter keeps


def freeswitch_binary() -> str | None:
    """The FreeSWITCH binary to test against, or None."""
    if os.environ.get("FREESWITCH_BIN"):
        return os.environ["FREESWITCH_BIN"]
    if BUNDLE_PREFIX.exists():
        return str(BUNDLE_PREFIX)
    return shutil.which("freeswitch")


def wait_for(check: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


# Linux routes all of 127/8 to lo. Each test process takes its own 127.N.0.0/16 (phones in 127.N.0.x, nodes in
# 127.N.1.x), so parallel runs on one machine do not race each other for the same address and port.
_NET = 20 + os.getpid() % 200
_phones = itertools.count(20)
_nodes = itertools.count(2)
_rtp_ranges = itertools.count()


def loopback_host() -> str:
    """A fresh loopback address for one phone, so no node's ACL (which trusts node addresses) trusts it."""
    return f"127.{_NET}.0.{next(_phones) % 230 + 20}"


def node_host() -> str:
    """A fresh loopback address for one FreeSWITCH node's SIP profile and media."""
    return f"127.{_NET}.1.{next(_nodes) % 250 + 2}"


def free_udp_pair(host: str) -> int:
    """A port p on ``host`` with p free for UDP and p, p+1 free for TCP (baresip takes SIP/TCP and TLS)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((host, port))
                b.bind((host, port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


# Everything a module started, so the tier can stop what a failed fixture left behind.
STARTED: list[Any] = []


# The DTLS and WSS certificates FreeSWITCH makes on a first start (two RSA-4096 keys, a second or more
# each): made by the session's first node, then given to every later one, as an operator's nodes might share.
_CERTS = Path(tempfile.mkdtemp(prefix="fsfarm-test-certs-"))
_CERT_FILES = ("dtls-srtp.pem", "wss.pem")


def _reuse_certs(certs: Path) -> None:
    for name in _CERT_FILES:
        if (_CERTS / name).exists() and not (certs / name).exists():
            shutil.copy2(_CERTS / name, certs / name)


def _keep_certs(certs: Path) -> None:
    for name in _CERT_FILES:
        if (certs / name).exists() and not (_CERTS / name).exists():
            shutil.copy2(certs / name, _CERTS / name)


def stop_together(*things: Any) -> None:
    """Stop phones, nodes and Kamailio side by side: a FreeSWITCH takes seconds to exit, a phone to unregister."""
    threads = [threading.Thread(target=thing.stop, daemon=True) for thing in things]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def stop_everything() -> None:
    """Stop every controller, node, phone and Kamailio still running (newest first)."""
    while STARTED:
        thing = STARTED.pop()
        try:
            thing.stop()
        except Exception:  # a half-started process: kill it rather than leave it running
            process = getattr(thing, "process", None)
            if process is not None and process.poll() is None:
                process.kill()


# --------------------------------------------------------------------------- the controller


class CliError(AssertionError):
    pass


class Controller:
    """``fsfarm up`` on a test database, and the operator's two ways in: the CLI and the REST API."""

    def __init__(self, dsn: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ivr_port = free_port()
        self.ivr_scripts = workdir / "ivr"
        self.ivr_scripts.mkdir(exist_ok=True)
        self.log_path = workdir / "controller.log"
        self.env = {
            **os.environ,
            "FSFARM_DATABASE_URL": dsn,
            "FSFARM_STATE_DIR": str(self.state_dir),
            "FSFARM_HTTP_PORT": str(self.port),
            "FSFARM_IVR_PORT": str(self.ivr_port),
            "FSFARM_IVR_SCRIPTS": str(self.ivr_scripts),
            "FSFARM_CONTROLLER_ADDRESS": "127.0.0.1",
            "FSFARM_ESL_HEARTBEAT_INTERVAL": "1",
            "FSFARM_ESL_BACKOFF_MAX": "1",
            "FSFARM_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Controller:
        log = self.log_path.open("ab")
        STARTED.append(self)  # stopped at the end of the module even if its set-up failed half way
        self.process = subprocess.Popen(
            [FSFARM, "up", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for(self._healthy, 60, f"fsfarm up to answer /healthz (log: {self.log_path})")
        token = (self.state_dir / "admin-token").read_text().strip()
        self.http.headers["Authorization"] = f"Bearer {token}"
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"fsfarm up exited {self.process.returncode}:\n{self.log()[-3000:]}")
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------------ the operator's surfaces

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``fsfarm ARGS`` against the controller's database; raise with its stderr when it fails."""
        done = subprocess.run([FSFARM, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise CliError(f"fsfarm {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def api(self, method: str, path: str, body: Any = None, expect: int | None = 200) -> Any:
        """One REST call under /api/v1; asserts the status when ``expect`` is given, returns the JSON."""
        response = self.http.request(method, f"{self.url}/api/v1{path}", json=body, timeout=30)
        if expect is not None and response.status_code != expect:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        try:
            return response.json()
        except ValueError:
            return response.text


# --------------------------------------------------------------------------- FreeSWITCH


class Esl:
    """The smallest inbound ESL client: auth, then ``api``/``bgapi`` commands (for reading a node directly)."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=15)
        self.buf = b""
        self.lock = threading.Lock()
        self._frame()
        self.sock.sendall(f"auth {password}\n\n".encode())
        headers, _ = self._frame()
        if "+OK" not in headers.get("Reply-Text", ""):
            raise OSError(f"ESL auth refused: {headers}")

    def _frame(self) -> tuple[dict[str, str], str]:
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("ESL connection closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
        length = int(headers.get("Content-Length", "0"))
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("ESL connection closed")
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return headers, body.decode(errors="replace")

    def api(self, command: str) -> str:
        with self.lock:
            self.sock.sendall(f"api {command}\n\n".encode())
            return self._frame()[1]

    def bgapi(self, command: str) -> str:
        """Start a command without waiting for it (``originate`` blocks until the far end answers)."""
        with self.lock:
            self.sock.sendall(f"bgapi {command}\n\n".encode())
            return self._frame()[0].get("Reply-Text", "")

    def channels(self) -> list[dict[str, Any]]:
        body = self.api("show channels as json")
        try:
            return list(json.loads(body).get("rows") or [])
        except ValueError:
            return []

    def close(self) -> None:
        self.sock.close()


class FreeSwitch:
    """One FreeSWITCH node started from ``fsfarm freeswitch bootstrap`` files only."""

    def __init__(
        self,
        controller: Controller,
        name: str,
        workdir: Path,
        sip_host: str | None = None,
        esl_password: str = "ClueCon",
    ) -> None:
        self.controller = controller
        self.name = name
        self.workdir = workdir
        self.sip_host = sip_host or node_host()
        self.sip_port = free_udp_pair(self.sip_host)
        self.esl_port = free_port()
        self.esl_password = esl_password
        self.process: subprocess.Popen[bytes] | None = None
        self._esl: Esl | None = None

    @property
    def sip_address(self) -> str:
        return f"{self.sip_host}:{self.sip_port}"

    def node_add_args(self, *extra: str) -> list[str]:
        """``fsfarm node add`` arguments for this node (each test node gets its own RTP range)."""
        # 200 ports below the kernel's ephemeral range (32768+), where no client socket can be holding one.
        base = 10000 + (os.getpid() * 7 + next(_rtp_ranges)) % 110 * 200
        return [
            "node",
            "add",
            self.name,
            "--sip",
            self.sip_address,
            "--esl",
            f"127.0.0.1:{self.esl_port}",
            "--esl-password",
            self.esl_password,
            "--switchname",
            f"fsfarm-{self.name}-{self.sip_port}",
            "--rtp-min",
            str(base),
            "--rtp-max",
            str(base + 199),
            *extra,
        ]

    def start(self, wait: bool = True, bootstrap_args: tuple[str, ...] = ()) -> FreeSwitch:
        binary = freeswitch_binary()
        assert binary, "no FreeSWITCH binary"
        conf = self.workdir / "conf"
        if conf.exists():
            shutil.rmtree(conf)
        self.controller.cli("freeswitch", "bootstrap", "--node", self.name, "--out", str(conf), *bootstrap_args)
        args = [binary, "-nc", "-nf", "-nonat", "-conf", str(conf)]
        for name in ("log", "db", "run", "storage", "cache", "recordings", "sounds", "certs"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
            args += [f"-{name}", str(self.workdir / name)]
        _reuse_certs(self.workdir / "certs")
        STARTED.append(self)  # stopped at the end of the module even if its set-up failed half way
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"FreeSWITCH {self.name} exited {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                status = self.esl.api("sofia status")
            except OSError:
                self._esl = None
                return False
            # `sofia status` prints RUNNING per profile; `sofia status profile NAME` never does.
            return any("internal" in line and "RUNNING" in line for line in status.splitlines())

        wait_for(ready, timeout, f"FreeSWITCH {self.name}'s sofia profile internal (configured over xml_curl)")
        _keep_certs(self.workdir / "certs")

    @property
    def esl(self) -> Esl:
        if self._esl is None:
            self._esl = Esl("127.0.0.1", self.esl_port, self.esl_password)
        return self._esl

    def log(self) -> str:
        path = self.workdir / "log" / "freeswitch.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the crash a failover must survive."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self._esl is not None:
            self._esl.close()
            self._esl = None

    def stop(self) -> None:
        if self._esl is not None:
            try:
                self._esl.close()
            except OSError:
                pass
            self._esl = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- phones


def netstring(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    return str(len(body)).encode() + b":" + body + b","


class Phone:
    """A baresip phone on its own loopback address, answering automatically, playing a sine of ``tone`` Hz.

    ``registrar`` is where it registers and sends calls (a node's or Kamailio's host:port); events from
    ctrl_tcp (REGISTER_OK, CALL_ESTABLISHED, MWI_NOTIFY, ...) collect in ``events``. ``sip_trace``
    writes every SIP message it sends and receives, with both addresses, to its log.
    """

    def __init__(
        self,
        workdir: Path,
        user: str,
        domain: str,
        password: str,
        registrar: str | None,
        tone: int,
        regint: int = 60,
        answer: bool = True,
        extra_account: str = "",
        sip_trace: bool = False,
        nat: Any = None,
    ) -> None:
        self.user, self.domain, self.password, self.tone = user, domain, password, tone
        self.nat = nat  # a nat_lab.NatLab: the phone runs in its namespace, behind its router
        self.host = nat.phone_ip if nat else loopback_host()
        self.home = workdir / f"phone-{user}-{self.host}"
        self.home.mkdir(parents=True)
        (self.home / "rec").mkdir()
        self.sip_port = free_udp_pair("127.0.0.1" if nat else self.host)  # a NAT lab's namespace has all ports free
        self.ctrl_port = free_port()
        answermode = "auto" if answer else "manual"
        if registrar is None:
            # A SIP endpoint that registers nowhere (a carrier): reached at sip:USER@host:port.
            self.domain = f"{self.host}:{self.sip_port}"
            account = f"<sip:{user}@{self.domain}>;regint=0;answermode={answermode}{extra_account}"
        else:
            account = (
                f'<sip:{user}@{domain}>;auth_pass={password};outbound="sip:{registrar};transport=udp";'
                f"regint={regint};answermode={answermode}{extra_account}"
            )
        (self.home / "accounts").write_text(account + "\n")
        (self.home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {self.host}:{self.sip_port}",
                    f"net_interface {self.host}",
                    # aubridge paces playback on its own clock; ALSA's null device never blocks and spins a core.
                    "audio_player aubridge,fsfarm",
                    "audio_alert aubridge,fsfarm",
                    f"audio_source ausine,{tone}",
                    "ausrc_srate 48000",
                    "ausrc_channels 2",
                    f"module_path {BARESIP_MODULES}",
                    "module account.so",
                    "module menu.so",
                    "module g711.so",
                    "module g722.so",
                    "module l16.so",
                    "module ausine.so",
                    "module aubridge.so",
                    "module sndfile.so",
                    "module mwi.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    f"snd_path {self.home / 'rec'}",
                    f"rtp_ports {PHONE_RTP_PORTS[0]}-{PHONE_RTP_PORTS[1]}",
                    "",
                ]
            )
        )
        self.log_path = self.home / "baresip.log"
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        STARTED.append(self)  # stopped at the end of the module even if its set-up failed half way
        inside = ["ip", "netns", "exec", nat.phone_ns] if nat else []
        self.process = subprocess.Popen(
            [*inside, "baresip", "-f", str(self.home), *(["-s"] if sip_trace else [])],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.ctrl = wait_for(self._connect, 15, f"baresip {user}'s ctrl_tcp")
        threading.Thread(target=self._read, daemon=True).start()

    def _connect(self) -> socket.socket | None:
        if self.process.poll() is not None:
            raise AssertionError(f"baresip {self.user} exited:\n{self.log()[-2000:]}")
        try:
            if self.nat:
                return self.nat.connect_inside(("127.0.0.1", self.ctrl_port))  # type: ignore[no-any-return]
            return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
        except OSError:
            return None

    def _read(self) -> None:
        buf = b""
        self.ctrl.settimeout(None)
        while True:
            try:
                chunk = self.ctrl.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                size, _, rest = buf.partition(b":")
                if not size.isdigit() or len(rest) < int(size) + 1:
                    break
                body, buf = rest[: int(size)], rest[int(size) + 1 :]
                try:
                    message = json.loads(body)
                except ValueError:
                    continue
                with self._lock:
                    (self.events if message.get("event") else self.responses).append(message)

    def command(self, command: str, params: str = "") -> None:
        self.ctrl.sendall(netstring({"command": command, "params": params, "token": command}))

    def dial(self, target: str) -> None:
        """Call ``target``: an extension (sent to the registrar) or a full SIP URI."""
        self.command("dial", target)

    def hangup(self) -> None:
        self.command("hangup")

    def send_digit(self, digit: str) -> None:
        """An RFC 2833 telephone-event, as a phone's keypad sends it."""
        self.command("sndcode", digit)

    @property
    def address(self) -> str:
        """host:port this phone takes SIP on."""
        return f"{self.host}:{self.sip_port}"

    def saw(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("type") == kind]

    def wait_event(self, kind: str, timeout: float = 20, after: int = 0) -> dict[str, Any]:
        """The first ``kind`` event beyond the first ``after`` ones."""
        return wait_for(lambda: (self.saw(kind)[after:] or [None])[0], timeout, f"{self.user}: {kind}")

    def request(self, command: str, params: str = "", timeout: float = 5) -> str:
        """Send a command and return its response's data."""
        with self._lock:
            seen = len(self.responses)
        self.command(command, params)

        def answered() -> dict[str, Any] | None:
            with self._lock:
                return next((r for r in self.responses[seen:] if r.get("token") == command), None)

        return str(wait_for(answered, timeout, f"{self.user}: answer to {command}", step=0.05).get("data", ""))

    def registration(self) -> str:
        """OK, ERR, zzz (not registered yet) as baresip's ``reginfo`` shows its account (events come too early)."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.request("reginfo"))
        for line in text.splitlines():
            if line.startswith(">"):
                return line.split()[2] if len(line.split()) > 2 else ""
        return ""

    def wait_registered(self, timeout: float = 20) -> None:
        def registered() -> bool:
            state = self.registration()
            if state == "ERR":
                raise AssertionError(f"{self.user}@{self.domain} registration refused:\n{self.log()[-1500:]}")
            return state == "OK"

        wait_for(registered, timeout, f"{self.user}@{self.domain} to register")

    def wait_refused(self, timeout: float = 20) -> str:
        """Wait for the registrar to refuse this phone; returns baresip's log line with the status."""
        wait_for(lambda: self.registration() == "ERR", timeout, f"{self.user}@{self.domain} to be refused")
        return next((line for line in reversed(self.log().splitlines()) if line.find("reg: ") >= 0), "")

    def recordings(self) -> list[str]:
        """WAV files of what this phone decoded, one per call (``*-dec.wav``), oldest first."""
        return sorted(glob.glob(str(self.home / "rec" / "*-dec.wav")), key=os.path.getmtime)

    def heard(self, index: int = -1, skip: float = 0.5) -> tuple[np.ndarray, int]:
        """Samples (mono) and rate of what one call's far end sent, without the first ``skip`` seconds."""
        files = self.recordings()
        assert files, f"{self.user} recorded no call audio"
        with wave.open(files[index]) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[:: w.getnchannels()]
            rate = w.getframerate()
        return pcm[int(rate * skip) :], rate

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        try:
            self.command("quit")
        except OSError:
            pass
        try:
            self.process.wait(3)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.ctrl.close()


def level_db(pcm: np.ndarray, rate: int, freq: float) -> float:
    """Power near ``freq`` (±20 Hz) relative to a full-scale sine, in dB; -120 for silence or under 100 ms."""
    if len(pcm) < rate // 10:
        return -120.0
    return tone_level_db(pcm, rate, freq)


def hears(phone: Phone, tone: float, index: int = -1, threshold: float = -40.0) -> bool:
    """Did ``phone``'s call ``index`` carry a ``tone`` Hz sine from the far end?"""
    pcm, rate = phone.heard(index)
    return level_db(pcm, rate, tone) > threshold


# --------------------------------------------------------------------------- Kamailio


class Kamailio:
    """Kamailio from ``fsfarm kamailio config``, reading the farm's routes from the database."""

    def __init__(self, controller: Controller, workdir: Path, ws: bool = False, also_on: str = "") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_pair("127.0.0.1")
        self.ws_port = free_port() if ws else 0  # browsers' SIP over WebSocket (0: none)
        self.ctl = str(workdir / "ctl")
        controller.cli(
            "kamailio",
            "config",
            "--out",
            str(workdir / "kamailio.cfg"),
            "--listen",
            f"udp:127.0.0.1:{self.port}",
            *(["--listen", f"udp:{also_on}:{self.port}"] if also_on else []),  # e.g. a NAT lab's public side
            "--ctl-socket",
            self.ctl,
            *(["--ws-listen", f"tcp:127.0.0.1:{self.ws_port}"] if ws else []),
        )
        self.log_path = workdir / "kamailio.log"
        self.process = run_kamailio(workdir, self.log_path)  # killed by it if it never answers
        STARTED.append(self)  # stopped at the end of the module even if a later set-up step fails

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- the media gap at a phone


class RtpTapUnavailable(OSError):
    """No raw socket on ``lo`` (not root, no CAP_NET_RAW, or not Linux): callers turn it into a skip."""


ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26  # not exported by Python's socket module
PACKET_OUTGOING = 4  # lo shows every packet twice: once leaving (this type), once arriving


def _bpf_udp_to_ports(low: int, high: int) -> bytes:
    """A classic BPF program keeping only IPv4 UDP to a port in [low, high], so the kernel drops the rest of lo."""
    code = [
        (0x28, 0, 0, 12),  # ldh [12]: EtherType
        (0x15, 0, 7, ETH_P_IP),
        (0x30, 0, 0, 23),  # ldb [23]: IP protocol
        (0x15, 0, 5, socket.IPPROTO_UDP),
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): IP header length
        (0x48, 0, 0, 16),  # ldh [x+16]: UDP destination port
        (0x35, 0, 2, low),
        (0x25, 1, 0, high),
        (0x06, 0, 0, 0xFFFF),  # keep
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *op) for op in code)


def udp_ports_of(pid: int) -> set[int]:
    """Local ports of the UDP sockets process ``pid`` holds (reading another process's fds needs root)."""
    inodes: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class RtpTap:
    """Records every RTP packet sent to one phone's RTP sockets, with its arrival time, off a raw socket on lo.

    The phone's sockets are the UDP ports its baresip process holds, SIP's aside, looked up in /proc as
    packets to new ports appear: baresip binds RTP to the wildcard address and sends from 127.0.0.1, so
    FreeSWITCH sends the phone's RTP to 127.0.0.1:port, not to ``Phone.host``.
    ``start()`` opens an AF_PACKET socket bound to ``lo`` and reads it in a background thread; it raises
    ``RtpTapUnavailable`` when the socket cannot be opened (the tier runs as root; elsewhere: pytest.skip).
    ``arrivals()`` are ``rtp_gaps.Arrival`` rows in arrival order, for ``rtp_gaps.largest_gap``/``sources``.
    """

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._arrivals: list[Arrival] = []
        self._ports: set[int] = set()
        self._foreign: dict[int, float] = {}  # port -> when /proc last showed it is not the phone's
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> RtpTap:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: nothing queued before the filter
        except (AttributeError, OSError) as e:
            raise RtpTapUnavailable(
                f"cannot open an AF_PACKET raw socket (needs Linux and root/CAP_NET_RAW): {e}"
            ) from e
        program = _bpf_udp_to_ports(*PHONE_RTP_PORTS)
        buffer = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("lo", ETH_P_IP))
        sock.settimeout(0.2)
        self._sock = sock
        self._scan()
        self.started_at = time.monotonic()
        STARTED.append(self)  # stopped at the end of the module if a test fails before stopping it
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _scan(self) -> None:
        self._ports = udp_ports_of(self.phone.process.pid) - {self.phone.sip_port}

    def _is_phones(self, port: int) -> bool:
        if port in self._ports:
            return True
        if time.monotonic() - self._foreign.get(port, -1e9) < 1.0:  # another phone's: rescan at most once a second
            return False
        try:
            self._scan()
        except OSError:  # the phone has exited
            return False
        if port in self._ports:
            return True
        self._foreign[port] = time.monotonic()
        return False

    def _read(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            if address[2] == PACKET_OUTGOING:
                continue
            rtp = rtp_in_frame(frame)
            if rtp is not None and self._is_phones(int(rtp[1].rsplit(":", 1)[1])):
                with self._lock:
                    self._arrivals.append(Arrival(at, *rtp))

    def stop(self) -> None:
        """Stop recording; ``arrivals()`` keeps what came before."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.stopped_at = time.monotonic()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)
