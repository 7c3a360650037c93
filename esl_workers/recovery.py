"""After a failover moved a node's work: flush the new node's caches, adopt its calls, bring its rooms back.

When the heir took the dead node's address (``controller.takeover``), it restarts its SIP profile
on that address and runs ``sofia recover`` on the calls the dead node's sofia tracked in the shared
database (``controller.database.switch``): the same dialogs, media on the same address and ports,
so the phones' RTP and in-dialog requests reach the heir and the calls carry on. Members of a room
whose legs came back that way rejoin their room by themselves (the recovered leg runs its
``conference`` application again) and are not called back.

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
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg

from controller.database import Database
from controller.database.switch import SwitchDatabase, adopted_profile
from controller.domain import SIP_PORT, CommandStatus, HostPort, Node, NodeHealth
from controller.errors import FarmError
from controller.stores import (
    changes,
    conference_members,
    conferences,
    failovers,
    legs_up,
    live_calls,
    nodes,
    placements,
    tenants,
)
from controller.stores.changes import Notice
from esl_workers import commands
from esl_workers.conferences import apply as apply_member
from esl_workers.conferences import parse_member_list, room_name
from esl_workers.enforce import Enforcer

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


TAKEN = "address taken: "  # how controller.failover marks a failover whose heir took the address
BIND_WAIT = 10.0  # seconds the heir's extra profile may take to come up on the dead node's address


def profile_bound(status: str, profile: str, address: str) -> bool:
    """Pure: does ``sofia status`` show ``profile`` RUNNING on ``address`` (host:port)?"""
    want = HostPort.parse(address, SIP_PORT)
    for line in status.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[0] == profile and cells[1] == "profile" and cells[3] == "RUNNING":
            if cells[2].rsplit("@", 1)[-1] == f"{want.uri_host}:{want.port}":
                return True
    return False


def _start_profile(node: Node, profile: str, address: str) -> bool:
    """Start ``profile`` on ``node`` until it runs on ``address`` (the xml_curl answer may lag the move a little)."""
    deadline = time.monotonic() + BIND_WAIT
    asked_at = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - asked_at > 0.3:
            commands.run_api(node, f"sofia profile {profile} start", timeout=5.0, check=False)
            asked_at = time.monotonic()
        time.sleep(0.05)
        try:
            status = commands.run_api(node, "sofia status", timeout=3.0, check=False).result
        except FarmError:
            continue
        if profile_bound(status, profile, address):
            return True
    return False


def _stop_profile(node: Node, profile: str) -> None:
    """Stop ``profile`` on ``node`` and see it gone (a stop that lands while it still starts is lost)."""
    for _ in range(3):
        try:
            commands.run_api(node, f"sofia profile {profile} stop", timeout=5.0, check=False)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                status = commands.run_api(node, "sofia status", timeout=3.0, check=False).result
                if not any(line.split()[:2] == [profile, "profile"] for line in status.splitlines()):
                    return
                time.sleep(0.1)
        except FarmError as exc:
            log.warning("could not stop %s on %s: %s", profile, node.name, exc.message)
            return


def adopt_calls(db: Database, row: failovers.Failover, switch: SwitchDatabase | None, profile: str) -> dict[str, Any]:
    """Hand the dead node's registrations to its heir and, if the heir took its address, its calls.

    The heir starts one more SIP profile, on the dead node's address, and recovers the dead node's
    tracked calls on it: their dialogs and media carry on from the same address and ports.
    """
    if row.spare_id is None or switch is None or row.node_id is None:
        return {}
    with db.transaction() as conn:
        dead, heir = nodes.get(conn, row.node_id), nodes.get(conn, row.spare_id)
    if dead is None or heir is None:
        return {}
    taken = row.takeover.startswith(TAKEN)
    name = adopted_profile(profile, dead.name)
    try:
        handed = switch.hand_over(dead.id, dead.switchname, heir.id if taken else None, heir.switchname, name)
    except psycopg.Error as exc:
        # Nodes that never started on the shared database (or it is away): nothing of theirs to hand over.
        log.warning("the nodes' shared database cannot be reached: %s", str(exc).strip())
        if taken:
            release(db, dead.id, profile)
        return {}
    outcome: dict[str, Any] = {"registrations_moved": handed.registrations, "calls_tracked": len(handed.legs)}
    if not taken:
        return outcome
    if not handed.legs:
        release(db, dead.id, profile)  # no call to carry on: nothing to keep the address for
        return outcome
    if not _start_profile(heir, name, dead.sip_address):
        release(db, dead.id, profile)
        return {**outcome, "error": f"{heir.name} could not answer at {dead.sip_address}; the address was released"}
    started = time.monotonic()
    answer = commands.run_api(heir, f"sofia profile {name} recover", timeout=30.0, check=False)
    legs = [leg for leg in handed.legs if leg_up(heir, leg)]
    log.info(
        "%s recovered %d of %d tracked legs of %s in %.2f s (%s)",
        heir.name,
        len(legs),
        len(handed.legs),
        dead.name,
        time.monotonic() - started,
        answer.result.strip(),
    )
    if not legs:
        release(db, dead.id, profile)  # nothing to keep the address for
    else:
        _retime_billed(db, heir, legs)
    return {**outcome, "calls_recovered": len(legs), "recovered_legs": legs}


def _retime_billed(db: Database, heir: Node, legs: list[str]) -> None:
    """Billed legs recovered on the heir: theirs now, and re-timed there (a recovered channel has no schedule)."""
    with db.transaction() as conn:
        accounts = legs_up.move(conn, legs, heir.id)
    if accounts:
        Enforcer(db, commands.run_api, spawn=lambda fn, *args: fn(*args)).retime_all(accounts)


def release(db: Database, dead_id: UUID, profile: str) -> str:
    """Give a dead node's address back: its heir stops the extra profile; the node, if it is back, starts its own."""
    with db.transaction() as conn:
        dead = nodes.get(conn, dead_id)
        if dead is None or dead.heir_id is None:
            return ""
        heir = nodes.get(conn, dead.heir_id)
        nodes.update(conn, dead.id, {"heir_id": None})
        changes.announce(conn, Notice.NODE)
    name = adopted_profile(profile, dead.name)
    if heir is not None and heir.health != NodeHealth.DOWN:
        _stop_profile(heir, name)
    if dead.health == NodeHealth.UP:
        # Back while its address was held: its own profile could not bind then.
        try:
            commands.run_api(dead, f"sofia profile {profile} start", timeout=5.0, check=False)
        except FarmError as exc:
            log.warning("could not start %s on %s: %s", profile, dead.name, exc.message)
    return f"{heir.name if heir else 'its heir'} gave {dead.name}'s address {dead.sip_address} back"


def release_addresses(db: Database, profile: str = "internal") -> list[str]:
    """Each cycle: release every adopted address whose recovered calls have all ended."""
    with db.transaction() as conn:
        held = [n for n in nodes.list_all(conn) if n.heir_id is not None]
        by_id = {n.id: n for n in nodes.list_all(conn)}
        legs = {n.id: set(_last_legs(conn, n.id)) for n in held}
    out = []
    for dead in held:
        heir = by_id.get(dead.heir_id) if dead.heir_id else None
        if heir is not None and heir.health != NodeHealth.DOWN and any(leg_up(heir, leg) for leg in legs[dead.id]):
            continue
        sentence = release(db, dead.id, profile)
        if sentence:
            out.append(sentence + " (its recovered calls are over)")
    return out


def _last_legs(conn: Any, node_id: UUID) -> tuple[str, ...]:
    history = failovers.for_node(conn, node_id)
    return history[-1].recovered_legs if history else ()


def leg_up(node: Node, uuid: str) -> bool:
    """Is channel ``uuid`` up on ``node``? (asked of its session table: ``show channels`` lags in the database)"""
    try:
        return commands.run_api(node, f"uuid_exists {uuid}", timeout=3.0, check=False).result.strip() == "true"
    except FarmError:
        return False


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
            if member["channel_uuid"] and leg_up(node, member["channel_uuid"]):
                started += 1  # its leg was recovered with the node's address and rejoins by itself
                continue
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
        if any(m["channel_uuid"] and leg_up(node, m["channel_uuid"]) for m in people):
            _resync_members(db, node, tenant.id, name)
        recovered += started
        recreated += 1 if started else 0
    return {"rooms_recreated": recreated, "legs_total": legs_total, "legs_recovered": recovered}


def _resync_members(db: Database, node: Node, tenant_id: UUID, name: str) -> None:
    """Store a recovered room's members as the node lists them (recovered legs rejoin without an add-member
    event the watcher stores)."""
    try:
        listed = commands.run_api(node, f"conference {name} list", timeout=3.0, check=False).result
    except FarmError as exc:
        log.warning("could not list room %s on %s: %s", name, node.name, exc.message)
        return
    with db.transaction() as conn:
        for member in parse_member_list(name, listed):
            apply_member(conn, node.id, member, tenant_id)


def after_move_steps(
    proxies: tuple[str, ...] = (), switch: SwitchDatabase | None = None, profile: str = "internal"
) -> tuple[Callable[[Database, failovers.Failover], Any], ...]:
    """What runs once a failover's move is committed: adopt the dead node's calls and registrations (``switch``:
    the nodes' shared database), flush the new node's caches, then recover its rooms."""
    proxy = proxies[0] if proxies else None
    adopt = functools.partial(adopt_calls, switch=switch, profile=profile)
    # The calls in progress first: each step waits for the one before, and a media gap is what a caller hears.
    return (adopt, flush_caches, functools.partial(recover_rooms, proxy=proxy))


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
