"""The few reads an xml_curl answer needs, each one store query, always scoped to tenants placed on the asking node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Conference, Gateway, Ivr, Mixer, Node, Number, Tenant, User
from controller.stores import conferences, ivrs, mixers, nodes, numbers, placements, users
from controller.stores import gateways as gateway_store
from controller.stores import tenants as tenant_store

Conn = psycopg.Connection[Any]


def placed_tenant(conn: Conn, domain: str, node_id: UUID) -> Tenant | None:
    """The enabled tenant with this domain, only if it is placed on this node."""
    return placements.placed_tenant(conn, domain, node_id)


def tenant_on_node(conn: Conn, tenant_id: UUID, node_id: UUID) -> Tenant | None:
    return placements.enabled_tenant_on_node(conn, tenant_id, node_id)


def tenants_on_node(conn: Conn, node_id: UUID) -> list[Tenant]:
    return placements.enabled_tenants_on_node(conn, node_id)


def gateways_on_node(conn: Conn, node_id: UUID) -> list[tuple[Tenant, Gateway]]:
    tenants = {t.id: t for t in tenants_on_node(conn, node_id)}
    if not tenants:
        return []
    found = gateway_store.of_tenants(conn, tenants)
    return sorted(((tenants[g.tenant_id], g) for g in found), key=lambda tg: (tg[0].domain, tg[1].name))


def user(conn: Conn, tenant_id: UUID, extension: str) -> User | None:
    return users.enabled(conn, tenant_id, extension)


def conference(conn: Conn, tenant_id: UUID, number: str) -> Conference | None:
    return conferences.by_number(conn, tenant_id, number)


def conference_by_id(conn: Conn, room_id: UUID) -> Conference | None:
    return conferences.by_id(conn, room_id)


def ivr_by_extension(conn: Conn, tenant_id: UUID, extension: str) -> Ivr | None:
    return ivrs.by_extension(conn, tenant_id, extension)


def ivr_by_name(conn: Conn, tenant_id: UUID, name: str) -> Ivr | None:
    return ivrs.by_name(conn, tenant_id, name)


def gateways(conn: Conn, tenant_id: UUID) -> list[Gateway]:
    return gateway_store.store.list(conn, tenant_id)


def number(conn: Conn, did: str) -> Number | None:
    """A DID as the carrier sent it, with or without its leading +."""
    return numbers.by_did(conn, did)


def conference_place(conn: Conn, room_id: UUID) -> tuple[Node | None, Mixer | None]:
    """The node or mixer that runs a room now."""
    place = placements.room_place(conn, room_id)
    if place is None:
        return None, None
    node_id, mixer_id = place
    return (nodes.get(conn, node_id) if node_id else None), (mixers.get(conn, mixer_id) if mixer_id else None)


def all_nodes(conn: Conn) -> list[Node]:
    return nodes.list_all(conn)


def all_mixers(conn: Conn) -> list[Mixer]:
    return mixers.list_all(conn)


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
