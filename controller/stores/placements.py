"""Where every tenant and conference runs, stamped with the generation that put it there."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row

from controller.domain import ConferencePlacement, PlacementGeneration, Tenant, TenantPlacement
from controller.stores import rows

# Serialises placement writers across controllers sharing one database.
PLACEMENT_LOCK = 0x706C6163  # "plac"


def lock(conn: psycopg.Connection[Any]) -> None:
    """Hold the placement lock until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PLACEMENT_LOCK,))


def latest(conn: psycopg.Connection[Any]) -> PlacementGeneration | None:
    found = rows.select(
        conn,
        PlacementGeneration,
        "SELECT * FROM placement_generations ORDER BY generation DESC, created_at DESC, id DESC LIMIT 1",
    )
    return found[0] if found else None


def history(conn: psycopg.Connection[Any], limit: int = 20) -> list[PlacementGeneration]:
    return rows.select(
        conn,
        PlacementGeneration,
        "SELECT * FROM placement_generations ORDER BY generation DESC, created_at DESC LIMIT %s",
        [limit],
    )


def tenant_placements(conn: psycopg.Connection[Any]) -> list[TenantPlacement]:
    return rows.select(conn, TenantPlacement, "SELECT tenant_id, node_id, generation FROM tenant_placements")


def conference_placements(conn: psycopg.Connection[Any]) -> list[ConferencePlacement]:
    return rows.select(
        conn,
        ConferencePlacement,
        "SELECT conference_id, node_id, mixer_id, generation FROM conference_placements",
    )


def tenant_node(conn: psycopg.Connection[Any], tenant_id: UUID) -> UUID | None:
    row = conn.execute("SELECT node_id FROM tenant_placements WHERE tenant_id = %s", [tenant_id]).fetchone()
    return row["node_id"] if row else None


def unplaced_tenants(conn: psycopg.Connection[Any]) -> list[UUID]:
    """Tenants no node hosts: no placement row yet, or placed on no node (none could take them)."""
    cur = conn.execute(
        "SELECT t.id FROM tenants t LEFT JOIN tenant_placements p ON p.tenant_id = t.id WHERE p.node_id IS NULL"
    )
    return [row["id"] for row in cur.fetchall()]


def tenants_on_node(conn: psycopg.Connection[Any], node_id: UUID) -> list[UUID]:
    cur = conn.execute("SELECT tenant_id FROM tenant_placements WHERE node_id = %s", [node_id])
    return [row["tenant_id"] for row in cur.fetchall()]


def record(
    conn: psycopg.Connection[Any],
    reason: str,
    tenants: dict[UUID, UUID | None],
    conferences: dict[UUID, tuple[UUID | None, UUID | None]],
    moved: int,
) -> PlacementGeneration:
    """Write a new generation: upsert the given assignments, stamped with its number."""
    current = latest(conn)
    generation = (current.generation if current else 0) + 1
    stored = rows.insert(
        conn,
        "placement_generations",
        PlacementGeneration(id=uuid.uuid4(), generation=generation, reason=reason, moved=moved),
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO tenant_placements (tenant_id, node_id, generation) VALUES (%s, %s, %s)
               ON CONFLICT (tenant_id) DO UPDATE
               SET node_id = EXCLUDED.node_id, generation = EXCLUDED.generation, updated_at = clock_timestamp()""",
            [(t, n, generation) for t, n in tenants.items()],
        )
        cur.executemany(
            """INSERT INTO conference_placements (conference_id, node_id, mixer_id, generation)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (conference_id) DO UPDATE
               SET node_id = EXCLUDED.node_id, mixer_id = EXCLUDED.mixer_id,
                   generation = EXCLUDED.generation, updated_at = clock_timestamp()""",
            [(c, n, m, generation) for c, (n, m) in conferences.items()],
        )
    return stored


def tenant_placement(conn: psycopg.Connection[Any], tenant_id: UUID) -> TenantPlacement | None:
    """The tenant's placement row (its node may be None: placed on no node), or None before its first."""
    found = rows.select(
        conn,
        TenantPlacement,
        "SELECT tenant_id, node_id, generation FROM tenant_placements WHERE tenant_id = %s",
        [tenant_id],
    )
    return found[0] if found else None


def tenant_nodes(conn: psycopg.Connection[Any]) -> dict[UUID, UUID | None]:
    """Every placed tenant's node, read as plain tuples (the xml_curl snapshot loads it for the whole farm)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return dict(cur.execute("SELECT tenant_id, node_id FROM tenant_placements").fetchall())


def room_places(
    conn: psycopg.Connection[Any], tenant_id: UUID | None = None
) -> dict[UUID, tuple[UUID | None, UUID | None]]:
    """(node, mixer) of every placed room, or of one tenant's rooms."""
    with conn.cursor(row_factory=tuple_row) as cur:
        if tenant_id is None:
            cur.execute("SELECT conference_id, node_id, mixer_id FROM conference_placements")
        else:
            cur.execute(
                """SELECT p.conference_id, p.node_id, p.mixer_id FROM conference_placements p
                   JOIN conferences c ON c.id = p.conference_id WHERE c.tenant_id = %s""",
                [tenant_id],
            )
        return {r[0]: (r[1], r[2]) for r in cur.fetchall()}


def room_place(conn: psycopg.Connection[Any], conference_id: UUID) -> tuple[UUID | None, UUID | None] | None:
    """(node, mixer) running a room now; None when the room was never placed."""
    row = conn.execute(
        "SELECT node_id, mixer_id FROM conference_placements WHERE conference_id = %s", [conference_id]
    ).fetchone()
    return (row["node_id"], row["mixer_id"]) if row else None


def count_rooms_on(conn: psycopg.Connection[Any], node_id: UUID) -> int:
    row = conn.execute("SELECT count(*) AS n FROM conference_placements WHERE node_id = %s", [node_id]).fetchone()
    return int(row["n"]) if row else 0


def rooms_on_mixer(conn: psycopg.Connection[Any], mixer_id: UUID) -> list[UUID]:
    cur = conn.execute("SELECT conference_id FROM conference_placements WHERE mixer_id = %s", [mixer_id])
    return [r["conference_id"] for r in cur.fetchall()]


def mixer_rooms(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every room placed on a mixer: its id, the mixer and the room's profile."""
    return conn.execute(
        """SELECT p.conference_id, p.mixer_id, c.profile FROM conference_placements p
           JOIN conferences c ON c.id = p.conference_id WHERE p.mixer_id IS NOT NULL"""
    ).fetchall()


def move_node(conn: psycopg.Connection[Any], old: UUID, new: UUID) -> None:
    """Put every tenant and room of node ``old`` on node ``new`` (a spare taking a dead node's place)."""
    conn.execute(
        "UPDATE tenant_placements SET node_id = %s, updated_at = clock_timestamp() WHERE node_id = %s", [new, old]
    )
    conn.execute(
        "UPDATE conference_placements SET node_id = %s, updated_at = clock_timestamp() WHERE node_id = %s", [new, old]
    )


def placed_tenant(conn: psycopg.Connection[Any], domain: str, node_id: UUID) -> Tenant | None:
    """The enabled tenant with this domain, only if it is placed on this node."""
    found = rows.select(
        conn,
        Tenant,
        """SELECT t.* FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
           WHERE t.domain = %s AND p.node_id = %s AND t.enabled""",
        [domain.lower(), node_id],
    )
    return found[0] if found else None


def enabled_tenant_on_node(conn: psycopg.Connection[Any], tenant_id: UUID, node_id: UUID) -> Tenant | None:
    """The tenant, only if it is enabled and placed on this node."""
    found = rows.select(
        conn,
        Tenant,
        """SELECT t.* FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
           WHERE t.id = %s AND p.node_id = %s AND t.enabled""",
        [tenant_id, node_id],
    )
    return found[0] if found else None


def enabled_tenants_on_node(conn: psycopg.Connection[Any], node_id: UUID) -> list[Tenant]:
    """The enabled tenants placed on this node, by domain."""
    return rows.select(
        conn,
        Tenant,
        """SELECT t.* FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
           WHERE p.node_id = %s AND t.enabled ORDER BY t.domain""",
        [node_id],
    )


def tenants_per_node(conn: psycopg.Connection[Any]) -> dict[UUID, int]:
    """How many tenants each node hosts (nodes hosting none are absent)."""
    found = conn.execute(
        "SELECT node_id, count(*) AS n FROM tenant_placements WHERE node_id IS NOT NULL GROUP BY node_id"
    ).fetchall()
    return {r["node_id"]: int(r["n"]) for r in found}
