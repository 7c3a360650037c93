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
