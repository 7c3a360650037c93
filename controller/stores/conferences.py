"""Conference rooms of a tenant, with the JSON state a failover recreates them from."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Conference
from controller.stores import rows
from controller.stores.children import TenantChildStore

store = TenantChildStore("conferences", Conference, "number")


def list_all(conn: psycopg.Connection[Any]) -> list[Conference]:
    return rows.select(conn, Conference, "SELECT * FROM conferences ORDER BY id")


def save_state(conn: psycopg.Connection[Any], id: UUID, state: dict[str, Any]) -> Conference | None:
    """Store a room's live state (members, mute flags, recording) for recreation elsewhere."""
    return rows.update(conn, "conferences", Conference, id, {"state": state})


def by_id(conn: psycopg.Connection[Any], id: UUID) -> Conference | None:
    return rows.get(conn, "conferences", Conference, id)


def by_number(conn: psycopg.Connection[Any], tenant_id: UUID, number: str) -> Conference | None:
    found = rows.select(
        conn, Conference, "SELECT * FROM conferences WHERE tenant_id = %s AND number = %s", [tenant_id, number]
    )
    return found[0] if found else None


def repin(conn: psycopg.Connection[Any], old: UUID, new: UUID) -> None:
    """Rooms pinned to node ``old`` are pinned to ``new`` (the spare that took its place)."""
    conn.execute(
        "UPDATE conferences SET pinned_node_id = %s, updated_at = clock_timestamp() WHERE pinned_node_id = %s",
        [new, old],
    )
