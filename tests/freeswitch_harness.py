"""A real FreeSWITCH for the ``freeswitch``-marked tests: start it from fsfarm's bootstrap config,
talk to it over ESL, and drive baresip phones. Skipped (by the tests) when no binary is present."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import pytest
from testsupport import free_port

from xmlcurl import bootstrap
from xmlcurl.options import XmlCurlOptions

FREESWITCH = os.environ.get("FREESWITCH_BIN") or shutil.which("freeswitch")
BARESIP = shutil.which("baresip")


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        gevent.sleep(0.2)  # lets the controller's greenlets (IVR, watchers) run too
    pytest.fail(f"timed out waiting for {what}")


class Esl:
    """The smallest inbound ESL client: auth, then `api` commands."""

    process: subprocess.Popen[bytes] | None = None

    def __init__(self, port: int, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self._frame()
        self.sock.sendall(f"auth {password}\n\n".encode())
        assert "+OK" in self._frame()[0].get("Reply-Text", "")

    def _frame(self) -> tuple[dict[str, str], str]:
        while b"\n\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, self.buf = self.buf.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
        length = int(headers.get("Content-Length", "0"))
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:length], self.buf[length:]
        return headers, body.decode(errors="replace")

    def api(self, command: str) -> str:
        self.sock.sendall(f"api {command}\n\n".encode())
        return self._frame()[1]


def phone(tmp: Path, ext: str, password: str, sip_port: int, commands: list[str]) -> subprocess.Popen[bytes]:
    home = tmp / f"baresip-{ext}"
    home.mkdir()
    (home / "accounts").write_text(
        f"<sip:{ext}@acme.test;transport=udp>;auth_pass={password};"
        f"outbound=\"sip:127.0.0.1:{sip_port};transport=udp\";regint=60;answermode=auto\n")
    (home / "config").write_text("\n".join([
        "module_path /usr/lib/baresip/modules", f"sip_listen 127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
        "audio_player aufile,/dev/null", "audio_source ausine,440", "audio_alert aufile,/dev/null",
        "module g711.so", "module ausine.so", "module aufile.so", "module account.so", "module menu.so",
        "module stdio.so", "",
    ]))
    args = [BARESIP, "-f", str(home)]
    for command in commands:
        args += ["-e", command]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)



def try_esl(port: int) -> Esl | None:
    try:
        return Esl(port, "ClueCon")
    except OSError:
        return None


@contextmanager
def running_freeswitch(node: Any, controller_url: str, tmp_path: Path,
                       options: XmlCurlOptions | None = None) -> Iterator[Esl]:
    """FreeSWITCH configured only by fsfarm's bootstrap files, ready with its internal profile."""
    conf = tmp_path / "conf"
    bootstrap.write(conf, bootstrap.files(node, controller_url, "freeswitch", "s3cret", options or XmlCurlOptions()))
    dirs = {name: tmp_path / name for name in ("log", "db", "run", "storage", "cache", "recordings", "sounds")}
    for d in dirs.values():
        d.mkdir()
    assert FREESWITCH is not None
    fs = subprocess.Popen(
        [FREESWITCH, "-nc", "-nf", "-nonat", "-conf", str(conf), "-log", str(dirs["log"]), "-db", str(dirs["db"]),
         "-run", str(dirs["run"]), "-storage", str(dirs["storage"]), "-cache", str(dirs["cache"]),
         "-recordings", str(dirs["recordings"]), "-sounds", str(dirs["sounds"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = node.esl_address.rpartition(":")[2]
        esl = wait_for(lambda: try_esl(int(port)), 30, "FreeSWITCH's event socket (configured over xml_curl)")
        wait_for(lambda: "RUNNING" in esl.api("sofia status profile internal"), 30, "sofia profile internal")
        esl.process = fs  # for tests that kill it
        yield esl
    finally:
        fs.terminate()
        try:
            fs.wait(20)
        except subprocess.TimeoutExpired:
            fs.kill()
