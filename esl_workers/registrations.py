"""SIP registrations from mod_sofia's sofia::register / sofia::unregister / sofia::expire events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from controller.stores import registrations as registrations_store
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
    """Store the registration, or forget it when ``reg`` says it is gone."""
    if not reg.active:
        registrations_store.forget(conn, node_id, reg.realm, reg.username, reg.call_id)
        return
    registrations_store.save(
        conn,
        node_id,
        tenant_id,
        reg.realm,
        reg.username,
        reg.call_id,
        contact=reg.contact,
        network_ip=reg.network_ip,
        network_port=reg.network_port,
        user_agent=reg.user_agent,
        status=reg.status,
        expires_at=reg.expires_at,
    )
