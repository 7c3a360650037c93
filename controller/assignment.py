"""Recompute placement from the database and store it as a new generation when it changed.

Called after every write that can change where things run (tenants, nodes, rooms, mixers).
It runs under a transaction-scoped advisory lock, so concurrent controllers write generations
one after another and each starts from the other's result.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

import psycopg

from controller import placement
from controller.domain import PlacementGeneration
from controller.stores import changes, conferences, mixers, nodes, placements, tenants
from controller.stores.changes import Notice


def reassign(conn: psycopg.Connection[Any], reason: str, joined: Collection[UUID] = ()) -> PlacementGeneration | None:
    """Place every tenant and room again; store and return the new generation, or None if unchanged.

    ``joined`` names nodes that just became placeable (added, activated, back from draining):
    they take about 1/N of the tenants; otherwise tenants stay where they are when they can.
    """
    placements.lock(conn)
    all_nodes = nodes.list_all(conn)
    all_tenants = tenants.list_all(conn)
    all_rooms = conferences.list_all(conn)
    all_mixers = mixers.list_all(conn)
    previous_tenants = {str(p.tenant_id): _str(p.node_id) for p in placements.tenant_placements(conn)}
    previous_rooms = {str(p.conference_id): p for p in placements.conference_placements(conn)}

    bins = [placement.Bin(str(n.id), n.capacity) for n in all_nodes if n.placeable]
    placeable = {b.id for b in bins}
    pinned = {str(t.id): str(t.pinned_node_id) for t in all_tenants if t.pinned_node_id}
    tenant_map = placement.place(
        [str(t.id) for t in all_tenants], bins, previous_tenants, pinned, joined={str(j) for j in joined}
    )

    # HD rooms go to mixers (sticky the same way); other rooms follow their tenant for call locality.
    mixer_bins = [placement.Bin(str(m.id), m.capacity) for m in all_mixers if m.placeable]
    hd_rooms = [str(c.id) for c in all_rooms if c.profile == "hd"]
    previous_mixers = {k: _str(p.mixer_id) for k, p in previous_rooms.items() if p.mixer_id}
    mixer_map = placement.place(hd_rooms, mixer_bins, previous_mixers, joined={str(j) for j in joined})
    room_map: dict[str, tuple[str | None, str | None]] = {}
    for room in all_rooms:
        key = str(room.id)
        node = tenant_map.get(str(room.tenant_id))
        if room.pinned_node_id and str(room.pinned_node_id) in placeable:
            node = str(room.pinned_node_id)
        mixer = mixer_map.get(key)
        # An HD room with no mixer still runs, at 48 kHz, on its tenant's node.
        room_map[key] = (None, mixer) if mixer else (node, None)

    tenant_changes = {
        UUID(t): _uuid(n) for t, n in tenant_map.items() if t not in previous_tenants or previous_tenants[t] != n
    }
    room_changes = {
        UUID(c): (_uuid(n), _uuid(m))
        for c, (n, m) in room_map.items()
        if c not in previous_rooms or (_str(previous_rooms[c].node_id), _str(previous_rooms[c].mixer_id)) != (n, m)
    }
    if not tenant_changes and not room_changes:
        return None
    moved = placement.moved(previous_tenants, tenant_map)
    changes.announce(conn, Notice.PLACEMENT)
    return placements.record(conn, reason, tenant_changes, room_changes, moved)


def _str(value: UUID | None) -> str | None:
    return str(value) if value else None


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None
