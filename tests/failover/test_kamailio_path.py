"""Kamailio on the way back to phones (RFC 3327 Path), and not a relay for anyone else.

The stand-in nodes are on 127.0.0.1 (where Kamailio listens too); phones and the would-be victim of
an open relay are on other loopback addresses, so Kamailio tells a node's request from a phone's.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from controller import provisioning
from tests.failover.chain import green_wait
from tests.failover.sip_peers import SipNode, parse

NATTED = "192.0.2.10:5060"  # a phone's private address as its Contact shows it (TEST-NET-1: unroutable here)


class Endpoint:
    """A raw SIP/UDP socket on its own loopback address: a phone, an attacker, or a relay's victim."""

    def __init__(self, host: str, contact: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = host, int(self.sock.getsockname()[1])
        self.contact = contact or self.address  # what it puts in Contact: behind NAT, not where it sends from

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, to: tuple[str, int], lines: list[str], body: str = "") -> None:
        text = "\r\n".join([*lines, f"Content-Length: {len(body.encode())}"]) + "\r\n\r\n" + body
        self.sock.sendto(text.encode(), to)

    def request(
        self,
        to: tuple[str, int],
        method: str,
        ruri: str,
        *extra: str,
        to_tag: str = "",
        call_id: str = "",
    ) -> None:
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        self.send(
            to,
            [
                f"{method} {ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.address};branch={branch};rport",
                "Max-Forwards: 70",
                f"From: <sip:caller@acme.example>;tag={uuid.uuid4().hex[:8]}",
                f"To: <{ruri}>" + (f";tag={to_tag}" if to_tag else ""),
                f"Call-ID: {call_id or uuid.uuid4().hex}",
                f"CSeq: 1 {method}",
                f"Contact: <sip:1001@{self.contact}>",
                *extra,
            ],
        )

    def receive(self, timeout: float = 5.0) -> tuple[str, dict[str, str], tuple[str, int]] | None:
        """The next message (start line, headers, source address), skipping provisional replies."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            start, headers, _ = parse(data)
            if not start.startswith("SIP/2.0 1"):
                return start, headers, source

    def pending(self) -> bool:
        """Is anything waiting on the socket right now?"""
        self.sock.setblocking(False)
        try:
            self.sock.recvfrom(65535)
            return True
        except BlockingIOError:
            return False

    def reply(self, request: tuple[str, dict[str, str], tuple[str, int]], status: str) -> None:
        """Answer ``request`` back along its Via, with its Record-Route, as a phone's UA would."""
        _, headers, source = request
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v.strip()}" for v in headers["via"].split(",")]
        if "record-route" in headers:
            lines.append(f"Record-Route: {headers['record-route']}")
        lines += [
            f"From: {headers['from']}",
            f"To: {headers['to']};tag=phone",
            f"Call-ID: {headers['call-id']}",
            f"CSeq: {headers['cseq']}",
            f"Contact: <sip:1001@{self.contact}>",
        ]
        self.send(source, lines)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Front:
    kamailio: tuple[str, int]
    node: SipNode

    @property
    def proxy(self) -> str:
        return f"{self.kamailio[0]}:{self.kamailio[1]}"


@pytest.fixture
def front(db, kamailio_factory) -> Iterator[Front]:  # type: ignore[no-untyped-def]
    node = SipNode("fs1")
    try:
        provisioning.add_node(
            db, {"name": "fs1", "sip_address": node.address, "esl_address": "127.0.0.1:1", "esl_password": "x"}
        )
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        kam = kamailio_factory()
        kam.control.reload()
        yield Front(kam.address, node)
    finally:
        node.stop()


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    made: list[Endpoint] = []
    yield made
    for e in made:
        e.close()


def register_through(front: Front, phone: Endpoint) -> str:
    """REGISTER ``phone`` through Kamailio; returns the Path the node received with it."""
    seen = len(front.node.received)
    phone.request(front.kamailio, "REGISTER", "sip:acme.example", "Expires: 60")
    reply = phone.receive()
    assert reply and reply[0].startswith("SIP/2.0 200"), reply
    index = next(i for i, r in enumerate(front.node.received[seen:], seen) if r[1] == "REGISTER")
    return front.node.headers[index].get("path", "")


def node_request(front: Front, method: str, ruri: str, route: str, call_id: str, cseq: int) -> None:
    """``method`` from the stand-in node to ``ruri`` through Kamailio, as FreeSWITCH sends it."""
    front.node.sock.sendto(
        "\r\n".join(
            [
                f"{method} {ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP {front.node.address};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
                "Max-Forwards: 70",
                f"From: <sip:0000000000@{front.node.address}>;tag=node",
                "To: <sip:1001@acme.example>" + (";tag=phone" if cseq > 1 else ""),
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} {method}",
                f"Contact: <sip:mod_sofia@{front.node.address}>",
                f"Route: {route}",
                "Content-Length: 0",
                "",
                "",
            ]
        ).encode(),
        front.kamailio,
    )


def call_phone(front: Front, phone: Endpoint, path: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The node calls the phone as FreeSWITCH does with a stored fs_path (R-URI the contact, Route the Path)
    and the phone answers; returns the Call-ID, the INVITE's headers at the phone, the 200's at the node."""
    call_id = uuid.uuid4().hex
    node_request(front, "INVITE", f"sip:1001@{phone.contact}", path, call_id, 1)
    invite = phone.receive()
    assert invite is not None, "the node's INVITE never reached the phone"
    start, headers, source = invite
    assert start.startswith(f"INVITE sip:1001@{phone.contact} ")
    assert source == front.kamailio  # from Kamailio, not from the node
    assert headers["record-route"].startswith(f"<sip:{front.proxy};lr")  # in-dialog requests stay on Kamailio
    assert "route" not in headers  # the Route naming Kamailio was consumed there
    phone.reply(invite, "200 OK")
    answer = green_wait(
        lambda: next((h for st, h in front.node.replies if h.get("call-id") == call_id and " 200 " in st), None)
    )
    assert answer, "the phone's 200 OK never reached the node"
    return call_id, headers, answer


def test_a_node_reaches_a_phone_behind_nat_through_the_path_it_registered_with(
    front: Front, endpoints: list[Endpoint]
) -> None:
    phone = Endpoint("127.0.0.2", contact=NATTED)  # its Contact names an address nobody can reach
    endpoints.append(phone)
    path = register_through(front, phone)
    # Kamailio's own address, and where the phone sent from (the NAT pinhole a call must come back through).
    assert path.startswith(f"<sip:{front.proxy};lr") and f"received=sip:{phone.address}" in path, path

    # The node hangs up to the Contact it was given, along the Record-Route: Kamailio sends it to the pinhole.
    call_id, _, answer = call_phone(front, phone, path)
    node_request(front, "BYE", answer["contact"].strip("<>"), answer["record-route"], call_id, 2)
    bye = phone.receive()
    assert bye is not None, "the node's BYE never reached the phone"
    assert bye[0].startswith(f"BYE sip:1001@{NATTED} ") and bye[2] == front.kamailio, bye

    # The phone hangs up: its BYE follows the Record-Route to Kamailio, which passes it on to the node.
    call_id, invite, _ = call_phone(front, phone, path)
    phone.request(
        front.kamailio,
        "BYE",
        f"sip:mod_sofia@{front.node.address}",
        f"Route: {invite['record-route']}",
        to_tag="node",
        call_id=call_id,
    )
    assert green_wait(lambda: any(r[1] == "BYE" for r in front.node.received))
    done = phone.receive()
    assert done and done[0].startswith("SIP/2.0 200"), done


def test_a_node_call_routed_to_kamailio_without_a_path_reaches_the_phone(
    front: Front, endpoints: list[Endpoint]
) -> None:
    """What a conference call-back sends (``esl_workers/recovery.py``: ``;fs_path=sip:PROXY``, no ``lr``)."""
    phone = Endpoint("127.0.0.2")
    endpoints.append(phone)
    call_phone(front, phone, f"<sip:{front.proxy}>")


def test_a_phone_cannot_make_kamailio_relay_its_requests_anywhere(front: Front, endpoints: list[Endpoint]) -> None:
    attacker, victim = Endpoint("127.0.0.2"), Endpoint("127.0.0.3")
    endpoints += [attacker, victim]
    forged = f"Route: <sip:{front.proxy};lr;received=sip:{victim.address}>"

    # Initial requests from phones go to their tenant's node, whatever Route they carry.
    attacker.request(front.kamailio, "INVITE", "sip:1001@acme.example", forged)
    answer = attacker.receive()
    assert answer and answer[0].startswith("SIP/2.0 200") and answer[1]["server"] == "fake-fs1", answer
    attacker.request(front.kamailio, "OPTIONS", f"sip:anyone@{victim.address}", f"Route: <sip:{front.proxy};lr>")
    answer = attacker.receive()
    assert answer and answer[0].startswith("SIP/2.0 404"), answer

    # In-dialog requests from phones go to a node only: not to a forged Path's received, a Route, a URI or alias.
    for ruri, route in [
        (f"sip:mod_sofia@{front.node.address}", forged),
        (f"sip:anyone@{victim.address}", f"Route: <sip:{front.proxy};lr>"),
        (f"sip:mod_sofia@{front.node.address};alias={victim.host}~{victim.port}~1", f"Route: <sip:{front.proxy};lr>"),
        (f"sip:mod_sofia@{front.node.address}", f"Route: <sip:{front.proxy};lr>, <sip:{victim.address};lr>"),
    ]:
        attacker.request(front.kamailio, "BYE", ruri, route, to_tag="forged")
        answer = attacker.receive()
        assert answer and answer[0].startswith("SIP/2.0 403"), (route, answer)
    assert not victim.pending()
