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
from controller.assignment import reassign
from controller.database import Database
from controller.domain import AdminState, Node
from controller.errors import Conflict, Unauthorized
from controller.stores import changes, node_joins, nodes, tokens
from controller.stores.changes import Notice

Conn = psycopg.Connection[Any]

# What a node says about itself; the ESL password is made here and the admin state is "pending".
JOIN_FIELDS = {k: f for k, f in provisioning.NODE_FIELDS.items() if k not in ("esl_password", "admin_state")}


def join(db: Database, token: str, data: Any) -> tuple[Node, str]:
    """Spend a node-join token on registering a node; return the node and its new ESL password.

    A wrong, revoked or non-join token is Unauthorized; a token already spent is a Conflict.
    """
    values = provisioning.node_values(JOIN_FIELDS, data)
    if not token.startswith(tokens.TOKEN_PREFIX) or len(token) > 200:
        raise Unauthorized("invalid join token")
    password = secrets.token_urlsafe(24)
    with db.transaction() as conn:
        found = tokens.by_hash(conn, tokens.hash_token(token))
        if found is None or found.scope != "node-join":
            raise Unauthorized("invalid join token")
        spent = node_joins.spent_by(conn, found.id)
        if spent is not None:
            raise Conflict(f"this join token was already used by node {spent}", {"node": spent})
        if found.revoked:
            raise Unauthorized("invalid join token")
        node = nodes.insert(
            conn, Node(id=uuid.uuid4(), esl_password=password, admin_state=AdminState.PENDING, **values)
        )
        try:
            node_joins.record(conn, found.id, node.id, node.name)
        except psycopg.errors.UniqueViolation as exc:  # a concurrent join spent it first
            raise Conflict("this join token was already used") from exc
        tokens.revoke(conn, found.id)
        changes.announce(conn, Notice.NODE)
    return node, password


def activate_on_first_heartbeat(conn: Conn, node_id: UUID) -> bool:
    """Make a pending node active (placeable) and place tenants again; False if it was not pending.

    Call it in the transaction that records a node's health as ``up``; it is idempotent.
    """
    node = nodes.get_for_update(conn, node_id)
    if node is None or node.admin_state != AdminState.PENDING:
        return False
    nodes.update(conn, node_id, {"admin_state": AdminState.ACTIVE})
    changes.announce(conn, Notice.NODE)
    reassign(conn, f"node {node.name} joined and sent its first heartbeat", joined=[node_id])
    return True
