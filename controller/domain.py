"""The farm's domain: frozen dataclasses mirroring the tables in ``sql/``, their public views, the
state sets their columns allow (as ``StrEnum``s equal to the CHECK constraints), and ``HostPort``.

Secrets never leave through ``public()``: users carry only the FreeSWITCH a1-hash, and ESL,
gateway and conference passwords are write-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

CONFERENCE_RATES = {"narrowband": 8000, "wideband": 16000, "hd": 48000}
TOLL_CLASSES = ("local", "domestic", "international")
NUMBER_TARGETS = ("user", "conference", "ivr", "voicemail")
TOKEN_SCOPES = ("farm-admin", "tenant-admin", "node-join", "metrics")
CONSOLE_SCOPES = ("farm-admin", "tenant-admin")  # the tokens that may sign in to the web console
SIP_PORT = 5060  # taken when a node's or a carrier's SIP address gives no port
ESL_PORT = 8021  # mod_event_socket's own default, taken when an ESL address gives no port
STUN_PORT = 3478  # taken when a node's STUN server gives no port


# Each enum equals a CHECK in sql/ (tests/test_domain_types.py); StrEnum: JSON, SQL and print see plain text.


class NodeHealth(StrEnum):
    """``nodes.health``: what the node's ESL watcher last concluded."""

    UNKNOWN = "unknown"  # never judged, or never seen alive yet
    UP = "up"
    SUSPECT = "suspect"  # heartbeats late or the connection lost: not yet a death
    DOWN = "down"


class AdminState(StrEnum):
    """``nodes.admin_state``: what the operator wants of a node."""

    ACTIVE = "active"
    DRAINING = "draining"  # takes no new tenants; disabled once its last call ends
    DISABLED = "disabled"
    PENDING = "pending"  # joined by itself; becomes active on its first heartbeat


class MixerHealth(StrEnum):
    """``mixers.health``: what the mixer loop's health checks last concluded."""

    UNKNOWN = "unknown"
    UP = "up"
    SUSPECT = "suspect"
    DOWN = "down"


class MixerAdminState(StrEnum):
    """``mixers.admin_state``: what the operator wants of a mixer (no self-joining, so no ``pending``)."""

    ACTIVE = "active"
    DRAINING = "draining"
    DISABLED = "disabled"


class FailoverState(StrEnum):
    """``failovers.state``: how far one decided failover got."""

    DECIDED = "decided"  # recorded, nothing moved yet
    MOVED = "moved"  # tenants and rooms moved in one transaction; the after-move steps remain
    DONE = "done"
    FAILED = "failed"


class LedgerKind(StrEnum):
    """``ledger_entries.kind``: money in (top-up, credit), either way (adjustment), out (a rated call leg)."""

    TOP_UP = "top-up"
    CREDIT = "credit"
    ADJUSTMENT = "adjustment"
    CALL = "call"


class CommandStatus(StrEnum):
    """``esl_command_jobs.status``: a bgapi job until its BACKGROUND_JOB answer arrives."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")


@dataclass(frozen=True)
class HostPort:
    """A checked ``host:port``: an IPv4 address, an IPv6 address (written ``[addr]:port``) or an RFC 1123 name."""

    host: str  # IPv6 without its brackets
    port: int

    def __str__(self) -> str:
        return f"{self.uri_host}:{self.port}"

    @property
    def uri_host(self) -> str:
        """The host as written in a URI or before ``:port``: an IPv6 address in brackets."""
        return f"[{self.host}]" if ":" in self.host else self.host

    @classmethod
    def parse(cls, value: str, default_port: int | None = None) -> HostPort:
        """Parse ``host[:port]``; raise ValueError saying what is wrong (the port may be left out with a default)."""
        if value.startswith("["):
            inner, sep, rest = value[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError("an IPv6 address is written [address]:port")
            host, port = inner, rest[1:] if rest else ""
            try:
                host = str(ipaddress.IPv6Address(host))
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv6 address") from None
        elif value.count(":") > 1:
            raise ValueError("an IPv6 address goes in brackets: [address]:port")
        else:
            host, _, port = value.partition(":")
            host = _check_host(host)
        return cls(host, _check_port(port, default_port))


def _check_host(host: str) -> str:
    if not host:
        raise ValueError("the host is missing")
    if _DOTTED_NUMBERS.match(host):  # all digits and dots: only an IPv4 address reads that way
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{host} is not an IPv4 address (four numbers from 0 to 255)") from None
    labels = host.rstrip(".").split(".") if host != "." else [""]
    if len(host) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{host!r} is not a host name (letters, digits and inner hyphens, dot-separated labels of at most 63)"
        )
    return host.lower()


def _check_port(port: str, default_port: int | None) -> int:
    if not port:
        if default_port is None:
            raise ValueError("the port is missing (host:port)")
        return default_port
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:  # "²".isdigit() but int() refuses it
        raise ValueError(f"the port must be a number from 1 to 65535, not {port!r}")
    return int(port)


def a1_hash(user: str, domain: str, password: str) -> str:
    """The digest FreeSWITCH checks SIP auth against: md5 of ``user:domain:password``."""
    return hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()


def secret_hash(secret: str) -> str:
    """What is stored for a random machine secret (a node's xml_curl password): its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    """Columns shared by every row: app-made UUID key and the last-writer-wins timestamps."""

    id: UUID
    created_at: datetime | None = field(default=None, kw_only=True)
    updated_at: datetime | None = field(default=None, kw_only=True)

    secret_fields: ClassVar[tuple[str, ...]] = ()

    def public(self) -> dict[str, Any]:
        """The JSON view: secrets dropped, a ``<name>_set`` flag in place of each write-only one."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.secret_fields:
                out[f"{f.name}_set"] = bool(value)
                continue
            if isinstance(value, UUID):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Decimal):  # money: exact text, never a float
                value = str(value)
            out[f.name] = value
        return out


# sofia's "no device left behind" workarounds a node may turn on for its phones: field value -> profile param.
NDLB_OPTIONS = {
    "force-rport": "NDLB-force-rport",  # answer to the source port even when a phone's Via lacks rport
    "received-in-nat-reg-contact": "NDLB-received-in-nat-reg-contact",  # register the seen address, not Contact
    "broken-auth-hash": "NDLB-broken-auth-hash",  # phones hashing the digest with the wrong method
    "sendrecv-in-session": "NDLB-sendrecv-in-session",  # phones that need a=sendrecv at the session level
    "allow-bad-iananame": "NDLB-allow-bad-iananame",  # codec names spelled wrongly in SDP
}
# FreeSWITCH's built-in network lists a node's apply-nat-acl may name.
NAT_ACLS = ("nat.auto", "rfc1918.auto", "localnet.auto", "rfc6598.auto")


@dataclass(frozen=True)
class Node(Record):
    name: str
    switchname: str
    sip_address: str
    esl_address: str
    esl_password: str
    rtp_port_min: int
    rtp_port_max: int
    capacity: int
    spare: bool = False
    admin_state: AdminState = AdminState.ACTIVE
    health: NodeHealth = NodeHealth.UNKNOWN
    health_reason: str = ""
    health_at: datetime | None = None
    seen_alive_at: datetime | None = None  # last time its watcher judged it up; None: never seen alive
    xmlcurl_user: str = ""  # the basic-auth user of its own xml_curl credentials; empty: none issued
    xmlcurl_secret_hash: str = ""  # secret_hash of its xml_curl password (shown once, when issued)
    heir_id: UUID | None = None  # the node answering at this one's address since its failover (None: itself)
    ws_port: int = 0  # sofia's SIP-over-WebSocket binding on the SIP host (0: none)
    wss_port: int = 0  # the same over TLS, with wss.pem from the node's certs dir (0: none)
    ext_sip_ip: str = ""  # public signalling address put in SIP ("": the SIP host; "auto-nat": sofia learns it)
    ext_rtp_ip: str = ""  # public media address put in SDP (same values)
    stun_server: str = ""  # host:port sofia asks for the public addresses left ""
    nat_acl: str = ""  # ACL of the phones treated as behind NAT (sofia's apply-nat-acl; "": none)
    ndlb: tuple[str, ...] = ()  # sofia NDLB-* workarounds on (NDLB_OPTIONS)

    secret_fields: ClassVar[tuple[str, ...]] = ("esl_password", "xmlcurl_secret_hash")

    @property
    def placeable(self) -> bool:
        """Can take tenants now: active, not a spare, not known dead."""
        return self.admin_state == AdminState.ACTIVE and not self.spare and self.health != NodeHealth.DOWN


@dataclass(frozen=True)
class Tenant(Record):
    domain: str
    name: str
    pinned_node_id: UUID | None = None
    enabled: bool = True


@dataclass(frozen=True)
class User(Record):
    tenant_id: UUID
    extension: str
    a1_hash: str
    display_name: str = ""
    caller_id_name: str = ""
    caller_id_number: str = ""
    toll_allow: tuple[str, ...] = ("local",)
    accountcode: str = ""
    ring_timeout: int = 25
    voicemail: bool = True
    vm_a1_hash: str = ""
    vm_email: str = ""
    enabled: bool = True
    console_admin: bool = False  # may sign in to the web console as its tenant's admin

    secret_fields: ClassVar[tuple[str, ...]] = ("a1_hash", "vm_a1_hash")


@dataclass(frozen=True)
class Conference(Record):
    tenant_id: UUID
    number: str
    name: str
    profile: str = "wideband"
    pin: str = ""
    max_members: int = 50
    record: bool = False
    pinned_node_id: UUID | None = None
    state: dict[str, Any] = field(default_factory=dict)

    secret_fields: ClassVar[tuple[str, ...]] = ("pin",)

    @property
    def rate(self) -> int:
        return CONFERENCE_RATES[self.profile]


@dataclass(frozen=True)
class Ivr(Record):
    tenant_id: UUID
    name: str
    extension: str = ""
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Gateway(Record):
    tenant_id: UUID
    name: str
    proxy: str
    username: str = ""
    password: str = ""
    register: bool = False
    caller_id_number: str = ""
    caller_id_name: str = ""
    dial_pattern: str = r"^\+?[0-9]{7,15}$"
    strip_plus: bool = False

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)


@dataclass(frozen=True)
class Number(Record):
    tenant_id: UUID
    number: str
    target_type: str
    target: str
    description: str = ""


@dataclass(frozen=True)
class Mixer(Record):
    name: str
    sip_address: str
    control_url: str
    capacity: int = 500
    admin_state: MixerAdminState = MixerAdminState.ACTIVE
    health: MixerHealth = MixerHealth.UNKNOWN
    control_token: str = ""  # the bearer token its control API wants

    secret_fields: ClassVar[tuple[str, ...]] = ("control_token",)

    @property
    def placeable(self) -> bool:
        return self.admin_state == MixerAdminState.ACTIVE and self.health != MixerHealth.DOWN


@dataclass(frozen=True)
class ApiToken(Record):
    token_hash: str
    scope: str
    tenant_id: UUID | None = None
    label: str = ""
    expires_at: datetime | None = None
    revoked: bool = False
    last_used_at: datetime | None = None

    secret_fields: ClassVar[tuple[str, ...]] = ("token_hash",)


@dataclass(frozen=True)
class ConsoleSession(Record):
    """A browser's sign-in to the web console: from a bearer token (``token_id``) or a user's password."""

    secret_hash: str
    csrf_token: str
    scope: str
    expires_at: datetime
    tenant_id: UUID | None = None
    token_id: UUID | None = None
    user_id: UUID | None = None
    label: str = ""
    revoked: bool = False

    secret_fields: ClassVar[tuple[str, ...]] = ("secret_hash", "csrf_token")


@dataclass(frozen=True)
class RateDeck(Record):
    tenant_id: UUID | None  # None: the farm's shared deck
    name: str
    currency: str
    description: str = ""


@dataclass(frozen=True)
class Rate(Record):
    deck_id: UUID
    prefix: str
    price_per_minute: Decimal
    connect_fee: Decimal = Decimal(0)
    first_increment: int = 1
    next_increment: int = 1
    description: str = ""


@dataclass(frozen=True)
class DeckAssignment(Record):
    tenant_id: UUID
    deck_id: UUID
    effective_from: datetime
    margin_percent: Decimal = Decimal(0)


@dataclass(frozen=True)
class BillingAccount(Record):
    tenant_id: UUID
    user_id: UUID | None  # None: the tenant's own account
    currency: str
    low_balance: Decimal = Decimal(0)


@dataclass(frozen=True)
class LedgerEntry(Record):
    account_id: UUID
    tenant_id: UUID
    kind: LedgerKind
    amount: Decimal
    reference: str
    note: str = ""
    channel_uuid: str | None = None
    node_id: UUID | None = None
    destination: str = ""
    prefix: str = ""
    deck_id: UUID | None = None
    billsec: int = 0
    billed_seconds: int = 0
    price_per_minute: Decimal | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class PlacementGeneration(Record):
    generation: int
    reason: str
    moved: int


@dataclass(frozen=True)
class TenantPlacement:
    tenant_id: UUID
    node_id: UUID | None
    generation: int


@dataclass(frozen=True)
class ConferencePlacement:
    conference_id: UUID
    node_id: UUID | None
    mixer_id: UUID | None
    generation: int
