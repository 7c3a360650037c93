"""The few reads an xml_curl answer needs, each one query, always scoped to tenants placed on the asking node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Conference, Gateway, Ivr, Mixer, Node, Number, Tenant, User
from controller.stores import rows
from controller.stores import tenants as tenant_store

Conn = psycopg.Connection[Any]


def placed_tenant(conn: Conn, domain: str, node_id: UUID) -> Tenant | None:
    """The enabled tenant with this domain, only if it is placed on this node."""
    found = rows.select(
        conn,
        Tenant,
        """SELECT t.* FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
           WHERE t.domain = %s AND p.node_id = %s AND t.enabled""",
        [domain.lower(), node_id],
    )
    return found[0] if found else None


def tenant_on_node(conn: Conn, tenant_id: UUID, node_id: UUID) -> Tenant | None:
    found = rows.select(
        conn,
        Tenant,
        """SELECT t.* FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
           WHERE t.id = %s AND p.node_id = %s AND t.enabled""",
        [tenant_id, node_id],
    )
    return found[0] if found else None


def tenants_on_node(conn: Conn, node_id: UUID) -> list[Tenant]:
    return rows.select(
        conn,
        Tenant,
        """SELECT t.* FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
           WHERE p.node_id = %s AND t.enabled ORDER BY t.domain""",
        [node_id],
    )


def gateways_on_node(conn: Conn, node_id: UUID) -> list[tuple[Tenant, Gateway]]:
    tenants = {t.id: t for t in tenants_on_node(conn, node_id)}
    if not tenants:
        return []
    found = rows.select(
        conn, Gateway, "SELECT * FROM gateways WHERE tenant_id = ANY(%s) ORDER BY name", [list(tenants)]
    )
    return sorted(((tenants[g.tenant_id], g) for g in found), key=lambda tg: (tg[0].domain, tg[1].name))


def user(conn: Conn, tenant_id: UUID, extension: str) -> User | None:
    found = rows.select(
        conn, User, "SELECT * FROM users WHERE tenant_id = %s AND extension = %s AND enabled", [tenant_id, extension]
    )
    return found[0] if found else None


def conference(conn: Conn, tenant_id: UUID, number: str) -> Conference | None:
    found = rows.select(
        conn, Conference, "SELECT * FROM conferences WHERE tenant_id = %s AND number = %s", [tenant_id, number]
    )
    return found[0] if found else None


def conference_by_id(conn: Conn, room_id: UUID) -> Conference | None:
    return rows.get(conn, "conferences", Conference, room_id)


def ivr_by_extension(conn: Conn, tenant_id: UUID, extension: str) -> Ivr | None:
    found = rows.select(conn, Ivr, "SELECT * FROM ivrs WHERE tenant_id = %s AND extension = %s", [tenant_id, extension])
    return found[0] if found else None


def ivr_by_name(conn: Conn, tenant_id: UUID, name: str) -> Ivr | None:
    found = rows.select(conn, Ivr, "SELECT * FROM ivrs WHERE tenant_id = %s AND name = %s", [tenant_id, name])
    return found[0] if found else None


def gateways(conn: Conn, tenant_id: UUID) -> list[Gateway]:
    return rows.select(conn, Gateway, "SELECT * FROM gateways WHERE tenant_id = %s ORDER BY name", [tenant_id])


def number(conn: Conn, did: str) -> Number | None:
    """A DID as the carrier sent it, with or without its leading +."""
    candidates = [did, did[1:]] if did.startswith("+") else [did, "+" + did]
    found = rows.select(conn, Number, "SELECT * FROM numbers WHERE number = ANY(%s) ORDER BY number DESC", [candidates])
    return found[0] if found else None


def conference_place(conn: Conn, room_id: UUID) -> tuple[Node | None, Mixer | None]:
    """The node or mixer that runs a room now."""
    row = conn.execute(
        "SELECT node_id, mixer_id FROM conference_placements WHERE conference_id = %s", [room_id]
    ).fetchone()
    if row is None:
        return None, None
    node = rows.get(conn, "nodes", Node, row["node_id"]) if row["node_id"] else None
    mixer = rows.get(conn, "mixers", Mixer, row["mixer_id"]) if row["mixer_id"] else None
    return node, mixer


def all_nodes(conn: Conn) -> list[Node]:
    return rows.select(conn, Node, "SELECT * FROM nodes ORDER BY name")


def all_mixers(conn: Conn) -> list[Mixer]:
    return rows.select(conn, Mixer, "SELECT * FROM mixers ORDER BY name")


class SqlReads:
    """The reads an answer makes, as queries on one connection (the path used while no snapshot is loaded).

    ``placed`` replaces ``placed_tenant`` (the web side passes its cached version).
    """

    def __init__(self, conn: Conn, placed: Callable[[Conn, str, UUID], Tenant | None] | None = None) -> None:
        self.conn = conn
        self._placed = placed or placed_tenant

    def placed_tenant(self, domain: str, node_id: UUID) -> Tenant | None:
        return self._placed(self.conn, domain, node_id)

    def tenant_on_node(self, tenant_id: UUID, node_id: UUID) -> Tenant | None:
        return tenant_on_node(self.conn, tenant_id, node_id)

    def tenants_on_node(self, node_id: UUID) -> list[Tenant]:
        return tenants_on_node(self.conn, node_id)

    def gateways_on_node(self, node_id: UUID) -> list[tuple[Tenant, Gateway]]:
        return gateways_on_node(self.conn, node_id)

    def tenant(self, tenant_id: UUID) -> Tenant | None:
        return tenant_store.get(self.conn, tenant_id)

    def user(self, tenant_id: UUID, extension: str) -> User | None:
        return user(self.conn, tenant_id, extension)

    def conference(self, tenant_id: UUID, number: str) -> Conference | None:
        return conference(self.conn, tenant_id, number)

    def conference_by_id(self, room_id: UUID) -> Conference | None:
        return conference_by_id(self.conn, room_id)

    def ivr_by_extension(self, tenant_id: UUID, extension: str) -> Ivr | None:
        return ivr_by_extension(self.conn, tenant_id, extension)

    def ivr_by_name(self, tenant_id: UUID, name: str) -> Ivr | None:
        return ivr_by_name(self.conn, tenant_id, name)

    def gateways(self, tenant_id: UUID) -> list[Gateway]:
        return gateways(self.conn, tenant_id)

    def number(self, did: str) -> Number | None:
        return number(self.conn, did)

    def conference_place(self, room_id: UUID) -> tuple[Node | None, Mixer | None]:
        return conference_place(self.conn, room_id)

    def all_nodes(self) -> list[Node]:
        return all_nodes(self.conn)

    def all_mixers(self) -> list[Mixer]:
        return all_mixers(self.conn)
