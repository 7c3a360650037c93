"""SIP registrations (``esl_registrations``) as mod_sofia reports them, one row per device binding."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg


def save(
    conn: psycopg.Connection[Any],
    node_id: UUID,
    tenant_id: UUID | None,
    realm: str,
    username: str,
    call_id: str,
    *,
    contact: str,
    network_ip: str,
    network_port: str,
    user_agent: str,
    status: str,
    expires_at: datetime | None,
) -> None:
    """Insert or refresh the binding of ``username@realm`` with this call-id on the node."""
    conn.execute(
        """INSERT INTO esl_registrations (id, node_id, tenant_id, realm, username, call_id, contact, network_ip,
               network_port, user_agent, status, expires_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (node_id, realm, username, call_id) DO UPDATE SET
               tenant_id = EXCLUDED.tenant_id, contact = EXCLUDED.contact, network_ip = EXCLUDED.network_ip,
               network_port = EXCLUDED.network_port, user_agent = EXCLUDED.user_agent,
               status = EXCLUDED.status, expires_at = EXCLUDED.expires_at, updated_at = now()""",
        (
            uuid.uuid4(),
            node_id,
            tenant_id,
            realm,
            username,
            call_id,
            contact,
            network_ip,
            network_port,
            user_agent,
            status,
            expires_at,
        ),
    )


def forget(conn: psycopg.Connection[Any], node_id: UUID, realm: str, username: str, call_id: str = "") -> None:
    """Remove the binding with this call-id; without one, every binding of ``username@realm`` on the node."""
    if call_id:
        conn.execute(
            """DELETE FROM esl_registrations WHERE node_id = %s AND realm = %s AND username = %s
                        AND call_id = %s""",
            (node_id, realm, username, call_id),
        )
    else:
        conn.execute(
            "DELETE FROM esl_registrations WHERE node_id = %s AND realm = %s AND username = %s",
            (node_id, realm, username),
        )


def list_for_tenant(conn: psycopg.Connection[Any], tenant_id: UUID) -> list[dict[str, Any]]:
    """A tenant's current registrations (expired ones are left out even before sofia::expire arrives)."""
    cur = conn.execute(
        """SELECT r.username, r.realm, r.contact, r.network_ip, r.network_port, r.user_agent, r.status,
                  r.expires_at, r.call_id, n.name AS node, r.updated_at
           FROM esl_registrations r JOIN nodes n ON n.id = r.node_id
           WHERE r.tenant_id = %s AND (r.expires_at IS NULL OR r.expires_at > now())
           ORDER BY r.username, r.call_id""",
        (tenant_id,),
    )
    return cur.fetchall()


def counts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Device bindings per (node_id, tenant_id) pair (tenant_id None: not a tenant's), for the metrics."""
    return conn.execute("SELECT node_id, tenant_id, count(*) AS n FROM esl_registrations GROUP BY 1, 2").fetchall()
