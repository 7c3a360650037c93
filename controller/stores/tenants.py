"""Tenants: one SIP domain each."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Tenant
from controller.stores import rows
from controller.stores.children import as_uuid


def list_all(conn: psycopg.Connection[Any]) -> list[Tenant]:
    return rows.select(conn, Tenant, "SELECT * FROM tenants ORDER BY domain")


def by_domain(conn: psycopg.Connection[Any], domain: str) -> Tenant | None:
    found = rows.select(conn, Tenant, "SELECT * FROM tenants WHERE domain = %s", [domain.lower()])
    return found[0] if found else None


def get(conn: psycopg.Connection[Any], ref: str | UUID) -> Tenant | None:
    """By id or by domain."""
    uid = as_uuid(ref)
    return rows.get(conn, "tenants", Tenant, uid) if uid else by_domain(conn, str(ref))


def insert(conn: psycopg.Connection[Any], tenant: Tenant) -> Tenant:
    return rows.insert(conn, "tenants", tenant)


def update(conn: psycopg.Connection[Any], id: UUID, changes: dict[str, Any]) -> Tenant | None:
    return rows.update(conn, "tenants", Tenant, id, changes)


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "tenants", id)


def extension_in_use(conn: psycopg.Connection[Any], tenant_id: UUID, number: str) -> str | None:
    """What already answers ``number`` inside the tenant (user, conference or IVR), if anything.

    The three live in different tables, so no constraint can keep them apart; this check does.
    """
    row = conn.execute(
        """SELECT 'user' FROM users WHERE tenant_id = %(t)s AND extension = %(n)s
           UNION ALL SELECT 'conference' FROM conferences WHERE tenant_id = %(t)s AND number = %(n)s
           UNION ALL SELECT 'ivr' FROM ivrs WHERE tenant_id = %(t)s AND extension = %(n)s
           LIMIT 1""",
        {"t": tenant_id, "n": number},
    ).fetchone()
    return next(iter(row.values())) if row else None


def repin(conn: psycopg.Connection[Any], old: UUID, new: UUID) -> None:
    """Tenants pinned to node ``old`` are pinned to ``new`` (the spare that took its place)."""
    conn.execute(
        "UPDATE tenants SET pinned_node_id = %s, updated_at = clock_timestamp() WHERE pinned_node_id = %s", [new, old]
    )
