"""HD conference mixer sidecars the controller drives."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Mixer
from controller.stores import rows
from controller.stores.children import as_uuid


def list_all(conn: psycopg.Connection[Any]) -> list[Mixer]:
    return rows.select(conn, Mixer, "SELECT * FROM mixers ORDER BY name")


def get(conn: psycopg.Connection[Any], ref: str | UUID) -> Mixer | None:
    uid = as_uuid(ref)
    if uid:
        return rows.get(conn, "mixers", Mixer, uid)
    found = rows.select(conn, Mixer, "SELECT * FROM mixers WHERE name = %s", [str(ref)])
    return found[0] if found else None


def insert(conn: psycopg.Connection[Any], mixer: Mixer) -> Mixer:
    return rows.insert(conn, "mixers", mixer)


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "mixers", id)
