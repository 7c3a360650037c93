"""What an admin can do to the farm, shared by the REST API and the CLI.

Each function runs in one transaction: it either does everything it says or nothing. Writes
that can change where tenants or rooms run end by recomputing placement in the same transaction.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg

from controller import validation as v
from controller.assignment import reassign
from controller.database import Database
from controller.domain import (
    ESL_PORT,
    NUMBER_TARGETS,
    SIP_PORT,
    TOKEN_SCOPES,
    TOLL_CLASSES,
    AdminState,
    ApiToken,
    Conference,
    Gateway,
    Ivr,
    Mixer,
    Node,
    Number,
    PlacementGeneration,
    Tenant,
    User,
    a1_hash,
)
from controller.errors import Conflict, Invalid, NotFound
from controller.failover import choose_spare
from controller.stores import (
    changes,
    conferences,
    failovers,
    gateways,
    ivrs,
    mixers,
    nodes,
    numbers,
    placements,
    tenants,
    tokens,
    tombstones,
    users,
)
from controller.stores.changes import Notice
from controller.stores.children import TenantChildStore

Conn = psycopg.Connection[Any]

# ---------------------------------------------------------------- nodes

NODE_FIELDS = {
    "name": v.Field(v.slug, required=True),
    "switchname": v.Field(v.text),
    "sip_address": v.Field(v.host_port(SIP_PORT), required=True),
    "esl_address": v.Field(v.host_port(ESL_PORT), required=True),
    "esl_password": v.Field(v.secret, required=True),
    "rtp_port_min": v.Field(v.integer(1024, 65534)),
    "rtp_port_max": v.Field(v.integer(1025, 65535)),
    "capacity": v.Field(v.integer(1, 100_000)),
    "spare": v.Field(v.boolean),
    "admin_state": v.Field(
        v.one_of(AdminState.ACTIVE, AdminState.DRAINING, AdminState.DISABLED)
    ),  # pending: only a join sets it
}


def _check_rtp(values: dict[str, Any]) -> None:
    if values["rtp_port_min"] >= values["rtp_port_max"]:
        raise Invalid(
            "rtp_port_min must be below rtp_port_max",
            {"rtp_port_min": values["rtp_port_min"], "rtp_port_max": values["rtp_port_max"]},
        )


def node_values(fields: dict[str, v.Field], data: Any) -> dict[str, Any]:
    """A new node's checked fields with the farm's defaults (admin API and self-join alike)."""
    values = v.parse(fields, data)
    values.setdefault("switchname", values["name"])
    values.setdefault("rtp_port_min", 16384)
    values.setdefault("rtp_port_max", 32768)
    values.setdefault("capacity", 1000)
    _check_rtp(values)
    return values


def add_node(db: Database, data: Any) -> Node:
    """Register a FreeSWITCH node; spares take no tenants until a failover.

    Its xml_curl password is issued but not returned: ``register_node`` returns it too.
    """
    return register_node(db, data)[0]


def register_node(db: Database, data: Any) -> tuple[Node, str]:
    """Register a FreeSWITCH node with its own xml_curl credentials; return it and its password (shown once)."""
    values = node_values(NODE_FIELDS, data)
    with db.transaction() as conn:
        node, password = nodes.issue_xmlcurl_credentials(conn, nodes.insert(conn, Node(id=uuid.uuid4(), **values)))
        changes.announce(conn, Notice.NODE)
        reassign(conn, f"node {node.name} added", joined=[node.id])
    return node, password


def rotate_xmlcurl_credentials(db: Database, ref: str) -> tuple[Node, str]:
    """A new xml_curl password for a node (``fsfarm node rotate-xmlcurl``); the node needs it in its xml_curl.conf."""
    with db.transaction() as conn:
        node, password = nodes.issue_xmlcurl_credentials(conn, get_node(conn, ref))
        changes.announce(conn, Notice.NODE)
    return node, password


def get_node(conn: Conn, ref: str) -> Node:
    node = nodes.get(conn, ref)
    if node is None:
        raise NotFound(f"no node {ref!r}")
    return node


def update_node(db: Database, ref: str, data: Any) -> Node:
    updates = v.parse(NODE_FIELDS, data, partial=True)
    with db.transaction() as conn:
        node = get_node(conn, ref)
        merged = {"rtp_port_min": node.rtp_port_min, "rtp_port_max": node.rtp_port_max, **updates}
        _check_rtp(merged)
        updated = nodes.update(conn, node.id, updates)
        assert updated is not None
        changes.announce(conn, Notice.NODE)
        became_placeable = updated.placeable and not node.placeable
        reassign(
            conn,
            f"node {node.name} changed ({', '.join(sorted(updates))})",
            joined=[node.id] if became_placeable else [],
        )
    return updated


def drain_node(db: Database, ref: str) -> Node:
    """Stop placing tenants on a node; its tenants move to the others now, its calls in progress stay.

    When no other node can take the tenants, the best free spare becomes active first (as a failover
    would do), so draining the only active node never leaves its tenants on no node.
    """
    with db.transaction() as conn:
        node = get_node(conn, ref)
        others = [n for n in nodes.list_all(conn) if n.id != node.id]
        spare = None
        if placements.tenants_on_node(conn, node.id) and not any(n.placeable for n in others):
            spare = choose_spare(others)
            if spare is not None:
                nodes.update(conn, spare.id, {"spare": False})
        updated = nodes.update(conn, node.id, {"admin_state": AdminState.DRAINING})
        assert updated is not None
        changes.announce(conn, Notice.NODE)
        taker = f"; spare {spare.name} takes its tenants" if spare else ""
        reassign(conn, f"node {node.name} draining{taker}", joined=[spare.id] if spare else [])
    return updated


def remove_node(db: Database, ref: str, force: bool = False) -> Node:
    """Delete a node; refused while it hosts tenants unless forced (they move elsewhere).

    Its failover records stay, naming it.
    """
    with db.transaction() as conn:
        node = get_node(conn, ref)
        hosted = placements.tenants_on_node(conn, node.id)
        if hosted and not force:
            raise Conflict(
                f"node {node.name} still hosts {len(hosted)} tenant(s): drain it first or force",
                {"tenants": len(hosted)},
            )
        failovers.keep_names(conn, node.id, node.name)
        nodes.delete(conn, node.id)
        changes.announce(conn, Notice.NODE)
        reassign(conn, f"node {node.name} removed")
    return node


# ---------------------------------------------------------------- mixers

MIXER_FIELDS = {
    "name": v.Field(v.slug, required=True),
    "sip_address": v.Field(v.host_port(5090), required=True),
    "control_url": v.Field(v.http_url, required=True),
    "control_token": v.Field(v.bearer_token, required=True),  # what the mixer's --token-file holds
    "capacity": v.Field(v.integer(1, 100_000)),
}


def add_mixer(db: Database, data: Any) -> Mixer:
    values = v.parse(MIXER_FIELDS, data)
    with db.transaction() as conn:
        mixer = mixers.insert(conn, Mixer(id=uuid.uuid4(), **values))
        changes.announce(conn, Notice.MIXER)  # nodes' acl.conf lists mixers: the snapshot and the nodes must hear of it
        reassign(conn, f"mixer {mixer.name} added", joined=[mixer.id])
    return mixer


MIXER_TOKEN_FIELDS = {"control_token": MIXER_FIELDS["control_token"]}


def set_mixer_token(db: Database, ref: str, data: Any) -> Mixer:
    """Replace the control token the controller sends to a mixer (after its --token-file changed)."""
    token = v.parse(MIXER_TOKEN_FIELDS, data)["control_token"]
    with db.transaction() as conn:
        mixer = mixers.get(conn, ref)
        changed = mixers.set_control_token(conn, mixer.id, token) if mixer is not None else None
        if changed is None:
            raise NotFound(f"no mixer {ref!r}")
    return changed


def remove_mixer(db: Database, ref: str) -> Mixer:
    with db.transaction() as conn:
        mixer = mixers.get(conn, ref)
        if mixer is None:
            raise NotFound(f"no mixer {ref!r}")
        mixers.delete(conn, mixer.id)
        changes.announce(conn, Notice.MIXER)
        reassign(conn, f"mixer {mixer.name} removed")
    return mixer


# ---------------------------------------------------------------- tenants

TENANT_FIELDS = {
    "domain": v.Field(v.sip_domain, required=True),
    "name": v.Field(v.text),
    "pinned_node": v.Field(v.reference),
    "enabled": v.Field(v.boolean),
}


def _pin(conn: Conn, values: dict[str, Any]) -> None:
    if "pinned_node" in values:
        ref = values.pop("pinned_node")
        values["pinned_node_id"] = get_node(conn, ref).id if ref else None


def add_tenant(db: Database, data: Any) -> Tenant:
    """Create a tenant (SIP domain) and place it on a node."""
    values = v.parse(TENANT_FIELDS, data)
    values.setdefault("name", values["domain"])
    with db.transaction() as conn:
        _pin(conn, values)
        tenant = tenants.insert(conn, Tenant(id=uuid.uuid4(), **values))
        changes.announce(conn, Notice.TENANT, tenant.id)
        reassign(conn, f"tenant {tenant.domain} added")
    return tenant


def get_tenant(conn: Conn, ref: str | UUID) -> Tenant:
    tenant = tenants.get(conn, ref)
    if tenant is None:
        raise NotFound(f"no tenant {str(ref)!r}")
    return tenant


def update_tenant(db: Database, ref: str, data: Any) -> Tenant:
    updates = v.parse(TENANT_FIELDS, data, partial=True)
    if "domain" in updates:
        # The domain is inside every user's a1-hash: renaming would lock every phone out.
        raise Invalid("domain cannot change: create a new tenant instead", {"field": "domain"})
    with db.transaction() as conn:
        tenant = get_tenant(conn, ref)
        _pin(conn, updates)
        updated = tenants.update(conn, tenant.id, updates)
        assert updated is not None
        changes.announce(conn, Notice.TENANT, tenant.id)
        reassign(conn, f"tenant {tenant.domain} changed ({', '.join(sorted(updates))})")
    return updated


def remove_tenant(db: Database, ref: str, force: bool = False) -> Tenant:
    """Delete a tenant and everything in it; refused while it has users or numbers unless forced."""
    with db.transaction() as conn:
        tenant = get_tenant(conn, ref)
        held = {
            "users": len(users.store.list(conn, tenant.id)),
            "numbers": len(numbers.store.list(conn, tenant.id)),
        }
        if any(held.values()) and not force:
            raise Conflict(
                f"tenant {tenant.domain} still has {held['users']} user(s) and "
                f"{held['numbers']} number(s): pass force to delete them too",
                held,
            )
        tenants.delete(conn, tenant.id)
        _bury(conn, f"{tenant.id}/", f"tenant {tenant.domain} deleted")
        changes.announce(conn, Notice.TENANT, tenant.id)
        reassign(conn, f"tenant {tenant.domain} removed")
    return tenant


# ---------------------------------------------------------------- objects inside a tenant


@dataclass(frozen=True)
class Kind:
    """One kind of tenant-owned object: its store, its input fields and how input becomes a row."""

    name: str
    notice: Notice  # what its writes announce
    store: TenantChildStore[Any]
    fields: dict[str, v.Field]
    build: Callable[[Conn, Tenant, dict[str, Any], Any], dict[str, Any]]
    immutable: tuple[str, ...] = ()
    places: bool = False  # writes change placement (rooms)
    referenced_as: str | None = None  # numbers.target_type that may point at it
    extra: dict[str, Any] = field(default_factory=dict)


def _number_free(conn: Conn, tenant: Tenant, number: str, current: Any) -> None:
    used_by = tenants.extension_in_use(conn, tenant.id, number)
    mine = current is not None and number in (getattr(current, "extension", None), getattr(current, "number", None))
    if used_by and not mine:
        raise Conflict(f"{number} already reaches a {used_by} in {tenant.domain}", {"used_by": used_by})


def _build_user(conn: Conn, tenant: Tenant, values: dict[str, Any], current: Any) -> dict[str, Any]:
    ext = values.get("extension") or current.extension
    if current is None:
        _number_free(conn, tenant, ext, None)
        if "password" not in values:
            raise Invalid("missing field(s): password", {"missing": ["password"]})
    if "password" in values:
        password = values.pop("password")
        if password == ext:
            raise Invalid("password: must not equal the extension", {"field": "password"})
        values["a1_hash"] = a1_hash(ext, tenant.domain, password)
    if "vm_pin" in values:
        values["vm_a1_hash"] = a1_hash(ext, tenant.domain, values.pop("vm_pin"))
    return values


def _build_conference(conn: Conn, tenant: Tenant, values: dict[str, Any], current: Any) -> dict[str, Any]:
    if "number" in values:
        _number_free(conn, tenant, values["number"], current)
    if current is None:
        values.setdefault("name", values["number"])
    _pin(conn, values)
    return values


def _build_ivr(conn: Conn, tenant: Tenant, values: dict[str, Any], current: Any) -> dict[str, Any]:
    if values.get("extension"):
        _number_free(conn, tenant, values["extension"], current)
    return values


def _build_gateway(conn: Conn, tenant: Tenant, values: dict[str, Any], current: Any) -> dict[str, Any]:
    return values


def _build_number(conn: Conn, tenant: Tenant, values: dict[str, Any], current: Any) -> dict[str, Any]:
    target_type = values.get("target_type", getattr(current, "target_type", None))
    target = values.get("target", getattr(current, "target", None))
    if target_type and target:
        found = {
            "user": lambda: users.store.get(conn, tenant.id, target),
            "voicemail": lambda: users.store.get(conn, tenant.id, target),
            "conference": lambda: conferences.store.get(conn, tenant.id, target),
            "ivr": lambda: ivrs.store.get(conn, tenant.id, target),
        }[target_type]()
        if found is None:
            raise Invalid(f"target: no {target_type} {target!r} in {tenant.domain}", {"field": "target"})
    return values


KINDS: dict[str, Kind] = {
    "users": Kind(
        "user",
        Notice.USER,
        users.store,
        {
            "extension": v.Field(v.extension, required=True),
            "password": v.Field(v.sip_password),
            "display_name": v.Field(v.text),
            "caller_id_name": v.Field(v.text),
            "caller_id_number": v.Field(v.caller_number),
            "toll_allow": v.Field(v.list_of(*TOLL_CLASSES)),
            "accountcode": v.Field(v.text),
            "ring_timeout": v.Field(v.integer(5, 300)),
            "voicemail": v.Field(v.boolean),
            "vm_pin": v.Field(v.pin),
            "vm_email": v.Field(v.email),
            "enabled": v.Field(v.boolean),
            "console_admin": v.Field(v.boolean),
        },
        _build_user,
        immutable=("extension",),
        referenced_as="user",
    ),
    "conferences": Kind(
        "conference",
        Notice.CONFERENCE,
        conferences.store,
        {
            "number": v.Field(v.extension, required=True),
            "name": v.Field(v.text),
            "profile": v.Field(v.one_of("narrowband", "wideband", "hd")),
            "pin": v.Field(v.pin),
            "max_members": v.Field(v.integer(2, 10_000)),
            "record": v.Field(v.boolean),
            "pinned_node": v.Field(v.reference),
        },
        _build_conference,
        places=True,
        referenced_as="conference",
    ),
    "ivrs": Kind(
        "IVR",
        Notice.IVR,
        ivrs.store,
        {
            "name": v.Field(v.slug, required=True),
            "extension": v.Field(v.extension),
            "description": v.Field(v.text),
            "options": v.Field(v.json_object),
        },
        _build_ivr,
        immutable=("name",),
        referenced_as="ivr",
    ),
    "gateways": Kind(
        "gateway",
        Notice.GATEWAY,
        gateways.store,
        {
            "name": v.Field(v.slug, required=True),
            "proxy": v.Field(v.host_port(SIP_PORT), required=True),
            "username": v.Field(v.text),
            "password": v.Field(v.text),
            "register": v.Field(v.boolean),
            "caller_id_number": v.Field(v.caller_number),
            "caller_id_name": v.Field(v.text),
            "dial_pattern": v.Field(v.regex),
            "strip_plus": v.Field(v.boolean),
        },
        _build_gateway,
    ),
    "numbers": Kind(
        "number",
        Notice.NUMBER,
        numbers.store,
        {
            "number": v.Field(v.did, required=True),
            "target_type": v.Field(v.one_of(*NUMBER_TARGETS), required=True),
            "target": v.Field(v.text, required=True),
            "description": v.Field(v.text),
        },
        _build_number,
        immutable=("number",),
    ),
}

_RECORD_TYPES = {"users": User, "conferences": Conference, "ivrs": Ivr, "gateways": Gateway, "numbers": Number}


def kind(name: str) -> Kind:
    if name not in KINDS:
        raise NotFound(f"no such collection {name!r}")
    return KINDS[name]


def list_children(db: Database, kind_name: str, tenant_ref: str) -> list[Any]:
    k = kind(kind_name)
    with db.transaction() as conn:
        tenant = get_tenant(conn, tenant_ref)
        return k.store.list(conn, tenant.id)


def _get_child(conn: Conn, k: Kind, tenant: Tenant, ref: str) -> Any:
    found = k.store.get(conn, tenant.id, ref)
    if found is None:
        raise NotFound(f"no {k.name} {ref!r} in {tenant.domain}")
    return found


def get_child(db: Database, kind_name: str, tenant_ref: str, ref: str) -> Any:
    k = kind(kind_name)
    with db.transaction() as conn:
        return _get_child(conn, k, get_tenant(conn, tenant_ref), ref)


def add_child(db: Database, kind_name: str, tenant_ref: str, data: Any) -> Any:
    """Create a user, conference, IVR, gateway or number inside a tenant."""
    k = kind(kind_name)
    values = v.parse(k.fields, data)
    with db.transaction() as conn:
        tenant = get_tenant(conn, tenant_ref)
        values = k.build(conn, tenant, values, None)
        record = _RECORD_TYPES[kind_name](id=uuid.uuid4(), tenant_id=tenant.id, **values)
        stored = k.store.insert(conn, record)
        changes.announce(conn, k.notice, tenant.id)
        if k.places:
            reassign(conn, f"{k.name} {_label(stored)} added to {tenant.domain}")
    return stored


def update_child(db: Database, kind_name: str, tenant_ref: str, ref: str, data: Any) -> Any:
    k = kind(kind_name)
    updates = v.parse(k.fields, data, partial=True)
    for name in k.immutable:
        if name in updates:
            raise Invalid(f"{name} cannot change: delete and re-create the {k.name}", {"field": name})
    with db.transaction() as conn:
        tenant = get_tenant(conn, tenant_ref)
        current = _get_child(conn, k, tenant, ref)
        updates = k.build(conn, tenant, updates, current)
        updated = k.store.update(conn, current.id, updates) if updates else current
        changes.announce(conn, k.notice, tenant.id)
        if k.places:
            reassign(conn, f"{k.name} {_label(updated)} changed in {tenant.domain}")
    return updated


def remove_child(db: Database, kind_name: str, tenant_ref: str, ref: str) -> Any:
    """Delete an object; refused while a phone number still routes to it."""
    k = kind(kind_name)
    with db.transaction() as conn:
        tenant = get_tenant(conn, tenant_ref)
        current = _get_child(conn, k, tenant, ref)
        key = _label(current)
        if k.referenced_as:
            pointing = [
                n.number
                for n in numbers.store.list(conn, tenant.id)
                if n.target == key
                and (n.target_type == k.referenced_as or (k.referenced_as == "user" and n.target_type == "voicemail"))
            ]
            if pointing:
                raise Conflict(
                    f"number(s) {', '.join(pointing)} still route to this {k.name}: repoint or delete them first",
                    {"numbers": pointing},
                )
        k.store.delete(conn, current.id)
        if kind_name == "users":
            _bury(conn, f"{tenant.id}/voicemail/{current.extension}/", f"user {key}@{tenant.domain} deleted")
        changes.announce(conn, k.notice, tenant.id)
        if k.places:
            reassign(conn, f"{k.name} {key} removed from {tenant.domain}")
    return current


def _bury(conn: Conn, prefix: str, reason: str) -> None:
    """Ask the storage sweep to remove files whose owner this transaction deletes."""
    tombstones.bury(conn, prefix, reason)


def _label(record: Any) -> str:
    for name in ("extension", "number", "name"):
        value = getattr(record, name, None)
        if value:
            return str(value)
    return str(record.id)


# ---------------------------------------------------------------- placement view


def _without_other_tenants(reason: str, domains: list[str]) -> str:
    """``reason`` with every other tenant's domain replaced, for a tenant admin's eyes."""
    if not domains:
        return reason
    names = "|".join(re.escape(d) for d in sorted(domains, key=len, reverse=True))
    return re.sub(rf"(?<![a-z0-9.-])(?:{names})(?![a-z0-9-]|\.[a-z0-9])", "another tenant", reason)


def placement_overview(db: Database, tenant_id: UUID | None = None) -> dict[str, Any]:
    """Where every tenant and room runs now, with the generation that decided it."""
    with db.transaction() as conn:
        latest: PlacementGeneration | None = placements.latest(conn)
        node_names = {n.id: n.name for n in nodes.list_all(conn)}
        mixer_names = {m.id: m.name for m in mixers.list_all(conn)}
        tenant_rows = {t.id: t for t in tenants.list_all(conn)}
        tenant_nodes = {p.tenant_id: p for p in placements.tenant_placements(conn)}
        room_places = {p.conference_id: p for p in placements.conference_placements(conn)}
        rooms = conferences.list_all(conn)
    out_tenants = []
    for tid, tenant in tenant_rows.items():
        if tenant_id and tid != tenant_id:
            continue
        p = tenant_nodes.get(tid)
        out_tenants.append(
            {
                "tenant": tenant.domain,
                "node": node_names.get(p.node_id) if p and p.node_id else None,
                "generation": p.generation if p else None,
                "pinned": tenant.pinned_node_id is not None,
            }
        )
    out_rooms = []
    for room in rooms:
        if tenant_id and room.tenant_id != tenant_id:
            continue
        p = room_places.get(room.id)
        out_rooms.append(
            {
                "tenant": tenant_rows[room.tenant_id].domain,
                "conference": room.number,
                "profile": room.profile,
                "node": node_names.get(p.node_id) if p and p.node_id else None,
                "mixer": mixer_names.get(p.mixer_id) if p and p.mixer_id else None,
            }
        )
    reason = latest.reason if latest else None
    if reason and tenant_id:
        reason = _without_other_tenants(reason, [t.domain for tid, t in tenant_rows.items() if tid != tenant_id])
    return {
        "generation": latest.generation if latest else 0,
        "reason": reason,
        "decided_at": latest.created_at.isoformat() if latest and latest.created_at else None,
        "tenants": sorted(out_tenants, key=lambda r: r["tenant"]),
        "conferences": sorted(out_rooms, key=lambda r: (r["tenant"], r["conference"])),
    }


# ---------------------------------------------------------------- tokens


TOKEN_LIFETIME = v.integer(60, 10 * 365 * 86400)  # expires_in: a minute to ten years, in seconds


def create_token(
    db: Database, scope: str, tenant_ref: str | None = None, label: str = "", expires_in: Any = None
) -> tuple[str, ApiToken]:
    """Issue a bearer token (expiring ``expires_in`` seconds from now, or never); the token itself is
    returned once and only its hash is stored."""
    if scope not in TOKEN_SCOPES:
        raise Invalid(f"scope: must be one of {', '.join(TOKEN_SCOPES)}", {"field": "scope"})
    if (scope == "tenant-admin") != bool(tenant_ref):
        raise Invalid("a tenant-admin token needs a tenant, and only it does", {"field": "tenant"})
    lifetime = None if expires_in is None else TOKEN_LIFETIME("expires_in", expires_in)
    token = tokens.TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as conn:
        tenant_id = get_tenant(conn, tenant_ref).id if tenant_ref else None
        now = conn.execute("SELECT now()").fetchone()  # the created_at the row gets
        assert now is not None
        stored = tokens.insert(
            conn,
            ApiToken(
                id=uuid.uuid4(),
                token_hash=tokens.hash_token(token),
                scope=scope,
                tenant_id=tenant_id,
                label=v.text("label", label),
                expires_at=now["now"] + timedelta(seconds=lifetime) if lifetime is not None else None,
            ),
        )
    return token, stored


def list_tokens(db: Database, tenant_id: UUID | None = None) -> list[dict[str, Any]]:
    """Every token (or only those of one tenant), oldest first, with its tenant's domain; never the token itself."""
    with db.transaction() as conn:
        found = tokens.list_all(conn)
        domains = {t.id: t.domain for t in tenants.list_all(conn)}
    return [
        {**t.public(), "tenant": domains.get(t.tenant_id) if t.tenant_id else None}
        for t in found
        if tenant_id is None or t.tenant_id == tenant_id
    ]


def revoke_token(db: Database, ref: str) -> ApiToken:
    """Revoke a token by its id (revoking it again changes nothing); it stops working at once."""
    try:
        token_id = UUID(ref)
    except ValueError:
        raise Invalid(f"id: not a token id: {ref[:60]!r}", {"field": "id"}) from None
    with db.transaction() as conn:
        revoked = tokens.revoke(conn, token_id)
    if revoked is None:
        raise NotFound(f"no token {ref!r}")
    return revoked
