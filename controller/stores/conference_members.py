"""Who is in which room on which node (``esl_conference_members``), from conference::maintenance events."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg


def save(
    conn: psycopg.Connection[Any],
    node_id: UUID,
    conference_name: str,
    member_id: int,
    tenant_id: UUID | None,
    *,
    channel_uuid: str,
    caller_number: str,
    caller_name: str,
    can_hear: bool,
    can_speak: bool,
    is_moderator: bool,
) -> None:
    """Add a member, or refresh its flags (who it is stays as first reported)."""
    conn.execute(
        """INSERT INTO esl_conference_members (id, node_id, conference_name, member_id, tenant_id, channel_uuid,
               caller_number, caller_name, can_hear, can_speak, is_moderator)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (node_id, conference_name, member_id) DO UPDATE SET
               can_hear = EXCLUDED.can_hear, can_speak = EXCLUDED.can_speak,
               is_moderator = EXCLUDED.is_moderator, updated_at = now()""",
        (
            uuid.uuid4(),
            node_id,
            conference_name,
            member_id,
            tenant_id,
            channel_uuid,
            caller_number,
            caller_name,
            can_hear,
            can_speak,
            is_moderator,
        ),
    )


def remove(conn: psycopg.Connection[Any], node_id: UUID, conference_name: str, member_id: int) -> None:
    conn.execute(
        """DELETE FROM esl_conference_members WHERE node_id = %s AND conference_name = %s
                    AND member_id = %s""",
        (node_id, conference_name, member_id),
    )


def clear_room(conn: psycopg.Connection[Any], node_id: UUID, conference_name: str) -> None:
    """Forget every member of a room on a node (the room was destroyed)."""
    conn.execute(
        "DELETE FROM esl_conference_members WHERE node_id = %s AND conference_name = %s",
        (node_id, conference_name),
    )


def clear_node(conn: psycopg.Connection[Any], node_id: UUID) -> None:
    """Forget every member on a node (a failover moved its rooms away)."""
    conn.execute("DELETE FROM esl_conference_members WHERE node_id = %s", [node_id])


def members(conn: psycopg.Connection[Any], tenant_id: UUID, conference_name: str) -> list[dict[str, Any]]:
    """Members of one of a tenant's rooms, by member id."""
    cur = conn.execute(
        """SELECT m.member_id, m.channel_uuid, m.caller_number, m.caller_name, m.can_hear, m.can_speak,
                  m.is_moderator, n.name AS node, m.created_at AS joined_at
           FROM esl_conference_members m JOIN nodes n ON n.id = m.node_id
           WHERE m.tenant_id = %s AND m.conference_name = %s ORDER BY m.member_id""",
        (tenant_id, conference_name),
    )
    return cur.fetchall()


def node_of_room(conn: psycopg.Connection[Any], conference_name: str) -> UUID | None:
    """The node where the room has members right now, if any."""
    row = conn.execute(
        "SELECT node_id FROM esl_conference_members WHERE conference_name = %s LIMIT 1", (conference_name,)
    ).fetchone()
    return row["node_id"] if row else None


def on_node_with_contacts(conn: psycopg.Connection[Any], node_id: UUID) -> list[dict[str, Any]]:
    """Every member on a node by room and member id, with the contact of its caller's freshest registration."""
    return conn.execute(
        """SELECT m.*, r.contact FROM esl_conference_members m
           LEFT JOIN LATERAL (
               SELECT contact FROM esl_registrations g
               WHERE g.tenant_id = m.tenant_id AND g.username = m.caller_number
                 AND (g.expires_at IS NULL OR g.expires_at > now())
               ORDER BY g.updated_at DESC LIMIT 1) r ON true
           WHERE m.node_id = %s ORDER BY m.conference_name, m.member_id""",
        [node_id],
    ).fetchall()
