"""The farm's domain: frozen dataclasses mirroring the tables in ``sql/``, and their public views.

Secrets never leave through ``public()``: users carry only the FreeSWITCH a1-hash, and ESL,
gateway and conference passwords are write-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

CONFERENCE_RATES = {"narrowband": 8000, "wideband": 16000, "hd": 48000}
TOLL_CLASSES = ("local", "domestic", "international")
NUMBER_TARGETS = ("user", "conference", "ivr", "voicemail")
TOKEN_SCOPES = ("farm-admin", "tenant-admin", "node-join")


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
            out[f.name] = value
        return out


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
    admin_state: str = "active"
    health: str = "unknown"
    health_reason: str = ""
    health_at: datetime | None = None
    seen_alive_at: datetime | None = None  # last time its watcher judged it up; None: never seen alive
    xmlcurl_user: str = ""  # the basic-auth user of its own xml_curl credentials; empty: none issued
    xmlcurl_secret_hash: str = ""  # secret_hash of its xml_curl password (shown once, when issued)

    secret_fields: ClassVar[tuple[str, ...]] = ("esl_password", "xmlcurl_secret_hash")

    @property
    def placeable(self) -> bool:
        """Can take tenants now: active, not a spare, not known dead."""
        return self.admin_state == "active" and not self.spare and self.health != "down"


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
    admin_state: str = "active"
    health: str = "unknown"

    @property
    def placeable(self) -> bool:
        return self.admin_state == "active" and self.health != "down"


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
