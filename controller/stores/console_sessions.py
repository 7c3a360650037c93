"""The web console's sessions, kept only as the SHA-256 of the cookie's secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets as random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

from controller.domain import ConsoleSession
from controller.stores import rows

SESSION_PREFIX = "fss_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start(
    conn: psycopg.Connection[Any],
    *,
    scope: str,
    tenant_id: UUID | None,
    lifetime: timedelta,
    token_id: UUID | None = None,
    user_id: UUID | None = None,
    label: str = "",
) -> tuple[str, ConsoleSession]:
    """A new session and the cookie secret that names it (shown once: only its hash is stored)."""
    secret = SESSION_PREFIX + random.token_urlsafe(32)
    session = ConsoleSession(
        id=uuid4(),
        secret_hash=_hash(secret),
        csrf_token=random.token_urlsafe(24),
        scope=scope,
        tenant_id=tenant_id,
        token_id=token_id,
        user_id=user_id,
        label=label,
        expires_at=datetime.now(UTC) + lifetime,
    )
    return secret, rows.insert(conn, "console_sessions", session)


def find(conn: psycopg.Connection[Any], secret: str) -> ConsoleSession | None:
    """The live session a cookie names: None when unknown, signed out or expired."""
    if not secret.startswith(SESSION_PREFIX) or len(secret) > 200:
        return None
    found = rows.select(
        conn,
        ConsoleSession,
        "SELECT * FROM console_sessions WHERE secret_hash = %s AND NOT revoked AND expires_at > now()",
        [_hash(secret)],
    )
    return found[0] if found else None


def csrf_matches(session: ConsoleSession, presented: str) -> bool:
    """Whether a request's CSRF token is the session's (compared in constant time)."""
    return bool(presented) and hmac.compare_digest(session.csrf_token.encode(), presented.encode())


def end(conn: psycopg.Connection[Any], id: UUID) -> None:
    """Sign a session out: its cookie stops working at once."""
    rows.update(conn, "console_sessions", ConsoleSession, id, {"revoked": True})


def forget_expired(conn: psycopg.Connection[Any]) -> int:
    """Delete sessions that expired a day ago or more (a sign-in leaves no row behind for ever)."""
    return conn.execute("DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'").rowcount
