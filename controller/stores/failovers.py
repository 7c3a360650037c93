"""Failover decisions: one row per node death, with what was moved and how it went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import FailoverState
from controller.stores import rows


@dataclass(frozen=True)
class Failover:
    id: UUID
    node_id: UUID | None  # None once the node was deleted; node_name still says which it was
    incident: str
    spare_id: UUID | None
    state: FailoverState
    reason: str
    decided_by: str
    tenants_moved: int
    rooms_total: int
    rooms_recreated: int
    legs_total: int
    legs_recovered: int
    generation: int | None
    kamailio: str
    error: str
    detected_at: datetime | None
    completed_at: datetime | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    node_name: str = ""
    spare_name: str = ""
    takeover: str = ""  # whether the heir took the dead node's address, and why (not)
    calls_tracked: int = 0  # answered legs the dead node's sofia tracked for recovery
    calls_recovered: int = 0  # legs the heir brought back (sofia recover)
    recovered_legs: tuple[str, ...] = ()  # their channel UUIDs: the heir keeps the address while one is up
    registrations_moved: int = 0

    def public(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, UUID) else v.isoformat() if isinstance(v, datetime) else v)
            for k, v in self.__dict__.items()
        }


def decide(
    conn: psycopg.Connection[Any],
    id: UUID,
    node_id: UUID,
    incident: str,
    spare_id: UUID | None,
    reason: str,
    decided_by: str,
    detected_at: datetime | None,
) -> Failover | None:
    """Record the decision; None when this death was already decided (by us or another controller)."""
    row = conn.execute(
        """INSERT INTO failovers (id, node_id, incident, spare_id, reason, decided_by, detected_at,
                                  node_name, spare_name)
           VALUES (%s, %s, %s, %s, %s, %s, %s, (SELECT name FROM nodes WHERE id = %s),
                   coalesce((SELECT name FROM nodes WHERE id = %s), ''))
           ON CONFLICT (node_id, incident) DO NOTHING RETURNING *""",
        [id, node_id, incident, spare_id, reason, decided_by, detected_at, node_id, spare_id],
    ).fetchone()
    return rows.from_row(Failover, row) if row else None


def get(conn: psycopg.Connection[Any], id: UUID, *, lock: bool = False) -> Failover | None:
    query = "SELECT * FROM failovers WHERE id = %s" + (" FOR UPDATE" if lock else "")
    found = rows.select(conn, Failover, query, [id])
    return found[0] if found else None


def update(conn: psycopg.Connection[Any], id: UUID, changes: dict[str, Any]) -> Failover | None:
    return rows.update(conn, "failovers", Failover, id, changes)


def for_node(conn: psycopg.Connection[Any], node_id: UUID) -> list[Failover]:
    return rows.select(conn, Failover, "SELECT * FROM failovers WHERE node_id = %s ORDER BY created_at", [node_id])


def keep_names(conn: psycopg.Connection[Any], node_id: UUID, name: str) -> None:
    """Write ``name`` into the history rows of a node about to be deleted (as the dead node or the spare)."""
    conn.execute(
        "UPDATE failovers SET node_name = %s, updated_at = clock_timestamp() WHERE node_id = %s", [name, node_id]
    )
    conn.execute(
        "UPDATE failovers SET spare_name = %s, updated_at = clock_timestamp() WHERE spare_id = %s", [name, node_id]
    )


def recent(conn: psycopg.Connection[Any], limit: int = 50) -> list[Failover]:
    return rows.select(conn, Failover, "SELECT * FROM failovers ORDER BY created_at DESC LIMIT %s", [limit])


def unfinished(conn: psycopg.Connection[Any]) -> list[Failover]:
    return rows.select(
        conn,
        Failover,
        "SELECT * FROM failovers WHERE state = ANY(%s) ORDER BY created_at",
        [[FailoverState.DECIDED, FailoverState.MOVED]],
    )


def summary(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """For the metrics: failovers per state, the newest one's durations (detection to decision, detection
    to completion, in seconds; None when unknown) and the age of the oldest unfinished one (0 when none)."""
    states = conn.execute("SELECT state, count(*) AS n FROM failovers GROUP BY state").fetchall()
    newest = conn.execute(
        "SELECT date_part('epoch', created_at - detected_at)::float8 AS decision,"
        " date_part('epoch', completed_at - detected_at)::float8 AS completion"
        " FROM failovers ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    stuck = conn.execute(
        "SELECT coalesce(date_part('epoch', now() - min(created_at)), 0)::float8 AS age"
        " FROM failovers WHERE state = ANY(%s)",
        [[FailoverState.DECIDED, FailoverState.MOVED]],
    ).fetchone()
    return {
        "states": {r["state"]: int(r["n"]) for r in states},
        "decision": newest["decision"] if newest else None,
        "completion": newest["completion"] if newest else None,
        "unfinished_age": stuck["age"] if stuck else 0.0,
    }
