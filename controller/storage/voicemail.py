"""Voicemail boxes: audio in shared storage, metadata in PostgreSQL, file always before row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

from controller.database import Database
from controller.domain import Tenant, User
from controller.errors import NotFound
from controller.storage import audio
from controller.storage.base import Storage
from controller.storage.paths import TenantFiles
from controller.stores import tenants, users
from controller.stores import voicemail_messages as messages
from controller.stores.voicemail_messages import VoicemailMessage


@dataclass(frozen=True)
class Mailbox:
    tenant: Tenant
    user: User


def mailbox(db: Database, tenant: Tenant, extension: str) -> Mailbox:
    """The user's mailbox in this tenant, or NotFound (a user of another tenant is never found)."""
    with db.transaction() as conn:
        user = users.store.get(conn, tenant.id, extension)
    if user is None:
        raise NotFound(f"no user {extension!r} in {tenant.domain}")
    return Mailbox(tenant, user)


def deposit(
    db: Database, storage: Storage, box: Mailbox, data: bytes, caller_id_number: str = "", caller_id_name: str = ""
) -> VoicemailMessage:
    """Store a new message: validate the WAV, write the file, then the row (the file goes if the row fails)."""
    info = audio.check_wav(data, max_seconds=audio.VOICEMAIL_MAX_SECONDS, max_bytes=audio.VOICEMAIL_MAX_BYTES)
    message_id = uuid.uuid4()
    relative = f"{box.user.extension}/{message_id}.wav"
    files = TenantFiles(storage, box.tenant.id)
    stored = files.put("voicemail", relative, data)
    try:
        with db.transaction() as conn:
            return messages.insert(
                conn,
                VoicemailMessage(
                    id=message_id,
                    tenant_id=box.tenant.id,
                    user_id=box.user.id,
                    extension=box.user.extension,
                    path=relative,
                    duration_ms=info.duration_ms,
                    size_bytes=stored.size,
                    sample_rate=info.rate,
                    caller_id_number=caller_id_number[:64],
                    caller_id_name=caller_id_name[:128],
                ),
            )
    except BaseException:
        files.delete("voicemail", relative)
        raise


def register_recorded(
    db: Database, storage: Storage, box: Mailbox, relative: str, caller_id_number: str = "", caller_id_name: str = ""
) -> VoicemailMessage:
    """Record the row for a message a FreeSWITCH node wrote itself into ``<tenant-id>/voicemail/``.

    Idempotent on the path: the same deposit announced twice is one message.
    """
    data = TenantFiles(storage, box.tenant.id).get("voicemail", relative)
    info = audio.check_wav(data, max_seconds=audio.VOICEMAIL_MAX_SECONDS, max_bytes=audio.VOICEMAIL_MAX_BYTES)
    with db.transaction() as conn:
        existing = messages.id_by_path(conn, box.tenant.id, relative)
        if existing:
            found = messages.get(conn, box.tenant.id, box.user.id, existing)
            assert found is not None
            return found
        return messages.insert(
            conn,
            VoicemailMessage(
                id=uuid.uuid4(),
                tenant_id=box.tenant.id,
                user_id=box.user.id,
                extension=box.user.extension,
                path=relative,
                duration_ms=info.duration_ms,
                size_bytes=len(data),
                sample_rate=info.rate,
                caller_id_number=caller_id_number[:64],
                caller_id_name=caller_id_name[:128],
            ),
        )


def list_messages(db: Database, box: Mailbox) -> list[VoicemailMessage]:
    with db.transaction() as conn:
        return messages.for_user(conn, box.tenant.id, box.user.id)


def _message(conn: object, box: Mailbox, message_id: str) -> VoicemailMessage:
    try:
        uid = UUID(message_id)
    except ValueError:
        raise NotFound(f"no message {message_id!r} for {box.user.extension}") from None
    found = messages.get(conn, box.tenant.id, box.user.id, uid)  # type: ignore[arg-type]
    if found is None:
        raise NotFound(f"no message {message_id!r} for {box.user.extension}")
    return found


def get_message(db: Database, box: Mailbox, message_id: str) -> VoicemailMessage:
    with db.transaction() as conn:
        return _message(conn, box, message_id)


def message_audio(db: Database, storage: Storage, box: Mailbox, message_id: str) -> tuple[VoicemailMessage, bytes]:
    """The message and its WAV bytes."""
    message = get_message(db, box, message_id)
    return message, TenantFiles(storage, box.tenant.id).get("voicemail", message.path)


def mark_read(db: Database, box: Mailbox, message_id: str) -> VoicemailMessage:
    with db.transaction() as conn:
        message = _message(conn, box, message_id)
        updated = messages.mark_read(conn, message.id)
        assert updated is not None
        return updated


def delete_message(db: Database, storage: Storage, box: Mailbox, message_id: str) -> VoicemailMessage:
    """Delete the audio, then the row, in one transaction: if storage fails the row stays."""
    with db.transaction() as conn:
        message = _message(conn, box, message_id)
        TenantFiles(storage, box.tenant.id).delete("voicemail", message.path)
        messages.delete(conn, message.id)
    return message


def tenant_of(db: Database, ref: str) -> Tenant:
    """The tenant ``ref`` names (domain or id), or NotFound."""
    with db.transaction() as conn:
        tenant = tenants.get(conn, ref)
    if tenant is None:
        raise NotFound(f"no tenant {ref!r}")
    return tenant
