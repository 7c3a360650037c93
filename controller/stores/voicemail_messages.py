"""SQL for voicemail message metadata (table ``voicemail_messages``), always filtered by tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Record
from controller.stores import rows


@dataclass(frozen=True)
class VoicemailMessage(Record):
    tenant_id: UUID
    user_id: UUID
    extension: str
    path: str
    duration_ms: int
    size_bytes: int
    sample_rate: int
    caller_id_number: str = ""
    caller_id_name: str = ""
    read_at: datetime | None = None


def insert(conn: psycopg.Connection[Any], message: VoicemailMessage) -> VoicemailMessage:
    return rows.insert(conn, "voicemail_messages", message)


def for_user(conn: psycopg.Connection[Any], tenant_id: UUID, user_id: UUID) -> list[VoicemailMessage]:
    return rows.select(
        conn,
        VoicemailMessage,
        "SELECT * FROM voicemail_messages WHERE tenant_id = %s AND user_id = %s ORDER BY created_at DESC, id",
        [tenant_id, user_id],
    )


def get(conn: psycopg.Connection[Any], tenant_id: UUID, user_id: UUID, id: UUID) -> VoicemailMessage | None:
    found = rows.select(
        conn,
        VoicemailMessage,
        "SELECT * FROM voicemail_messages WHERE tenant_id = %s AND user_id = %s AND id = %s FOR UPDATE",
        [tenant_id, user_id, id],
    )
    return found[0] if found else None


def id_by_path(conn: psycopg.Connection[Any], tenant_id: UUID, path: str) -> UUID | None:
    """The message already registered for this file of the tenant, if any."""
    row = conn.execute(
        "SELECT id FROM voicemail_messages WHERE tenant_id = %s AND path = %s", [tenant_id, path]
    ).fetchone()
    return row["id"] if row else None


def mark_read(conn: psycopg.Connection[Any], id: UUID) -> VoicemailMessage | None:
    row = conn.execute(
        "UPDATE voicemail_messages SET read_at = coalesce(read_at, clock_timestamp()), "
        "updated_at = clock_timestamp() WHERE id = %s RETURNING *",
        [id],
    ).fetchone()
    return rows.from_row(VoicemailMessage, row) if row else None


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "voicemail_messages", id)
