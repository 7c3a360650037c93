"""Which tenant an event belongs to, read from the channel variables fsfarm's dialplan sets."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import psycopg

from controller.stores import tenants

TENANT_HEADERS = ("variable_fsfarm_tenant", "variable_domain_name", "variable_dialed_domain", "Caller-Context")


def domain_of(headers: Mapping[str, str]) -> str:
    """The tenant domain an event names: our own variable first, then what FreeSWITCH knows."""
    for name in TENANT_HEADERS:
        value = headers.get(name, "")
        if value and value not in ("default", "public"):
            return value.lower()
    return ""


class TenantCache:
    """Domain → tenant id, looked up once per minute at most (events name tenants by domain)."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[UUID | None, float]] = {}

    def resolve(self, conn: psycopg.Connection[Any], domain: str) -> UUID | None:
        if not domain:
            return None
        now = time.monotonic()
        hit = self._known.get(domain)
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        tenant = tenants.by_domain(conn, domain)
        tenant_id = tenant.id if tenant else None
        self._known[domain] = (tenant_id, now)
        return tenant_id
