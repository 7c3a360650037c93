"""``fsfarm mixer`` as an operator runs it: a real process, its SIP port and its control API."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from click.testing import CliRunner
from mixer_testkit import LOCAL
from testsupport import free_port

from controller.cli import main
from mixer_ext.sip import parse_sip

REPO = Path(__file__).resolve().parents[2]


def http(method: str, url: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_mixer_command_is_part_of_the_fsfarm_cli() -> None:
    result = CliRunner().invoke(main, ["mixer", "--help"])
    assert result.exit_code == 0 and "--listen" in result.output and "--control" in result.output


def test_bad_listen_address_is_a_user_error() -> None:
    result = CliRunner().invoke(main, ["mixer", "--listen", "nonsense"])
    assert result.exit_code == 1 and "HOST:PORT" in result.output


def test_bad_trusted_network_is_a_user_error(tmp_path: Path) -> None:
    token = ["--token-file", str(tmp_path / "token")]
    result = CliRunner().invoke(main, ["mixer", "--listen", f"{LOCAL}:0", "--trusted", "10.0.0.0/8,fs-nodes", *token])
    assert result.exit_code == 1 and "trusted networks must be CIDRs" in result.output


def test_busy_ports_are_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    token = ["--token-file", str(tmp_path / "token")]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((LOCAL, 0))
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["mixer", "--listen", f"{LOCAL}:{port}", *token])
    assert result.exit_code == 1 and "cannot listen for SIP/RTP" in result.output
    with socket.socket() as busy:
        busy.bind((LOCAL, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["mixer", "--listen", f"{LOCAL}:0", "--control", f"{LOCAL}:{port}", *token])
    assert result.exit_code == 1 and "cannot serve the control API" in result.output


def test_the_control_api_cannot_run_without_a_good_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["mixer", "--listen", f"{LOCAL}:0"])
    assert result.exit_code == 1 and "the control API needs a token: --token-file PATH" in result.output
    short = tmp_path / "short"
    short.write_text("secret\n")
    result = CliRunner().invoke(main, ["mixer", "--listen", f"{LOCAL}:0", "--token-file", str(short)])
    assert result.exit_code == 1 and "must be 16 to 200 printable characters" in result.output


def test_sidecar_process_serves_sip_and_control_and_stops_on_sigterm(tmp_path: Path) -> None:
    sip_port, api_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    token_file = tmp_path / "mixer-token"  # missing: the mixer writes a new token there
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from controller.cli import main; main()",
            "mixer",
            "--listen",
            f"{LOCAL}:{sip_port}",
            "--control",
            f"{LOCAL}:{api_port}",
            "--token-file",
            str(token_file),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://{LOCAL}:{api_port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                status, health = http("GET", f"{base}/healthz")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "control API never came up"
                time.sleep(0.1)
        assert status == 200 and health["sip"] == f"{LOCAL}:{sip_port}"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        assert http("POST", f"{base}/rooms", {"room": "7", "rate": 32000})[0] == 401
        assert http("POST", f"{base}/rooms", {"room": "7", "rate": 32000}, token)[0] == 201
        assert http("GET", f"{base}/rooms/8", token=token)[0] == 404
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOCAL, 0))
            s.settimeout(5)
            port = s.getsockname()[1]
            s.sendto(
                (
                    f"OPTIONS sip:room-7@{LOCAL}:{sip_port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bKo\r\nFrom: <sip:p@{LOCAL}>;tag=1\r\n"
                    f"To: <sip:room-7@{LOCAL}>\r\nCall-ID: opt1\r\nCSeq: 1 OPTIONS\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                (LOCAL, sip_port),
            )
            assert parse_sip(s.recvfrom(65535)[0]).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        if proc.stderr:
            proc.stderr.close()
    assert code == 0
