"""Where every tenant and conference runs, stamped with the generation that put it there."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import ConferencePlacement, PlacementGeneration, TenantPlacement
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
