"""API bearer tokens, kept only as their sha256."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import ApiToken
from controller.stores import rows


def insert(conn: psycopg.Connection[Any], token: ApiToken) -> ApiToken:
    return rows.insert(conn, "api_tokens", token)


def by_hash(conn: psycopg.Connection[Any], token_hash: str) -> ApiToken | None:
    found = rows.select(conn, ApiToken, "SELECT * FROM api_tokens WHERE token_hash = %s", [token_hash])
    return found[0] if found else None


def list_all(conn: psycopg.Connection[Any]) -> list[ApiToken]:
    return rows.select(conn, ApiToken, "SELECT * FROM api_tokens ORDER BY created_at")


def revoke(conn: psycopg.Connection[Any], id: UUID) -> ApiToken | None:
    return rows.update(conn, "api_tokens", ApiToken, id, {"revoked": True})


def touch(conn: psycopg.Connection[Any], id: UUID) -> None:
    conn.execute("UPDATE api_tokens SET last_used_at = clock_timestamp() WHERE id = %s", [id])
