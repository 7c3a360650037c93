"""Users (SIP extensions) of a tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row

from controller import secrets
from controller.domain import User
from controller.stores import rows
from controller.stores.children import TenantChildStore

store = TenantChildStore("users", User, "extension")

# The fields of an enabled user that xml_curl answers render, in the order of ``xmlcurl.snapshot.SnapUser``.
ANSWER_COLUMNS = (
    "extension, a1_hash, display_name, caller_id_name, caller_id_number, toll_allow, accountcode, "
    "ring_timeout, voicemail, vm_a1_hash, vm_email"
)
_NAMES = [name.strip() for name in ANSWER_COLUMNS.split(",")]
_A1, _VM_A1 = _NAMES.index("a1_hash"), _NAMES.index("vm_a1_hash")  # the two sealed columns among them


def _opened(row: tuple[Any, ...], cipher: secrets.Cipher, at: int) -> tuple[Any, ...]:
    """``(id, *rest)`` as ``rest``, its two sealed hashes decrypted; ANSWER_COLUMNS start at ``rest[at]``."""
    id, *rest = row
    rest[at + _A1] = cipher.open(rest[at + _A1], rows.where("users", "a1_hash", id))
    rest[at + _VM_A1] = cipher.open(rest[at + _VM_A1], rows.where("users", "vm_a1_hash", id))
    return tuple(rest)


def enabled(conn: psycopg.Connection[Any], tenant_id: UUID, extension: str) -> User | None:
    """The tenant's user with this extension, if it is enabled."""
    found = rows.select(
        conn, User, "SELECT * FROM users WHERE tenant_id = %s AND extension = %s AND enabled", [tenant_id, extension]
    )
    return found[0] if found else None


def answer_rows_all(conn: psycopg.Connection[Any], chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    """(tenant_id, *ANSWER_COLUMNS) of every enabled user, hashes decrypted, ``chunk`` rows at a time.

    A server-side cursor: only one chunk is in memory at a time, not the whole result.
    """
    cipher = secrets.active()
    with conn.cursor(name="xmlcurl_snapshot_users", row_factory=tuple_row) as cur:
        cur.itersize = chunk
        cur.execute(f"SELECT id::text, tenant_id, {ANSWER_COLUMNS} FROM users WHERE enabled")  # text: no UUID made
        while batch := cur.fetchmany(chunk):
            yield [_opened(row, cipher, 1) for row in batch]


def answer_rows(conn: psycopg.Connection[Any], tenant_id: UUID) -> list[tuple[Any, ...]]:
    """ANSWER_COLUMNS of one tenant's enabled users, hashes decrypted."""
    cipher = secrets.active()
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(f"SELECT id::text, {ANSWER_COLUMNS} FROM users WHERE tenant_id = %s AND enabled", [tenant_id])
        return [_opened(row, cipher, 0) for row in cur.fetchall()]
