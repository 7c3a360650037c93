"""Queries shared by every object that lives inside one tenant (users, rooms, IVRs, gateways, DIDs).

Every read and write is filtered by ``tenant_id``: a row of another tenant is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql

from controller.stores import rows

T = TypeVar("T")


def as_uuid(ref: str | UUID) -> UUID | None:
    if isinstance(ref, UUID):
        return ref
    try:
        return UUID(ref)
    except ValueError:
        return None


@dataclass(frozen=True)
class TenantChildStore(Generic[T]):
    """SQL for one tenant-owned table; ``key`` is its natural key inside the tenant."""

    table: str
    cls: type[T]
    key: str

    def list(self, conn: psycopg.Connection[Any], tenant_id: UUID) -> list[T]:
        query = sql.SQL("SELECT * FROM {} WHERE tenant_id = %s ORDER BY {}").format(
            sql.Identifier(self.table), sql.Identifier(self.key)
        )
        return rows.select(conn, self.cls, query.as_string(conn), [tenant_id])

    def get(self, conn: psycopg.Connection[Any], tenant_id: UUID, ref: str | UUID) -> T | None:
        """By id, or by natural key (extension, number, name) within the tenant."""
        uid = as_uuid(ref)
        column = "id" if uid else self.key
        query = sql.SQL("SELECT * FROM {} WHERE tenant_id = %s AND {} = %s").format(
            sql.Identifier(self.table), sql.Identifier(column)
        )
        found = rows.select(conn, self.cls, query.as_string(conn), [tenant_id, uid or str(ref)])
        return found[0] if found else None

    def rows_of(self, conn: psycopg.Connection[Any], tenant_id: UUID | None) -> list[T]:
        """Every row of one tenant, or of all tenants when ``tenant_id`` is None, in no particular order."""
        query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(self.table))
        if tenant_id is None:
            return rows.select(conn, self.cls, query.as_string(conn))
        query = sql.SQL("{} WHERE tenant_id = %s").format(query)
        return rows.select(conn, self.cls, query.as_string(conn), [tenant_id])

    def insert(self, conn: psycopg.Connection[Any], record: T) -> T:
        return rows.insert(conn, self.table, record)

    def update(self, conn: psycopg.Connection[Any], id: UUID, changes: dict[str, Any]) -> T | None:
        return rows.update(conn, self.table, self.cls, id, changes)

    def delete(self, conn: psycopg.Connection[Any], id: UUID) -> bool:
        return rows.delete(conn, self.table, id)
