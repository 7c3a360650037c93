"""Deleted owners whose shared-storage files are still to be removed (``storage_tombstones``).

A delete writes its tombstone in the same transaction; the storage sweep removes the files, then the row.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg


def bury(conn: psycopg.Connection[Any], prefix: str, reason: str) -> None:
    """Ask the sweep to remove the files under ``prefix`` once this transaction commits."""
    conn.execute(
        "INSERT INTO storage_tombstones (id, prefix, reason) VALUES (%s, %s, %s)", [uuid.uuid4(), prefix, reason]
    )


def oldest(conn: psycopg.Connection[Any], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` tombstones, oldest first: id, prefix, reason, created_at."""
    return conn.execute(
        "SELECT id, prefix, reason, created_at FROM storage_tombstones ORDER BY created_at LIMIT %s", [limit]
    ).fetchall()


def count(conn: psycopg.Connection[Any]) -> int:
    """How many deleted owners still have files to remove."""
    row = conn.execute("SELECT count(*) AS n FROM storage_tombstones").fetchone()
    return int(row["n"]) if row else 0


def remove(conn: psycopg.Connection[Any], id: UUID) -> None:
    conn.execute("DELETE FROM storage_tombstones WHERE id = %s", [id])
