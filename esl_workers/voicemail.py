"""Voicemail that FreeSWITCH records itself: turn mod_voicemail's ``leave-message`` event into a message row.

Every node mounts the shared volume at the same path (``FSFARM_SHARED_MOUNT``) and xml_curl gives each
user ``vm-storage-dir = <mount>/<tenant-id>/voicemail/<extension>``, so the recording already sits where
the controller's storage expects it; the event only needs a row in ``voicemail_messages``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from uuid import UUID

import gevent

from controller.database import Database
from controller.errors import FarmError
from controller.storage import voicemail as vm_store
from controller.storage.base import Storage
from esl_workers.protocol import Event

log = logging.getLogger(__name__)

_FILE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True)
class Deposit:
    """A message a node has just written into a tenant's voicemail area."""

    tenant_id: UUID
    domain: str
    extension: str
    relative: str  # "<extension>/<file>", relative to <tenant-id>/voicemail/
    caller_id_number: str
    caller_id_name: str


def from_event(event: Event, shared_mount: str) -> Deposit | None:
    """Pure: the deposit a ``vm::maintenance`` leave-message event announces, if it is inside the shared tree."""
    if event.name != "CUSTOM" or event.get("Event-Subclass") != "vm::maintenance":
        return None
    if event.get("VM-Action") != "leave-message" or not shared_mount:
        return None
    path = event.get("VM-File-Path") or ""
    prefix = shared_mount.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].split("/")
    if len(parts) != 4 or parts[1] != "voicemail":
        return None
    tenant, _, extension, name = parts
    try:
        tenant_id = UUID(tenant)
    except ValueError:
        return None
    if not extension.isdigit() or extension != event.get("VM-User") or not _FILE.match(name) or name.startswith("."):
        return None
    return Deposit(
        tenant_id,
        (event.get("VM-Domain") or "").lower(),
        extension,
        f"{extension}/{name}",
        event.get("VM-Caller-ID-Number") or "",
        event.get("VM-Caller-ID-Name") or "",
    )


def register(db: Database, storage: Storage, deposit: Deposit, attempts: int = 5) -> bool:
    """Store the row for a deposit; retries while the file is not yet visible through the volume."""
    for attempt in range(attempts):
        try:
            tenant = vm_store.tenant_of(db, str(deposit.tenant_id))
            if tenant.domain != deposit.domain:
                log.warning("voicemail event for %s names domain %s: ignored", tenant.domain, deposit.domain)
                return False
            box = vm_store.mailbox(db, tenant, deposit.extension)
            vm_store.register_recorded(
                db, storage, box, deposit.relative, deposit.caller_id_number, deposit.caller_id_name
            )
            return True
        except FarmError as exc:
            if attempt == attempts - 1:
                log.warning(
                    "voicemail %s for %s@%s not registered: %s",
                    deposit.relative,
                    deposit.extension,
                    deposit.domain,
                    exc.message,
                )
                return False
            gevent.sleep(0.5 * (attempt + 1))
    return False
