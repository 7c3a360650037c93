"""A fake FreeSWITCH that replays the recorded ESL bytes over 127.0.0.1, and helpers around it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.server
import pytest

from controller import provisioning
from controller.database import Database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch" / "esl"  # recorded from a real FreeSWITCH
AUTH_REQUEST = b"Content-Type: auth/request\n\n"


def recording(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def frame_ends(data: bytes) -> list[int]:
    """Offsets where each frame of a recorded stream ends (independent of the code under test)."""
    ends, pos = [], 0
    while pos < len(data):
        head_end = data.index(b"\n\n", pos)
        m = re.search(rb"Content-Length: (\d+)", data[pos:head_end])
        pos = head_end + 2 + (int(m.group(1)) if m else 0)
        ends.append(pos)
    return ends


def event_stream(name: str) -> list[bytes]:
    """The recorded reads after the subscription reply, grouped so that each group ends a frame."""
    recvs = [r["data"].encode() for r in recording(name) if r["dir"] == "recv"]
    blob = b"".join(recvs)
    ends = frame_ends(blob)
    start = ends[2]  # auth/request, auth reply, event reply
    groups, current, offset, boundaries = [], [], 0, set(ends)
    for chunk in recvs:
        lo, hi = offset, offset + len(chunk)
        offset = hi
        if hi <= start:
            continue
        current.append(chunk[max(0, start - lo) :])
        if hi in boundaries:
            groups.append(b"".join(current))
            current = []
    return groups


def api_reply(body: str) -> bytes:
    raw = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(raw) + raw


def command_reply(text: str, extra: str = "") -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n{extra}\n".encode()


class FakeFreeSWITCH:
    """Speaks inbound ESL on 127.0.0.1:<free port>; streams ``events`` after a subscription."""

    def __init__(self, events: list[bytes] | None = None, password: str = "ClueCon") -> None:
        self.events = events or []
        self.per_connection: list[list[bytes]] | None = None  # stream i goes to connection i (then none)
        self.password = password
        self.api: dict[str, str] = {"show channels as json": '{"row_count":0}'}
        self.received: list[bytes] = []
        self.connections = 0
        self.silent = False  # accept and then never answer anything
        self.close_after_events = False
        self.streamed = gevent.event.Event()
        self.on_command: Callable[[str, Any], bytes | None] | None = None
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self._socks: list[Any] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeFreeSWITCH:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(timeout=1)
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

    def drop_all(self) -> None:
        for s in self._socks:
            try:
                s.shutdown(2)
            except OSError:
                pass

    def _events_for(self, number: int) -> list[bytes]:
        if self.per_connection is None:
            return self.events
        return self.per_connection[number - 1] if number <= len(self.per_connection) else []

    def _handle(self, sock: Any, _addr: Any) -> None:
        self.connections += 1
        number = self.connections
        self._socks.append(sock)
        lock = gevent.lock.Semaphore()
        if self.silent:
            gevent.sleep(30)
            return

        def write(data: bytes) -> None:
            with lock:
                sock.sendall(data)

        write(AUTH_REQUEST)
        buf = b""
        streamer = None
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    self.received.append(raw + b"\n\n")
                    text = raw.decode()
                    custom = self.on_command(text, write) if self.on_command else None
                    if custom is not None:
                        write(custom)
                    elif text.startswith("auth "):
                        ok = text == f"auth {self.password}"
                        write(command_reply("+OK accepted" if ok else "-ERR invalid"))
                        if not ok:
                            return
                    elif text.startswith("event "):
                        fmt = text.split()[1]
                        write(command_reply(f"+OK event listener enabled {fmt}"))
                        if streamer is None:
                            streamer = gevent.spawn(self._stream, write, sock, self._events_for(number))
                    elif text.startswith("api "):
                        write(api_reply(self.api.get(text[4:], "-ERR no reply recorded\n")))
                    elif text == "exit":
                        write(command_reply("+OK bye"))
                        return
                    else:
                        write(command_reply("+OK"))
        except OSError:
            pass
        finally:
            if streamer is not None:
                streamer.kill()
            sock.close()

    def _stream(self, write: Callable[[bytes], None], sock: Any, events: list[bytes]) -> None:
        for group in events:
            write(group)
            gevent.sleep(0)
        self.streamed.set()
        if self.close_after_events:
            sock.shutdown(2)


@pytest.fixture
def fake_fs() -> Iterator[Callable[..., FakeFreeSWITCH]]:
    started: list[FakeFreeSWITCH] = []

    def make(events: list[bytes] | None = None) -> FakeFreeSWITCH:
        fs = FakeFreeSWITCH(events).start()
        started.append(fs)
        return fs

    yield make
    for fs in started:
        fs.stop()


@pytest.fixture
def farm(db: Database) -> Callable[..., Any]:
    """Adds a node (switchname 'vm' like the recording) and the tenants the recording names."""

    def make(address: str, switchname: str = "vm", name: str = "fs1") -> Any:
        node = provisioning.add_node(
            db,
            {
                "name": name,
                "switchname": switchname,
                "sip_address": "127.0.0.1:5060",
                "esl_address": address,
                "esl_password": "ClueCon",
            },
        )
        for domain in ("acme.test", "beta.test"):
            try:
                provisioning.add_tenant(db, {"domain": domain})
            except Exception:
                pass
        return node

    return make


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` cooperatively until it returns something truthy (tests never assert on time)."""
    with gevent.Timeout(timeout, AssertionError(f"condition not met within {timeout}s: {check}")):
        while True:
            value = check()
            if value:
                return value
            gevent.sleep(interval)


def rows(db: Database, query: str, *params: Any) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        return conn.execute(query, params).fetchall()


def new_id() -> str:
    return str(uuid.uuid4())
