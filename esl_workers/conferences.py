"""Conference membership from conference::maintenance events (who is in which room, muted or deaf)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from controller.stores import conference_members
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


def parse_member_list(name: str, listed: str) -> list[MemberChange]:
    """Pure: the members ``conference NAME list`` prints (``id;channel;uuid;cid name;cid number;flags;...``)."""
    out = []
    for line in listed.splitlines():
        cells = line.split(";")
        if len(cells) < 6 or not cells[0].isdigit():
            continue
        flags = set(cells[5].split("|"))
        out.append(
            MemberChange(
                "upsert",
                name,
                int(cells[0]),
                channel_uuid=cells[2],
                caller_name=cells[3],
                caller_number=cells[4],
                can_hear="hear" in flags,
                can_speak="speak" in flags,
                is_moderator="moderator" in flags,
            )
        )
    return out


def apply(conn: psycopg.Connection[Any], node_id: UUID, change: MemberChange, tenant_id: UUID | None) -> None:
    """Store what ``change`` says about the room's membership on this node."""
    if change.action == "destroy":
        conference_members.clear_room(conn, node_id, change.conference_name)
    elif change.action == "remove":
        conference_members.remove(conn, node_id, change.conference_name, change.member_id)
    else:
        conference_members.save(
            conn,
            node_id,
            change.conference_name,
            change.member_id,
            tenant_id,
            channel_uuid=change.channel_uuid,
            caller_number=change.caller_number,
            caller_name=change.caller_name,
            can_hear=change.can_hear,
            can_speak=change.can_speak,
            is_moderator=change.is_moderator,
        )
