"""SIP registrations from mod_sofia's sofia::register / sofia::unregister / sofia::expire events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from esl_workers.protocol import Event
from esl_workers.timefmt import from_usec, to_int

EVENTS = frozenset({"sofia::register", "sofia::unregister", "sofia::expire"})


@dataclass(frozen=True)
class Registration:
    """One device's registration of ``username@realm``; ``active`` False means it is gone."""

    active: bool
    realm: str
    username: str
    call_id: str
    contact: str = ""
    network_ip: str = ""
    network_port: str = ""
    user_agent: str = ""
    status: str = ""
    expires_at: datetime | None = None


def from_event(event: Event) -> Registration | None:
    """The registration change a sofia::* event reports; None for anything else."""
    if event.name != "CUSTOM" or event.subclass not in EVENTS:
        return None
    h = event.headers
    username = h.get("username") or h.get("from-user") or h.get("user", "")
    realm = (h.get("realm") or h.get("from-host") or h.get("host", "")).lower()
    if not username or not realm:
        return None
    active = event.subclass == "sofia::register"
    at = from_usec(h.get("Event-Date-Timestamp"))
    expires = to_int(h.get("expires"))
    return Registration(
        active=active,
        realm=realm,
        username=username,
        call_id=h.get("call-id", ""),
        contact=h.get("contact", ""),
        network_ip=h.get("network-ip", ""),
        network_port=h.get("network-port", ""),
        user_agent=h.get("user-agent", ""),
        status=h.get("status", ""),
        expires_at=at + timedelta(seconds=expires) if at and active and expires else None,
    )


def apply(conn: psycopg.Connection[Any], node_id: UUID, reg: Registration, tenant_id: UUID | None) -> None:
    if not reg.active:
        if reg.call_id:
            conn.execute(
                """DELETE FROM esl_registrations WHERE node_id = %s AND realm = %s AND username = %s
                            AND call_id = %s""",
                (node_id, reg.realm, reg.username, reg.call_id),
            )
        else:
            conn.execute(
                "DELETE FROM esl_registrations WHERE node_id = %s AND realm = %s AND username = %s",
                (node_id, reg.realm, reg.username),
            )
        return
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
            reg.realm,
            reg.username,
            reg.call_id,
            reg.contact,
            reg.network_ip,
            reg.network_port,
            reg.user_agent,
            reg.status,
            reg.expires_at,
        ),
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
