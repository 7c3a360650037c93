"""FreeSWITCH nodes of the farm, their admin state and their health as the ESL workers see it."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Node, NodeHealth, secret_hash
from controller.errors import Invalid
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


def by_xmlcurl_secret(conn: psycopg.Connection[Any], digest: str) -> Node | None:
    """The node whose xml_curl password hashes to ``digest`` (``domain.secret_hash``)."""
    if not digest:
        return None
    found = rows.select(conn, Node, "SELECT * FROM nodes WHERE xmlcurl_secret_hash = %s", [digest])
    return found[0] if found else None


def issue_xmlcurl_credentials(conn: psycopg.Connection[Any], node: Node) -> tuple[Node, str]:
    """Give ``node`` a new xml_curl password (user: its name); only its hash is stored, the old one stops working.

    The caller announces the node change (the xml_curl snapshot holds the hashes).
    """
    password = secrets.token_urlsafe(32)
    updated = update(conn, node.id, {"xmlcurl_user": node.name, "xmlcurl_secret_hash": secret_hash(password)})
    assert updated is not None
    return updated, password


def check_xmlcurl_password(node: Node, password: str) -> None:
    """Invalid unless ``password`` is the node's current xml_curl password."""
    if not node.xmlcurl_secret_hash or not hmac.compare_digest(secret_hash(password), node.xmlcurl_secret_hash):
        raise Invalid(
            f"xmlcurl_password: not node {node.name}'s current xml_curl password", {"field": "xmlcurl_password"}
        )


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
