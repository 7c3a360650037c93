"""After a failover moved a node's work: flush the new node's caches, and bring its rooms back.

The controller is the "brain" (the Powwownow seed): it knows every room's members from the
conference::maintenance events it stored, so a room that lived on the dead node is recreated on
the node that took it by calling each member back: an ``originate`` on the new node to the
member's registered contact, routed through the SIP proxy (Kamailio) so NAT bindings hold, into
the same room with the same mute/deaf flags. Members that called in from outside (no
registration) cannot be called back; the failover record counts them as not recovered.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from controller.database import Database
from controller.domain import CommandStatus
from controller.errors import FarmError
from controller.stores import conference_members, conferences, failovers, live_calls, nodes, placements, tenants
from esl_workers import commands
from esl_workers.conferences import room_name

log = logging.getLogger(__name__)

FLUSH_COMMANDS = ("xml_flush_cache", "sofia profile internal rescan")


def flush_caches(db: Database, row: failovers.Failover) -> dict[str, Any]:
    """Make the node that took over fetch fresh config for its new tenants (xml_curl, gateways)."""
    target = row.spare_id
    if target is None:
        return {}
    with db.transaction() as conn:
        node = nodes.get(conn, target)
    if node is None:
        return {}
    for command in FLUSH_COMMANDS:
        commands.run_api(node, command, timeout=3.0, check=False)
    return {}


def callback_dial_string(member: dict[str, Any], domain: str, proxy: str | None) -> str:
    """Pure: how the new node reaches a member again: its registered contact, through the proxy."""
    contact = str(member["contact"]).strip("<>")
    if contact.startswith("sip:"):
        contact = contact[4:]
    route = f";fs_path=sip:{proxy}" if proxy else ""
    return f"sofia/internal/{contact}{route}"


def rejoin_command(room: str, profile: str, member: dict[str, Any], domain: str, proxy: str | None) -> str:
    """Pure: the originate that calls a member back into its room, with its flags."""
    flags = [
        f
        for f, keep in (
            ("mute", not member["can_speak"]),
            ("deaf", not member["can_hear"]),
            ("moderator", member["is_moderator"]),
        )
        if keep
    ]
    flag_text = f"+flags{{{'|'.join(flags)}}}" if flags else ""
    variables = (
        f"{{fsfarm_tenant={domain},origination_caller_id_number={room.split('-', 1)[0]},"
        f"fsfarm_rejoin=true,originate_timeout=30}}"
    )
    target = callback_dial_string(member, domain, proxy)
    return f"originate {variables}{target} &conference({room}@{profile}{flag_text})"


def recover_rooms(db: Database, row: failovers.Failover, proxy: str | None = None) -> dict[str, Any]:
    """Recreate the dead node's rooms on their new node; returns the counts for the failover record.

    ``proxy`` (the first of FSFARM_SIP_PROXIES) is where call-backs are routed so NAT bindings hold.
    """
    with db.transaction() as conn:
        members = conference_members.on_node_with_contacts(conn, row.node_id)
        rooms: dict[str, list[dict[str, Any]]] = {}
        for member in members:
            rooms.setdefault(member["conference_name"], []).append(member)
        plans = []
        for name, people in rooms.items():
            tenant_id: UUID | None = people[0]["tenant_id"]
            tenant = tenants.get(conn, tenant_id) if tenant_id else None
            room = conferences.store.get(conn, tenant.id, name.split("-", 1)[0]) if tenant else None
            where = placements.room_place(conn, room.id) if room else None
            node = nodes.get(conn, where[0]) if where and where[0] else None
            if tenant is None or room is None or node is None:
                continue
            state = {
                "members": [
                    {k: m[k] for k in ("caller_number", "caller_name", "can_hear", "can_speak", "is_moderator")}
                    for m in people
                ],
                "recovered_from": str(row.node_id),
            }
            conferences.save_state(conn, room.id, {**room.state, **state})
            plans.append((tenant, room, node, people))
        # The dead node's membership is history now; the new node reports the members that rejoin.
        conference_members.clear_node(conn, row.node_id)
    legs_total = len(members)
    recovered, recreated = 0, 0
    for tenant, room, node, people in plans:
        name = room_name(room.number, tenant.domain)
        started = 0
        for member in people:
            if not member["contact"]:
                continue
            try:
                command = rejoin_command(name, room.profile, member, tenant.domain, proxy)
                job = commands.run_bgapi(db, node, command, tenant_id=tenant.id, timeout=3.0)
            except FarmError as exc:
                log.warning("could not call %s back into %s: %s", member["caller_number"], name, exc.message)
                continue
            if job.get("status") != CommandStatus.FAILED:
                started += 1
        recovered += started
        recreated += 1 if started else 0
    return {"rooms_recreated": recreated, "legs_total": legs_total, "legs_recovered": recovered}


def after_move_steps(proxies: tuple[str, ...] = ()) -> tuple[Callable[[Database, failovers.Failover], Any], ...]:
    """What runs once a failover's move is committed: flush the new node's caches, then recover its rooms."""
    proxy = proxies[0] if proxies else None
    return (flush_caches, functools.partial(recover_rooms, proxy=proxy))


def rebridge_room(db: Database, conference_id: UUID, old_mixer: UUID) -> int:
    """Send every FreeSWITCH leg bridged to a room's old mixer through the room's dialplan again."""
    with db.transaction() as conn:
        room = conferences.by_id(conn, conference_id)
        if room is None:
            return 0
        tenant = tenants.get(conn, room.tenant_id)
        legs = live_calls.legs_to(conn, room.tenant_id, room.number)
        by_id = {n.id: n for n in nodes.list_all(conn)}
    if tenant is None:
        return 0
    sent = 0
    for leg in legs:
        try:
            commands.run_api(
                by_id[leg["node_id"]], f"uuid_transfer {leg['channel_uuid']} {room.number} XML {tenant.domain}"
            )
            sent += 1
        except FarmError as exc:
            log.warning("leg %s of room %s stays: %s", leg["channel_uuid"], room.number, exc.message)
    return sent
