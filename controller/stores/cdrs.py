"""Call detail records (``esl_cdrs``), written exactly once per (node, channel uuid)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg


def insert(
    conn: psycopg.Connection[Any],
    node_id: UUID,
    channel_uuid: str,
    *,
    call_uuid: str,
    tenant_id: UUID | None,
    direction: str,
    caller_number: str,
    caller_name: str,
    destination: str,
    other_leg_uuid: str,
    sip_call_id: str,
    started_at: datetime | None,
    answered_at: datetime | None,
    ended_at: datetime | None,
    duration: int,
    billsec: int,
    hangup_cause: str,
    variables: dict[str, str],
) -> bool:
    """Store one leg's record; False when (node, channel) already has one (a replayed spool)."""
    cur = conn.execute(
        """INSERT INTO esl_cdrs (id, node_id, channel_uuid, call_uuid, tenant_id, direction, caller_number,
               caller_name, destination, other_leg_uuid, sip_call_id, started_at, answered_at, ended_at,
               duration, billsec, hangup_cause, variables)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (node_id, channel_uuid) DO NOTHING""",
        (
            uuid.uuid4(),
            node_id,
            channel_uuid,
            call_uuid,
            tenant_id,
            direction,
            caller_number,
            caller_name,
            destination,
            other_leg_uuid,
            sip_call_id,
            started_at,
            answered_at,
            ended_at,
            duration,
            billsec,
            hangup_cause,
            json.dumps(variables),
        ),
    )
    return cur.rowcount > 0


def list_for_tenant(conn: psycopg.Connection[Any], tenant_id: UUID, limit: int = 100) -> list[dict[str, Any]]:
    """A tenant's newest CDRs first."""
    cur = conn.execute(
        "SELECT * FROM esl_cdrs WHERE tenant_id = %s ORDER BY started_at DESC NULLS LAST, id LIMIT %s",
        (tenant_id, limit),
    )
    return cur.fetchall()
