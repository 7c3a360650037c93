"""FreeSWITCH nodes of the farm, their admin state and their health as the ESL workers see it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Node, NodeHealth
from controller.stores import rows


def list_all(conn: psycopg.Connection[Any]) -> list[Node]:
    return rows.select(conn, Node, "SELECT * FROM nodes ORDER BY name")


def get(conn: psycopg.Connection[Any], ref: str | UUID) -> Node | None:
    """By id or by name."""
    return rows.by_id_or_name(conn, "nodes", Node, ref)


def by_switchname(conn: psycopg.Connection[Any], switchname: str) -> Node | None:
    """The node that reports this FreeSWITCH-Switchname/hostname in its requests and events."""
    found = rows.select(conn, Node, "SELECT * FROM nodes WHERE switchname = %s", [switchname])
    return found[0] if found else None


def insert(conn: psycopg.Connection[Any], node: Node) -> Node:
    return rows.insert(conn, "nodes", node)


def update(conn: psycopg.Connection[Any], id: UUID, changes: dict[str, Any]) -> Node | None:
    return rows.update(conn, "nodes", Node, id, changes)


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "nodes", id)


def set_health(conn: psycopg.Connection[Any], id: UUID, health: NodeHealth, reason: str) -> Node | None:
    """Record what the watcher concluded about a node, with when and why (``up`` also stamps ``seen_alive_at``)."""
    now = _now(conn)
    changes: dict[str, Any] = {"health": health, "health_reason": reason, "health_at": now}
    if health == NodeHealth.UP:
        changes["seen_alive_at"] = now
    return rows.update(conn, "nodes", Node, id, changes)


def _now(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT clock_timestamp() AS now").fetchone()
    assert row is not None
    return row["now"]


def get_for_update(conn: psycopg.Connection[Any], id: UUID) -> Node | None:
    """The node, locked until the transaction ends."""
    found = rows.select(conn, Node, "SELECT * FROM nodes WHERE id = %s FOR UPDATE", [id])
    return found[0] if found else None
