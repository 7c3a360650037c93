"""A small SIP UAS over UDP (RFC 3261) for conference legs: INVITE, re-INVITE, ACK, BYE, CANCEL, OPTIONS.

Parsing and answering are plain functions over bytes so they test without sockets; the mixer
owns the socket and hands every datagram to ``SipUas.handle``, which returns what to send.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from typing import Protocol

from mixer_ext.sdp import AudioOffer, Choice, NoCommonCodec, SdpError, build_answer, choose, parse_offer

log = logging.getLogger(__name__)

Address = tuple[str, int]
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
REQUIRED = ("via", "from", "to", "call-id", "cseq")
_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
}
_ROOM_URI = re.compile(r"^sips?:room-([A-Za-z0-9_.\-]{1,64})@", re.IGNORECASE)
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)
_URI_IN = re.compile(r"<([^>]+)>")


class SipError(ValueError):
    """A datagram that is not a SIP message we can parse."""


@dataclass(frozen=True)
class SipMessage:
    method: str  # "" for responses
    uri: str
    status: int  # 0 for requests
    reason: str
    headers: tuple[tuple[str, str], ...]  # (lower-case canonical name, value) in order
    body: str = ""

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


def parse_sip(data: bytes) -> SipMessage:
    """Parse one SIP datagram; raises SipError for anything that is not SIP."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError("not UTF-8") from exc
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    parts = first.split(" ", 2)
    if len(parts) < 3:
        raise SipError("bad start line")
    if parts[0] == "SIP/2.0":
        if not parts[1].isdigit():
            raise SipError("bad status code")
        method, uri, status, reason = "", "", int(parts[1]), parts[2]
    elif parts[2] == "SIP/2.0" and parts[0].isalpha() and parts[0].isupper():
        method, uri, status, reason = parts[0], parts[1], 0, ""
    else:
        raise SipError("bad start line")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"bad header line {line[:40]!r}")
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        # Via may carry several comma-separated hops in one line; keep one per entry.
        values = [v.strip() for v in value.split(",")] if key == "via" else [value.strip()]
        headers.extend((key, v) for v in values)
    length = next((v for k, v in headers if k == "content-length"), None)
    if length is not None:
        if not length.isdigit():
            raise SipError("bad Content-Length")
        body = body.encode()[: int(length)].decode("utf-8", "replace")
    return SipMessage(method, uri, status, reason, tuple(headers), body)


_CANONICAL = {
    "via": "Via",
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "contact": "Contact",
    "content-type": "Content-Type",
    "content-length": "Content-Length",
}


def _render(start: str, headers: list[tuple[str, str]], body: str) -> bytes:
    out = [start]
    for key, value in headers:
        out.append(f"{_CANONICAL.get(key, key.title())}: {value}")
    out.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(out) + "\r\n\r\n" + body).encode()


def tag_of(header: str) -> str:
    """The ``tag`` parameter of a From/To header, or ''."""
    m = _TAG.search(header)
    return m.group(1) if m else ""


def uri_of(header: str) -> str:
    """The URI in a name-addr (``"x" <sip:a@b>;tag=1``) or addr-spec header."""
    m = _URI_IN.search(header)
    return m.group(1) if m else header.split(";")[0].strip()


def host_port(uri: str, default_port: int = 5060) -> Address:
    """Host and port of a SIP URI."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1].split(";")[0].split("?")[0]
    host, _, port = rest.partition(":")
    return host, int(port) if port.isdigit() else default_port


def response(
    request: SipMessage,
    status: int,
    reason: str,
    to_tag: str = "",
    extra: list[tuple[str, str]] | None = None,
    body: str = "",
) -> bytes:
    """A response copying Via/From/To/Call-ID/CSeq from ``request`` (adding our To tag if it has none)."""
    headers = [(k, v) for k, v in request.headers if k == "via"]
    to = request.get("to")
    if to_tag and not tag_of(to):
        to = f"{to};tag={to_tag}"
    headers += [
        ("from", request.get("from")),
        ("to", to),
        ("call-id", request.get("call-id")),
        ("cseq", request.get("cseq")),
    ]
    headers += extra or []
    if body:
        headers.append(("content-type", "application/sdp"))
    return _render(f"SIP/2.0 {status} {reason}", headers, body)


def request(method: str, uri: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    """A request line plus headers (Content-Length is added)."""
    return _render(f"{method} {uri} SIP/2.0", headers, body)


@dataclass(frozen=True)
class Leg:
    """One conference leg: its SIP dialog and the negotiated media."""

    call_id: str
    room_id: str
    remote_media: Address
    choice: Choice
    local_tag: str
    remote_tag: str
    remote_uri: str  # where in-dialog requests go (the peer's Contact)
    signalling: Address  # where the peer's SIP came from
    local_uri: str  # our side's From in requests we send (the To the peer used)
    remote_party: str  # the peer's From header, as To in requests we send
    offer_version: int = 0
    local_cseq: int = 1
    answer_version: int = 1
    route: tuple[str, ...] = ()  # Record-Route of the INVITE: our BYE follows the same proxies


class Conference(Protocol):
    """What the UAS needs from the mixer."""

    def room_rate(self, room_id: str) -> int | None: ...
    def media_address(self) -> Address: ...
    def join(self, leg: Leg) -> None: ...
    def update(self, leg: Leg) -> None: ...
    def leave(self, call_id: str, reason: str) -> None: ...


@dataclass
class SipUas:
    """The mixer's SIP brain-stem: turns each datagram into conference actions and replies."""

    conference: Conference
    contact_host: str
    contact_port: int
    legs: dict[str, Leg] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31))
    _sent: OrderedDict[tuple[str, str], bytes] = field(default_factory=OrderedDict)

    def handle(self, data: bytes, source: Address) -> list[tuple[bytes, Address]]:
        """Process one datagram; returns (datagram, address) pairs to send back."""
        try:
            msg = parse_sip(data)
        except SipError as exc:
            self.counters["garbage"] += 1
            log.info("dropped non-SIP datagram from %s:%s: %s", source[0], source[1], exc)
            return []
        if msg.status:
            self.counters["responses"] += 1
            return []
        missing = [h for h in REQUIRED if not msg.get(h)]
        cseq = msg.get("cseq").split()
        if missing or len(cseq) != 2 or not cseq[0].isdigit() or cseq[1].upper() != msg.method:
            self.counters["bad_request"] += 1
            log.info("400 to %s for %s: missing %s or bad CSeq", source, msg.method, missing)
            if not msg.get("via"):
                return []  # nowhere to send a response (RFC 3261 section 8.2.2)
            reason = f"Missing {', '.join(missing)}" if missing else "Bad CSeq"
            return [(response(msg, 400, reason, to_tag=self._new_tag()), self._reply_to(msg, source))]
        # Known methods only: arbitrary method names must not grow the metric's label set.
        self.counters[msg.method.lower() if msg.method in ALLOW.split(", ") else "other_method"] += 1
        key = (msg.get("call-id"), msg.get("cseq"))
        if msg.method != "ACK" and key in self._sent:
            return [(self._sent[key], self._reply_to(msg, source))]  # a retransmitted request
        handler = {
            "INVITE": self._invite,
            "ACK": self._ack,
            "BYE": self._bye,
            "CANCEL": self._cancel,
            "OPTIONS": self._options,
        }.get(msg.method)
        out: bytes | None
        if handler is None:
            out = response(msg, 405, "Method Not Allowed", extra=[("allow", ALLOW)])
        else:
            out = handler(msg, source)
        if out is None:
            return []
        self._remember(key, out)
        return [(out, self._reply_to(msg, source))]

    def _remember(self, key: tuple[str, str], out: bytes) -> None:
        self._sent[key] = out
        while len(self._sent) > 4096:
            self._sent.popitem(last=False)

    @staticmethod
    def _new_tag() -> str:
        return secrets.token_hex(6)

    @staticmethod
    def _reply_to(msg: SipMessage, source: Address) -> Address:
        # Responses go to the source address (rport-style), which is right behind NAT and on loopback.
        return source

    def _contact(self, room_id: str) -> list[tuple[str, str]]:
        return [("contact", f"<sip:room-{room_id}@{self.contact_host}:{self.contact_port}>"), ("allow", ALLOW)]

    def _invite(self, msg: SipMessage, source: Address) -> bytes:
        call_id = msg.get("call-id")
        existing = self.legs.get(call_id)
        if existing is not None:
            if tag_of(msg.get("to")) == existing.local_tag:
                return self._reinvite(msg, existing)
            # A second dialog on a live Call-ID would leave a ghost leg in the room: refuse it.
            self.counters["bad_request"] += 1
            return response(msg, 400, "Call-ID Already In Use", to_tag=self._new_tag())
        m = _ROOM_URI.match(msg.uri)
        if not m:
            self.counters["not_found"] += 1
            return response(msg, 404, "Not Found (use sip:room-<id>@...)", to_tag=self._new_tag())
        room_id = m.group(1)
        rate = self.conference.room_rate(room_id)
        if rate is None:
            self.counters["not_found"] += 1
            return response(msg, 404, "No Such Room", to_tag=self._new_tag())
        try:
            offer = parse_offer(msg.body)
            choice = choose(offer, rate)
        except NoCommonCodec as exc:
            self.counters["no_common_codec"] += 1
            log.info("488 for %s in room %s: %s", call_id, room_id, exc)
            return response(
                msg,
                488,
                "Not Acceptable Here",
                to_tag=self._new_tag(),
                extra=[("warning", f'304 fsfarm-mixer "{exc}"')],
            )
        except SdpError as exc:
            self.counters["bad_sdp"] += 1
            log.info("488 for %s: unusable SDP: %s", call_id, exc)
            return response(
                msg,
                488,
                "Not Acceptable Here",
                to_tag=self._new_tag(),
                extra=[("warning", f'399 fsfarm-mixer "{exc}"')],
            )
        local_tag = self._new_tag()
        contact = msg.get("contact")
        leg = Leg(
            call_id=call_id,
            room_id=room_id,
            remote_media=(offer.address, offer.port),
            choice=choice,
            local_tag=local_tag,
            remote_tag=tag_of(msg.get("from")),
            remote_uri=uri_of(contact) if contact else uri_of(msg.get("from")),
            signalling=source,
            local_uri=f"{msg.get('to')};tag={local_tag}",
            remote_party=msg.get("from"),
            offer_version=offer.session_version,
            route=tuple(msg.all("record-route")),
        )
        self.conference.join(leg)
        self.legs[call_id] = leg
        return self._ok_with_answer(msg, leg, offer)

    def _ok_with_answer(self, msg: SipMessage, leg: Leg, offer: AudioOffer | None) -> bytes:
        host, port = self.conference.media_address()
        direction = offer.direction if offer else "sendrecv"
        body = build_answer(leg.choice, host, port, self.session_id, leg.answer_version, direction)
        # A 2xx to INVITE carries the Record-Route set back unchanged (RFC 3261 12.1.1).
        routes = [("record-route", r) for r in msg.all("record-route")]
        return response(msg, 200, "OK", to_tag=leg.local_tag, extra=routes + self._contact(leg.room_id), body=body)

    def _reinvite(self, msg: SipMessage, leg: Leg) -> bytes:
        rate = self.conference.room_rate(leg.room_id) or leg.choice.codec.sample_rate
        try:
            offer = parse_offer(msg.body) if msg.body.strip() else None
            choice = choose(offer, rate) if offer else leg.choice
        except SdpError as exc:
            self.counters["no_common_codec"] += 1
            # A failed re-INVITE leaves the dialog and its media exactly as they were (RFC 3261 14.2).
            return response(msg, 488, "Not Acceptable Here", extra=[("warning", f'304 fsfarm-mixer "{exc}"')])
        if offer is None:
            # A session refresh without SDP: offer the current stream again; the ACK's answer
            # can only confirm it, since this is the only stream we have.
            return self._ok_with_answer(msg, leg, None)
        contact = msg.get("contact")
        updated = replace(
            leg,
            remote_media=(offer.address, offer.port),
            choice=choice,
            remote_uri=uri_of(contact) if contact else leg.remote_uri,
            offer_version=offer.session_version,
            answer_version=leg.answer_version + 1,
        )
        self.conference.update(updated)
        self.legs[leg.call_id] = updated
        return self._ok_with_answer(msg, updated, offer)

    def _ack(self, msg: SipMessage, source: Address) -> None:
        return None

    def _bye(self, msg: SipMessage, source: Address) -> bytes:
        leg = self.legs.pop(msg.get("call-id"), None)
        if leg is None:
            return response(msg, 481, "Call/Transaction Does Not Exist")
        self.conference.leave(leg.call_id, "bye")
        return response(msg, 200, "OK")

    def _cancel(self, msg: SipMessage, source: Address) -> bytes:
        # INVITEs are answered at once, so there is never a pending one to cancel.
        return response(msg, 481, "Call/Transaction Does Not Exist")

    def _options(self, msg: SipMessage, source: Address) -> bytes:
        return response(msg, 200, "OK", to_tag=self._new_tag(), extra=[("allow", ALLOW), ("accept", "application/sdp")])

    def adopt(self, leg: Leg) -> None:
        """Take over a dialog created by another mixer (room state import)."""
        self.legs[leg.call_id] = leg

    def bye(self, call_id: str) -> tuple[bytes, Address] | None:
        """Hang up a leg from our side (kick): forget it and return the BYE to send."""
        leg = self.legs.pop(call_id, None)
        if leg is None:
            return None
        branch = "z9hG4bK" + secrets.token_hex(8)
        headers = [
            ("via", f"SIP/2.0/UDP {self.contact_host}:{self.contact_port};branch={branch};rport"),
            ("max-forwards", "70"),
            ("from", leg.local_uri),
            ("to", leg.remote_party),
            ("call-id", leg.call_id),
            ("cseq", f"{leg.local_cseq + 1} BYE"),
        ]
        headers += [("route", r) for r in leg.route]
        return request("BYE", leg.remote_uri, headers), leg.signalling
