"""The live-call table (``esl_live_calls``): one row per channel, keyed by (node, channel uuid).

The ESL watchers keep it from CHANNEL_* events and a periodic reconcile; drain, commands and the
mixer loop read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg


@dataclass(frozen=True)
class LiveCall:
    """What we know of one channel on one node."""

    channel_uuid: str
    state: str
    call_uuid: str = ""
    tenant_domain: str = ""
    direction: str = ""
    channel_name: str = ""
    caller_number: str = ""
    caller_name: str = ""
    destination: str = ""
    other_leg_uuid: str = ""
    sip_call_id: str = ""
    started_at: datetime | None = None
    answered_at: datetime | None = None
    bridged_at: datetime | None = None


_UPSERT = """
INSERT INTO esl_live_calls (id, node_id, channel_uuid, call_uuid, tenant_id, direction, state, channel_name,
    caller_number, caller_name, destination, other_leg_uuid, sip_call_id, started_at, answered_at, bridged_at)
VALUES (%(id)s, %(node_id)s, %(channel_uuid)s, %(call_uuid)s, %(tenant_id)s, %(direction)s, %(state)s,
    %(channel_name)s, %(caller_number)s, %(caller_name)s, %(destination)s, %(other_leg_uuid)s, %(sip_call_id)s,
    %(started_at)s, %(answered_at)s, %(bridged_at)s)
ON CONFLICT (node_id, channel_uuid) DO UPDATE SET
    state = CASE WHEN array_position(ARRAY['created','answered','bridged'], EXCLUDED.state)
                      > array_position(ARRAY['created','answered','bridged'], esl_live_calls.state)
                 THEN EXCLUDED.state ELSE esl_live_calls.state END,
    tenant_id = COALESCE(EXCLUDED.tenant_id, esl_live_calls.tenant_id),
    other_leg_uuid = COALESCE(NULLIF(EXCLUDED.other_leg_uuid, ''), esl_live_calls.other_leg_uuid),
    answered_at = COALESCE(EXCLUDED.answered_at, esl_live_calls.answered_at),
    bridged_at = COALESCE(EXCLUDED.bridged_at, esl_live_calls.bridged_at),
    updated_at = now()
"""


def upsert(conn: psycopg.Connection[Any], node_id: UUID, call: LiveCall, tenant_id: UUID | None) -> None:
    params = {k: getattr(call, k) for k in LiveCall.__dataclass_fields__ if k != "tenant_domain"}
    conn.execute(_UPSERT, {**params, "id": uuid.uuid4(), "node_id": node_id, "tenant_id": tenant_id})


def remove(conn: psycopg.Connection[Any], node_id: UUID, channel_uuid: str) -> None:
    conn.execute("DELETE FROM esl_live_calls WHERE node_id = %s AND channel_uuid = %s", (node_id, channel_uuid))


def reconcile(
    conn: psycopg.Connection[Any],
    node_id: UUID,
    present: list[LiveCall],
    tenant_ids: Mapping[str, UUID | None],
    grace: timedelta = timedelta(seconds=5),
) -> tuple[int, int]:
    """Make the node's rows match what FreeSWITCH reports; returns (added, removed).

    Rows younger than ``grace`` are kept even if absent: their CREATE may have raced the listing.
    """
    uuids = [c.channel_uuid for c in present]
    removed = conn.execute(
        """DELETE FROM esl_live_calls WHERE node_id = %s AND NOT (channel_uuid = ANY(%s))
           AND updated_at < now() - %s""",
        (node_id, uuids, grace),
    ).rowcount
    added = 0
    for call in present:
        cur = conn.execute(
            """INSERT INTO esl_live_calls (id, node_id, channel_uuid, call_uuid, tenant_id, direction, state,
                   channel_name, caller_number, caller_name, destination, started_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (node_id, channel_uuid) DO NOTHING""",
            (
                uuid.uuid4(),
                node_id,
                call.channel_uuid,
                call.call_uuid,
                tenant_ids.get(call.tenant_domain),
                call.direction,
                call.state,
                call.channel_name,
                call.caller_number,
                call.caller_name,
                call.destination,
                call.started_at,
            ),
        )
        added += cur.rowcount
    return added, removed


def list_for(
    conn: psycopg.Connection[Any], *, tenant_id: UUID | None = None, node_id: UUID | None = None
) -> list[dict[str, Any]]:
    """Live calls of a tenant or of a node, oldest first, each with the name of the node it is on."""
    column, value = ("tenant_id", tenant_id) if tenant_id is not None else ("node_id", node_id)
    cur = conn.execute(
        f"SELECT c.*, n.name AS node FROM esl_live_calls c JOIN nodes n ON n.id = c.node_id "
        f"WHERE c.{column} = %s ORDER BY c.started_at NULLS LAST, c.channel_uuid",
        (value,),
    )
    return cur.fetchall()


def owner(conn: psycopg.Connection[Any], channel_uuid: str, tenant_id: UUID | None = None) -> dict[str, Any] | None:
    """The live-call row of a channel (its node is where commands for it must go)."""
    if tenant_id is None:
        cur = conn.execute("SELECT * FROM esl_live_calls WHERE channel_uuid = %s", (channel_uuid,))
    else:
        cur = conn.execute(
            "SELECT * FROM esl_live_calls WHERE channel_uuid = %s AND tenant_id = %s", (channel_uuid, tenant_id)
        )
    return cur.fetchone()


def count_on_node(conn: psycopg.Connection[Any], node_id: UUID) -> int:
    """How many channels are up on a node (a drain disables the node once this reaches zero)."""
    row = conn.execute("SELECT count(*) AS n FROM esl_live_calls WHERE node_id = %s", (node_id,)).fetchone()
    return int(row["n"]) if row else 0


def legs_to(conn: psycopg.Connection[Any], tenant_id: UUID, destination: str) -> list[dict[str, Any]]:
    """The channel uuid and node of every leg of a tenant that dialled ``destination`` (a room's number)."""
    return conn.execute(
        """SELECT c.channel_uuid, c.node_id FROM esl_live_calls c
           WHERE c.tenant_id = %s AND c.destination = %s""",
        [tenant_id, destination],
    ).fetchall()


def counts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Channels up per (node_id, tenant_id) pair (tenant_id None: not a tenant's), for the metrics."""
    return conn.execute("SELECT node_id, tenant_id, count(*) AS n FROM esl_live_calls GROUP BY 1, 2").fetchall()
