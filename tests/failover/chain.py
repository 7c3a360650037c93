"""The whole failover chain on loopback: ESL watchers, the failover loop, a real Kamailio, SIP peers.

Each stand-in FreeSWITCH node is a SIP peer (``sip_peers.SipNode``) plus an inbound-ESL server
that sends the HEARTBEAT event recorded from FreeSWITCH 1.10.12 once a second. Used by the
failover tests and by ``bench/failover.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.server

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/freeswitch/esl/inbound-json-events.jsonl"


def recorded_heartbeat(switchname: str | None = None) -> bytes:
    """The first HEARTBEAT frame of the recorded inbound JSON stream, as ``switchname`` would send it."""
    blob = "".join(
        json.loads(line)["data"]
        for line in FIXTURE.read_text().splitlines()
        if line.strip() and json.loads(line)["dir"] == "recv"
    ).encode()
    pos = 0
    while pos < len(blob):
        head_end = blob.index(b"\n\n", pos)
        head = blob[pos:head_end].decode()
        length = next((int(h.split(":")[1]) for h in head.split("\n") if h.startswith("Content-Length:")), 0)
        end = head_end + 2 + length
        if b'"Event-Name":"HEARTBEAT"' in blob[head_end:end]:
            if switchname is None:
                return blob[pos:end]
            event = json.loads(blob[head_end + 2 : end])
            event["FreeSWITCH-Switchname"] = event["FreeSWITCH-Hostname"] = switchname
            body = json.dumps(event).encode()
            return b"Content-Length: %d\nContent-Type: text/event-json\n\n%s" % (len(body), body)
        pos = end
    raise RuntimeError("no HEARTBEAT in the recording")


class EslNode:
    """An inbound-ESL endpoint that authenticates, subscribes and sends heartbeats until told not to."""

    def __init__(self, switchname: str | None = None, password: str = "ClueCon", interval: float = 1.0) -> None:
        self.password = password
        self.interval = interval
        self.heartbeat = recorded_heartbeat(switchname)
        self.beating = True
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port
        self.socks: list[Any] = []
        self.commands: list[str] = []  # every api/bgapi command received, in order

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def crash(self) -> None:
        """The process died: connections closed, reconnects refused."""
        self.server.stop(timeout=0)
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass

    def hang(self) -> None:
        """A hang or partition: the connection stays open but nothing more arrives."""
        self.beating = False

    def _handle(self, sock: Any, _addr: Any) -> None:
        self.socks.append(sock)
        sock.sendall(b"Content-Type: auth/request\n\n")
        buf = b""
        beats = None
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    text = raw.decode(errors="replace")
                    if text.startswith("auth "):
                        ok = text == f"auth {self.password}"
                        sock.sendall(
                            b"Content-Type: command/reply\nReply-Text: "
                            + (b"+OK accepted" if ok else b"-ERR invalid")
                            + b"\n\n"
                        )
                    elif text.startswith("event "):
                        sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n")
                        beats = beats or gevent.spawn(self._beat, sock)
                    elif text.startswith("api "):
                        self.commands.append(text[4:])
                        body = b'{"row_count":0}' if "show channels" in text else b"+OK"
                        sock.sendall(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body))
                    elif text.startswith("bgapi "):
                        first, _, rest = text.partition("\n")
                        self.commands.append(first[6:])
                        job = rest.split("Job-UUID:", 1)[1].strip() if "Job-UUID:" in rest else "0"
                        sock.sendall(
                            b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: %s\nJob-UUID: %s\n\n"
                            % (job.encode(), job.encode())
                        )
                    else:
                        sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
        except OSError:
            return
        finally:
            if beats is not None:
                beats.kill()

    def _beat(self, sock: Any) -> None:
        while True:
            if self.beating:
                sock.sendall(self.heartbeat)
            gevent.sleep(self.interval)


def green_wait(predicate, timeout: float = 10.0, step: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll until ``predicate`` is truthy (returning it), letting greenlets run meanwhile; works in threads too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(step)
    return predicate()


def in_thread(fn, *args: Any, **kwargs: Any) -> Any:  # type: ignore[no-untyped-def]
    """Run blocking socket code (the SIP UAC) in a real thread so the gevent hub keeps going."""
    return gevent.get_hub().threadpool.apply(fn, args, kwargs)
