"""Kamailio's SIP over WebSocket: a browser's one address for every tenant, routed like UDP, reached back
over its own WebSocket."""

from __future__ import annotations

import base64
import os
import socket
import struct
import uuid
from collections.abc import Iterator

import pytest

from controller import provisioning
from tests.failover.chain import green_wait
from tests.failover.sip_peers import SipNode, parse
from tests.failover.test_kamailio_path import Front, node_request


class WebSocketPhone:
    """A browser's SIP stack reduced to what is on the wire: one WebSocket (RFC 6455, subprotocol sip)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: sip\r\nOrigin: http://127.0.0.1\r\n\r\n"
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(4096)
        self.handshake = answer.decode()
        host, port = self.sock.getsockname()
        self.local = f"{host}:{port}"

    def send(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        head = bytes([0x81]) + (
            bytes([0x80 | len(payload)])
            if len(payload) < 126
            else bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        )
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the WebSocket closed")
            data += chunk
        return data

    def receive(self) -> tuple[str, dict[str, str]]:
        """The next SIP message that is not a provisional reply (pings are answered)."""
        while True:
            first, second = self._exact(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._exact(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(size)
            if first & 0x0F == 0x9:  # ping: a pong keeps Kamailio's keepalive content
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                continue
            if first & 0x0F != 0x1:
                continue
            start, headers, _ = parse(payload)
            if not start.startswith("SIP/2.0 1"):
                return start, headers

    def request(self, method: str, ruri: str, *extra: str) -> None:
        self.send(
            "\r\n".join(
                [
                    f"{method} {ruri} SIP/2.0",
                    f"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{uuid.uuid4().hex[:16]}",
                    "Max-Forwards: 70",
                    f"From: <sip:1004@acme.example>;tag={uuid.uuid4().hex[:8]}",
                    "To: <sip:1004@acme.example>",
                    f"Call-ID: {uuid.uuid4().hex}",
                    f"CSeq: 1 {method}",
                    "Contact: <sip:x7ko2d@df7jal23ls0d.invalid;transport=ws>",
                    *extra,
                    "Content-Length: 0",
                    "",
                    "",
                ]
            )
        )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def ws_front(db, kamailio_factory) -> Iterator[tuple[Front, tuple[str, int]]]:  # type: ignore[no-untyped-def]
    node = SipNode("fs1")
    try:
        provisioning.add_node(
            db, {"name": "fs1", "sip_address": node.address, "esl_address": "127.0.0.1:1", "esl_password": "x"}
        )
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        kam = kamailio_factory(ws=True)
        kam.control.reload()
        assert kam.ws_address is not None
        yield Front(kam.address, node), kam.ws_address
    finally:
        node.stop()


def test_a_browser_registers_over_websocket_and_its_node_calls_it_back_on_that_socket(
    ws_front: tuple[Front, tuple[str, int]],
) -> None:
    front, ws_address = ws_front
    browser = WebSocketPhone(ws_address)
    try:
        assert browser.handshake.startswith("HTTP/1.1 101") and "sip" in browser.handshake.lower()
        seen = len(front.node.received)
        browser.request("REGISTER", "sip:acme.example", "Expires: 60")
        start, _ = browser.receive()
        assert start.startswith("SIP/2.0 200"), start  # the stand-in node's answer, back over the WebSocket
        index = next(i for i, r in enumerate(front.node.received[seen:], seen) if r[1] == "REGISTER")
        path, contact = front.node.headers[index]["path"], front.node.headers[index]["contact"]
        # The Path names Kamailio; the Contact's alias names the browser's own connection (proto 5: ws).
        assert path.startswith(f"<sip:{front.proxy};lr") and "received" not in path, path
        host, port = browser.local.split(":")
        assert f"alias={host}~{port}~5" in contact, contact
        ruri = contact.strip("<>").split(">")[0]
        call_id = uuid.uuid4().hex
        node_request(front, "INVITE", ruri, path, call_id, 1)
        start, headers = browser.receive()
        assert start.startswith("INVITE sip:x7ko2d@df7jal23ls0d.invalid;transport=ws"), start
        assert headers["call-id"] == call_id
        assert "SIP/2.0/WS" in headers["via"].upper()  # the top Via is Kamailio's WebSocket side
    finally:
        browser.close()


def test_the_websocket_routes_each_tenant_like_udp_and_refuses_unknown_domains(
    ws_front: tuple[Front, tuple[str, int]],
) -> None:
    front, ws_address = ws_front
    browser = WebSocketPhone(ws_address)
    try:
        browser.request("INVITE", "sip:1001@acme.example")
        invite = green_wait(lambda: next((r for r in front.node.received if r[1] == "INVITE"), None))
        assert invite and invite[2] == "sip:1001@acme.example"
        browser.request("REGISTER", "sip:nobody.example", "Expires: 60")
        start, _ = browser.receive()
        while not start.startswith("SIP/2.0 404"):  # the INVITE's final answer may come first
            start, _ = browser.receive()
        assert "Unknown domain" in start
    finally:
        browser.close()


def test_plain_http_on_the_websocket_port_is_refused(ws_front: tuple[Front, tuple[str, int]]) -> None:
    _, ws_address = ws_front
    with socket.create_connection(ws_address, timeout=5) as sock:
        sock.sendall(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 404")
