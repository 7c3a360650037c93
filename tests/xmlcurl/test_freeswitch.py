"""End to end with a real FreeSWITCH: bootstrap it, let it take everything from a test controller, then
register two baresip phones, complete a call between them and put both into a conference.

Needs `freeswitch` (on PATH or FREESWITCH_BIN) and `baresip` (Debian baresip-core); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from controller import provisioning
from controller.domain import a1_hash
from controller.stores import users
from xmlcurl import bootstrap
from xmlcurl.options import XmlCurlOptions

pytestmark = pytest.mark.freeswitch

FREESWITCH = os.environ.get("FREESWITCH_BIN") or shutil.which("freeswitch")
BARESIP = shutil.which("baresip")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


class Esl:
    """The smallest inbound ESL client: auth, then `api` commands."""

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


@pytest.fixture
def controller_url(app: Any) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/xmlcurl"
    server.shutdown()


@pytest.mark.skipif(not FREESWITCH, reason="no freeswitch binary (PATH or FREESWITCH_BIN)")
@pytest.mark.skipif(not BARESIP, reason="no baresip (Debian baresip-core)")
def test_phones_register_call_each_other_and_meet_in_a_conference(db: Any, controller_url: str,
                                                                   tmp_path: Path) -> None:
    sip_port, esl_port = free_port(socket.SOCK_DGRAM), free_port()
    switchname = f"fsfarm-test-{sip_port}"
    node = provisioning.add_node(db, {"name": "fstest", "switchname": switchname,
                                      "sip_address": f"127.0.0.1:{sip_port}", "esl_address": f"127.0.0.1:{esl_port}",
                                      "esl_password": "ClueCon", "rtp_port_min": 30000, "rtp_port_max": 30999})
    provisioning.add_tenant(db, {"domain": "acme.test"})
    passwords = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
    for ext, password in passwords.items():
        provisioning.add_child(db, "users", "acme.test", {"extension": ext, "password": password, "voicemail": False})
    with db.transaction() as conn:
        assert users.store.get(conn, provisioning.get_tenant(conn, "acme.test").id, "1001").a1_hash == \
            a1_hash("1001", "acme.test", passwords["1001"])
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3000", "profile": "narrowband"})

    conf = tmp_path / "conf"
    bootstrap.write(conf, bootstrap.files(node, controller_url, "freeswitch", "s3cret", XmlCurlOptions()))
    dirs = {name: tmp_path / name for name in ("log", "db", "run", "storage", "cache", "recordings", "sounds")}
    for d in dirs.values():
        d.mkdir()
    fs = subprocess.Popen(
        [FREESWITCH, "-nc", "-nf", "-nonat", "-conf", str(conf), "-log", str(dirs["log"]), "-db", str(dirs["db"]),
         "-run", str(dirs["run"]), "-storage", str(dirs["storage"]), "-cache", str(dirs["cache"]),
         "-recordings", str(dirs["recordings"]), "-sounds", str(dirs["sounds"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    phones: list[subprocess.Popen[bytes]] = []
    try:
        esl = wait_for(lambda: _try_esl(esl_port), 30, "FreeSWITCH's event socket (configured over xml_curl)")
        wait_for(lambda: "RUNNING" in esl.api("sofia status profile internal"), 30, "sofia profile internal")
        phones.append(phone(tmp_path, "1002", passwords["1002"], sip_port, []))
        phones.append(phone(tmp_path, "1001", passwords["1001"], sip_port, []))
        wait_for(lambda: esl.api("sofia status profile internal reg").count("acme.test") >= 2, 30,
                 "both phones registered with their a1-hash")

        # 1001 calls 1002, which answers automatically: the call is bridged inside acme.test
        esl.api("originate {origination_caller_id_number=1001}user/1001@acme.test &bridge(user/1002@acme.test)")
        wait_for(lambda: "1 total" in esl.api("show calls count") or "2 total" in esl.api("show calls count"), 20,
                 "a bridged call between 1001 and 1002")
        esl.api("hupall NORMAL_CLEARING")
        wait_for(lambda: "0 total" in esl.api("show channels count"), 20, "the call to hang up")

        # both phones dial the room through the dialplan the controller serves
        for ext in ("1001", "1002"):
            esl.api(f"originate user/{ext}@acme.test 3000 XML acme.test")
        wait_for(lambda: esl.api("conference 3000-acme.test list count").strip() == "2", 20,
                 "two members in conference 3000-acme.test")
        esl.api("hupall NORMAL_CLEARING")
    finally:
        for p in phones:
            p.terminate()
        fs.terminate()
        try:
            fs.wait(20)
        except subprocess.TimeoutExpired:
            fs.kill()


def _try_esl(port: int) -> Esl | None:
    try:
        return Esl(port, "ClueCon")
    except OSError:
        return None
