"""The live-call table: one row per channel, keyed by (node, channel uuid), kept from CHANNEL_* events.

A periodic reconcile against ``show channels as json`` removes rows FreeSWITCH no longer has
(missed hangups) and adds channels whose CREATE we missed (a reconnect).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from esl_workers.protocol import Event
from esl_workers.tenancy import domain_of
from esl_workers.timefmt import from_usec

STATE_BY_EVENT = {"CHANNEL_CREATE": "created", "CHANNEL_ANSWER": "answered", "CHANNEL_BRIDGE": "bridged"}
REMOVING_EVENTS = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})
EVENTS = frozenset(STATE_BY_EVENT) | REMOVING_EVENTS


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


@dataclass(frozen=True)
class CallChange:
    """Upsert ``call``, or remove ``channel_uuid`` (hangup)."""

    channel_uuid: str
    call: LiveCall | None = None


def leg_fields(h: Mapping[str, str]) -> dict[str, str]:
    """What a leg's headers say about who called whom, the same for the live-call table and the CDR."""
    return {
        "call_uuid": h.get("Channel-Call-UUID", ""),
        "tenant_domain": domain_of(h),
        "direction": h.get("Call-Direction", ""),
        "caller_number": h.get("Caller-Caller-ID-Number", ""),
        "caller_name": h.get("Caller-Caller-ID-Name", ""),
        "destination": h.get("variable_dialed_user") or h.get("Caller-Destination-Number", ""),
        "other_leg_uuid": h.get("Other-Leg-Unique-ID", ""),
        "sip_call_id": h.get("variable_sip_call_id", ""),
    }


def from_event(event: Event) -> CallChange | None:
    """The change a CHANNEL_* event makes to the live-call table, or None for other events."""
    h = event.headers
    channel = h.get("Unique-ID", "")
    if not channel or event.name not in EVENTS:
        return None
    if event.name in REMOVING_EVENTS:
        return CallChange(channel)
    return CallChange(
        channel,
        LiveCall(
            channel_uuid=channel,
            state=STATE_BY_EVENT[event.name],
            channel_name=h.get("Channel-Name", ""),
            **leg_fields(h),
            started_at=from_usec(h.get("Caller-Channel-Created-Time")),
            answered_at=from_usec(h.get("Caller-Channel-Answered-Time")),
            bridged_at=from_usec(h.get("Caller-Channel-Bridged-Time")),
        ),
    )


def from_show_channels(body: str) -> list[LiveCall]:
    """Rows of ``show channels as json`` (``{"row_count":0}`` when idle) as live calls."""
    data = json.loads(body) if body.strip().startswith("{") else {}
    calls = []
    for row in data.get("rows") or []:
        state = "answered" if row.get("callstate") in ("ACTIVE", "HELD") else "created"
        calls.append(
            LiveCall(
                channel_uuid=row.get("uuid", ""),
                state=state,
                call_uuid=row.get("call_uuid", ""),
                tenant_domain=(row.get("context") or "").lower()
                if row.get("context") not in ("default", "public")
                else "",
                direction=row.get("direction", ""),
                channel_name=row.get("name", ""),
                caller_number=row.get("cid_num", ""),
                caller_name=row.get("cid_name", ""),
                destination=row.get("dest", ""),
                started_at=from_usec(int(row.get("created_epoch") or 0) * 1_000_000),
            )
        )
    return [c for c in calls if c.channel_uuid]


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
