"""Spent node-join tokens (``node_joins``): which node each token registered, so a token works once."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg


def spent_by(conn: psycopg.Connection[Any], token_id: UUID) -> str | None:
    """The name of the node that spent this token, locking the row; None while it is unspent."""
    row = conn.execute("SELECT node_name FROM node_joins WHERE token_id = %s FOR UPDATE", [token_id]).fetchone()
    return row["node_name"] if row else None


def record(conn: psycopg.Connection[Any], token_id: UUID, node_id: UUID, node_name: str) -> None:
    """Mark the token spent by this node; raises UniqueViolation (in a savepoint) if it already was."""
    with conn.transaction():  # a savepoint, so a concurrent join leaves the caller's transaction usable
        conn.execute(
            "INSERT INTO node_joins (token_id, node_id, node_name) VALUES (%s, %s, %s)",
            [token_id, node_id, node_name],
        )
