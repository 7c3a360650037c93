"""API bearer tokens, kept only as their sha256."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.database import Database
from controller.domain import ApiToken
from controller.errors import Unauthorized
from controller.stores import rows

TOKEN_PREFIX = "fsf_"


def hash_token(token: str) -> str:
    """What is stored for a token: its SHA-256 (the token itself is shown once, never kept)."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(db: Database, token: str) -> ApiToken:
    """The stored token for a presented bearer token, or Unauthorized."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Unauthorized("invalid token")
    with db.transaction() as conn:
        found = by_hash(conn, hash_token(token))
        if found is None or found.revoked:
            raise Unauthorized("invalid token")
        if found.expires_at and found.expires_at < datetime.now(UTC):
            raise Unauthorized("token expired")
        touch(conn, found.id)
    return found


def insert(conn: psycopg.Connection[Any], token: ApiToken) -> ApiToken:
    return rows.insert(conn, "api_tokens", token)


def by_hash(conn: psycopg.Connection[Any], token_hash: str) -> ApiToken | None:
    found = rows.select(conn, ApiToken, "SELECT * FROM api_tokens WHERE token_hash = %s", [token_hash])
    return found[0] if found else None


def get(conn: psycopg.Connection[Any], id: UUID) -> ApiToken | None:
    found = rows.select(conn, ApiToken, "SELECT * FROM api_tokens WHERE id = %s", [id])
    return found[0] if found else None


def list_all(conn: psycopg.Connection[Any]) -> list[ApiToken]:
    return rows.select(conn, ApiToken, "SELECT * FROM api_tokens ORDER BY created_at")


def revoke(conn: psycopg.Connection[Any], id: UUID) -> ApiToken | None:
    return rows.update(conn, "api_tokens", ApiToken, id, {"revoked": True})


def touch(conn: psycopg.Connection[Any], id: UUID) -> None:
    conn.execute("UPDATE api_tokens SET last_used_at = clock_timestamp() WHERE id = %s", [id])
