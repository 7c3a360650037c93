"""The latest HEARTBEAT figures of each node (``esl_node_stats``, one row per node)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg


def save(
    conn: psycopg.Connection[Any],
    node_id: UUID,
    *,
    session_count: int,
    max_sessions: int,
    sessions_per_sec: int,
    session_peak_5min: int,
    idle_cpu: float,
    uptime_ms: int,
    version: str,
    heartbeat_at: datetime | None,
) -> None:
    """Replace the node's figures with these."""
    conn.execute(
        """INSERT INTO esl_node_stats (id, node_id, session_count, max_sessions, sessions_per_sec, session_peak_5min,
               idle_cpu, uptime_ms, version, heartbeat_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (node_id) DO UPDATE SET session_count = EXCLUDED.session_count,
               max_sessions = EXCLUDED.max_sessions, sessions_per_sec = EXCLUDED.sessions_per_sec,
               session_peak_5min = EXCLUDED.session_peak_5min, idle_cpu = EXCLUDED.idle_cpu,
               uptime_ms = EXCLUDED.uptime_ms, version = EXCLUDED.version, heartbeat_at = EXCLUDED.heartbeat_at,
               updated_at = now()""",
        (
            uuid.uuid4(),
            node_id,
            session_count,
            max_sessions,
            sessions_per_sec,
            session_peak_5min,
            idle_cpu,
            uptime_ms,
            version,
            heartbeat_at,
        ),
    )


def for_node(conn: psycopg.Connection[Any], node_id: UUID) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM esl_node_stats WHERE node_id = %s", (node_id,)).fetchone()


def list_all(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every node's last heartbeat figures, with the heartbeat's age in seconds (None before the first)."""
    return conn.execute(
        "SELECT *, date_part('epoch', now() - heartbeat_at)::float8 AS heartbeat_age FROM esl_node_stats"
    ).fetchall()
