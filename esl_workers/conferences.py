"""Conference membership from conference::maintenance events (who is in which room, muted or deaf)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from esl_workers.protocol import Event

SUBCLASS = "conference::maintenance"
# Actions that change nothing we store: skipped so a chatty room costs no writes.
IGNORED_ACTIONS = frozenset(
    {
        "start-talking",
        "stop-talking",
        "floor-change",
        "conference-create",
        "energy-level",
        "volume-level",
        "gain-level",
        "play-file",
        "play-file-done",
    }
)


def room_name(number: str, domain: str) -> str:
    """The name fsfarm's dialplan gives a tenant's room in mod_conference: ``<number>-<domain>``."""
    return f"{number}-{domain}"


def domain_of_room(name: str) -> str:
    """``3000-acme.test`` → ``acme.test`` (empty when the name is not ours)."""
    _, sep, domain = name.partition("-")
    return domain.lower() if sep else ""


@dataclass(frozen=True)
class MemberChange:
    """``action`` is ``upsert``, ``remove`` or ``destroy`` (every member of the room)."""

    action: str
    conference_name: str
    member_id: int = 0
    channel_uuid: str = ""
    caller_number: str = ""
    caller_name: str = ""
    can_hear: bool = True
    can_speak: bool = True
    is_moderator: bool = False


def from_event(event: Event) -> MemberChange | None:
    """The membership change a conference::maintenance event reports; None when nothing changes."""
    if event.name != "CUSTOM" or event.subclass != SUBCLASS:
        return None
    h = event.headers
    action, name = h.get("Action", ""), h.get("Conference-Name", "")
    if not name or action in IGNORED_ACTIONS:
        return None
    if action == "conference-destroy":
        return MemberChange("destroy", name)
    try:
        member_id = int(h.get("Member-ID", ""))
    except ValueError:
        return None
    if action == "del-member":
        return MemberChange("remove", name, member_id)
    return MemberChange(
        "upsert",
        name,
        member_id,
        channel_uuid=h.get("Unique-ID", ""),
        caller_number=h.get("Caller-Caller-ID-Number", ""),
        caller_name=h.get("Caller-Caller-ID-Name", ""),
        can_hear=h.get("Hear", "true") == "true",
        can_speak=h.get("Speak", "true") == "true",
        is_moderator=h.get("Member-Type", "") == "moderator",
    )


def apply(conn: psycopg.Connection[Any], node_id: UUID, change: MemberChange, tenant_id: UUID | None) -> None:
    if change.action == "destroy":
        conn.execute(
            "DELETE FROM esl_conference_members WHERE node_id = %s AND conference_name = %s",
            (node_id, change.conference_name),
        )
    elif change.action == "remove":
        conn.execute(
            """DELETE FROM esl_conference_members WHERE node_id = %s AND conference_name = %s
                        AND member_id = %s""",
            (node_id, change.conference_name, change.member_id),
        )
    else:
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
                change.conference_name,
                change.member_id,
                tenant_id,
                change.channel_uuid,
                change.caller_number,
                change.caller_name,
                change.can_hear,
                change.can_speak,
                change.is_moderator,
            ),
        )


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
