"""Small SIP peers for tests: a UAS standing in for a FreeSWITCH node at the SIP level, and a UAC.

They speak just enough RFC 3261 over UDP for Kamailio: OPTIONS and REGISTER get 200, INVITE gets
100 then 200 with SDP, ACK and BYE are accepted. Every request received is recorded.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass, field


def parse(data: bytes) -> tuple[str, dict[str, str], str]:
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = headers[key] + "," + value.strip() if key == "via" and key in headers else value.strip()
    return lines[0], headers, body


@dataclass
class SipNode:
    """A UAS on 127.0.0.1:port that answers like a healthy FreeSWITCH node, until stopped."""

    name: str
    port: int = 0
    received: list[tuple[float, str, str]] = field(default_factory=list)  # (time, method, request-uri)
    headers: list[dict[str, str]] = field(default_factory=list)  # each received request's headers, in order
    replies: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (status line, headers) received
    silent: bool = False  # True: requests are still received and recorded, but never answered (a hang)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def invites(self) -> list[tuple[float, str, str]]:
        return [r for r in self.received if r[1] == "INVITE"]

    def stop(self) -> None:
        """Crash: stop answering anything, and close the socket (ICMP port unreachable from now on)."""
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            if not data.strip():
                continue
            start, headers, _ = parse(data)
            if start.startswith("SIP/2.0"):
                self.replies.append((start, headers))
                continue
            method, ruri, _ = start.split(" ", 2)
            self.received.append((time.monotonic(), method, ruri))
            self.headers.append(headers)
            if method == "ACK" or self.silent:
                continue
            if method == "INVITE":
                self._reply(addr, headers, "100 Trying", tag=False)
                sdp = (
                    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                )
                self._reply(addr, headers, "200 OK", body=sdp, contact=True)
            else:
                self._reply(addr, headers, "200 OK")

    def _reply(
        self,
        addr: tuple[str, int],
        headers: dict[str, str],
        status: str,
        *,
        tag: bool = True,
        body: str = "",
        contact: bool = False,
    ) -> None:
        to = headers.get("to", "")
        if tag and ";tag=" not in to:
            to += f";tag={self.name}-{uuid.uuid4().hex[:6]}"
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v.strip()}" for v in headers.get("via", "").split(",") if v.strip()]
        if "record-route" in headers:
            lines.append(f"Record-Route: {headers['record-route']}")
        lines += [
            f"From: {headers.get('from', '')}",
            f"To: {to}",
            f"Call-ID: {headers.get('call-id', '')}",
            f"CSeq: {headers.get('cseq', '')}",
            f"Server: fake-{self.name}",
        ]
        if contact:
            lines.append(f"Contact: <sip:{self.name}@{self.address}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        try:
            self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), addr)
        except OSError:
            pass


def invite(proxy: tuple[str, int], user: str, domain: str, timeout: float = 3.0) -> tuple[int, str, dict[str, str]]:
    """Send one INVITE for user@domain through the proxy; return the final status, its Server, its headers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    call_id = uuid.uuid4().hex
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\n"
    msg = (
        f"INVITE sip:{user}@{domain} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:caller@{domain}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{user}@{domain}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:caller@127.0.0.1:{port}>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    )
    sock.sendto(msg.encode(), proxy)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                break
            start, headers, _ = parse(data)
            code = int(start.split(" ")[1])
            if code >= 200:
                return code, headers.get("server", ""), headers
        return 0, "", {}
    finally:
        sock.close()
