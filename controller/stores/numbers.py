"""Phone numbers (DIDs) and what each one reaches inside its tenant."""

from __future__ import annotations

from typing import Any

import psycopg

from controller.domain import Number
from controller.stores import rows
from controller.stores.children import TenantChildStore

store = TenantChildStore("numbers", Number, "number")


def by_number(conn: psycopg.Connection[Any], number: str) -> Number | None:
    """The DID as a carrier delivers it, across all tenants (public context routing)."""
    found = rows.select(conn, Number, "SELECT * FROM numbers WHERE number = %s", [number])
    return found[0] if found else None


def by_did(conn: psycopg.Connection[Any], did: str) -> Number | None:
    """A DID as the carrier sent it, with or without its leading +."""
    candidates = [did, did[1:]] if did.startswith("+") else [did, "+" + did]
    found = rows.select(conn, Number, "SELECT * FROM numbers WHERE number = ANY(%s) ORDER BY number DESC", [candidates])
    return found[0] if found else None
