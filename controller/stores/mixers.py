"""HD conference mixer sidecars the controller drives."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Mixer, MixerHealth
from controller.stores import rows


def list_all(conn: psycopg.Connection[Any]) -> list[Mixer]:
    return rows.select(conn, Mixer, "SELECT * FROM mixers ORDER BY name")


def get(conn: psycopg.Connection[Any], ref: str | UUID) -> Mixer | None:
    """By id or by name."""
    return rows.by_id_or_name(conn, "mixers", Mixer, ref)


def insert(conn: psycopg.Connection[Any], mixer: Mixer) -> Mixer:
    return rows.insert(conn, "mixers", mixer)


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "mixers", id)


def set_health(conn: psycopg.Connection[Any], id: UUID, health: MixerHealth) -> None:
    conn.execute("UPDATE mixers SET health = %s, updated_at = clock_timestamp() WHERE id = %s", [health, id])


def set_control_token(conn: psycopg.Connection[Any], id: UUID, token: str) -> Mixer | None:
    return rows.update(conn, "mixers", Mixer, id, {"control_token": token})
