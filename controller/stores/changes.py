"""Tell every controller process that stored configuration changed (PostgreSQL NOTIFY).

The notification is sent at commit, only if the transaction commits, so a listener (the
xml_curl answer cache, the ESL workers) never acts on a change that was rolled back.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import psycopg

CHANNEL = "fsfarm_config"


def announce(conn: psycopg.Connection[Any], what: str, tenant_id: UUID | None = None) -> None:
    """Queue a change notice: ``what`` is the kind changed (node, tenant, user, placement...)."""
    payload = json.dumps({"what": what, "tenant": str(tenant_id) if tenant_id else None})
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
