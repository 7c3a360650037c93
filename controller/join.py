"""Nodes that register themselves: a single-use ``node-join`` token, then a first heartbeat.

A joining node is stored with ``admin_state = 'pending'``, which placement never picks. The ESL
room calls :func:`activate_on_first_heartbeat` when it marks a node's health ``up``; only then
does the node become ``active`` and take tenants.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from uuid import UUID

import psycopg

from controller import provisioning
from controller import validation as v
from controller.assignment import reassign
from controller.database import Database
from controller.domain import Node
from controller.errors import Conflict, Invalid, Unauthorized
from controller.stores import changes, nodes, tokens

Conn = psycopg.Connection[Any]

JOIN_FIELDS = {
    "name": v.Field(v.slug, required=True),
    "switchname": v.Field(v.text),
    "sip_address": v.Field(v.host_port(5060), required=True),
    "esl_address": v.Field(v.host_port(8021), required=True),
    "rtp_port_min": v.Field(v.integer(1024, 65534)),
    "rtp_port_max": v.Field(v.integer(1025, 65535)),
    "capacity": v.Field(v.integer(1, 100_000)),
    "spare": v.Field(v.boolean),
}


def join(db: Database, token: str, data: Any) -> tuple[Node, str]:
    """Spend a node-join token on registering a node; return the node and its new ESL password.

    A wrong, revoked or non-join token is Unauthorized; a token already spent is a Conflict.
    """
    values = v.parse(JOIN_FIELDS, data)
    values.setdefault("switchname", values["name"])
    values.setdefault("rtp_port_min", 16384)
    values.setdefault("rtp_port_max", 32768)
    values.setdefault("capacity", 1000)
    if values["rtp_port_min"] >= values["rtp_port_max"]:
        raise Invalid("rtp_port_min must be below rtp_port_max")
    if not token.startswith(provisioning.TOKEN_PREFIX) or len(token) > 200:
        raise Unauthorized("invalid join token")
    password = secrets.token_urlsafe(24)
    with db.transaction() as conn:
        found = tokens.by_hash(conn, provisioning.hash_token(token))
        if found is None or found.scope != "node-join":
            raise Unauthorized("invalid join token")
        spent = conn.execute("SELECT node_name FROM node_joins WHERE token_id = %s FOR UPDATE",
                             [found.id]).fetchone()
        if spent is not None:
            raise Conflict(f"this join token was already used by node {spent['node_name']}",
                           {"node": spent["node_name"]})
        if found.revoked:
            raise Unauthorized("invalid join token")
        node = nodes.insert(conn, Node(id=uuid.uuid4(), esl_password=password, admin_state="pending", **values))
        try:
            with conn.transaction():
                conn.execute("INSERT INTO node_joins (token_id, node_id, node_name) VALUES (%s, %s, %s)",
                             [found.id, node.id, node.name])
        except psycopg.errors.UniqueViolation as exc:  # a concurrent join spent it first
            raise Conflict("this join token was already used") from exc
        tokens.revoke(conn, found.id)
        changes.announce(conn, "node")
    return node, password


def activate_on_first_heartbeat(conn: Conn, node_id: UUID) -> bool:
    """Make a pending node active (placeable) and place tenants again; False if it was not pending.

    Call it in the transaction that records a node's health as ``up``; it is idempotent.
    """
    row = conn.execute("SELECT admin_state, name FROM nodes WHERE id = %s FOR UPDATE", [node_id]).fetchone()
    if row is None or row["admin_state"] != "pending":
        return False
    nodes.update(conn, node_id, {"admin_state": "active"})
    changes.announce(conn, "node")
    reassign(conn, f"node {row['name']} joined and sent its first heartbeat", joined=[node_id])
    return True
