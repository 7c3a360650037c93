"""IVR applications of a tenant (the name an ``@ivr`` script registers under)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Ivr
from controller.stores import rows
from controller.stores.children import TenantChildStore

store = TenantChildStore("ivrs", Ivr, "name")


def by_extension(conn: psycopg.Connection[Any], tenant_id: UUID, extension: str) -> Ivr | None:
    found = rows.select(conn, Ivr, "SELECT * FROM ivrs WHERE tenant_id = %s AND extension = %s", [tenant_id, extension])
    return found[0] if found else None


def by_name(conn: psycopg.Connection[Any], tenant_id: UUID, name: str) -> Ivr | None:
    found = rows.select(conn, Ivr, "SELECT * FROM ivrs WHERE tenant_id = %s AND name = %s", [tenant_id, name])
    return found[0] if found else None
