"""Outbound carrier gateways of a tenant."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import Gateway
from controller.stores import rows
from controller.stores.children import TenantChildStore

store = TenantChildStore("gateways", Gateway, "name")


def of_tenants(conn: psycopg.Connection[Any], tenant_ids: Iterable[UUID]) -> list[Gateway]:
    """The gateways of all these tenants, by name."""
    return rows.select(
        conn, Gateway, "SELECT * FROM gateways WHERE tenant_id = ANY(%s) ORDER BY name", [list(tenant_ids)]
    )
