"""Mapping between frozen dataclasses and table rows: explicit column lists, nothing implicit.

Every column of a table is a field of its dataclass with the same name, so INSERT and UPDATE
are written once here; the aggregate stores keep their own queries. The columns in ``SEALED`` are
encrypted on the way in and decrypted on the way out (``controller.secrets``): records hold plaintext.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from controller import secrets
from controller.domain import Conference, Gateway, Mixer, Node, User
from controller.errors import Conflict, Invalid

T = TypeVar("T")

# Unique constraints named by PostgreSQL's defaults -> the sentence a user reads.
_UNIQUE_MESSAGES = {
    "tenants_domain_key": "a tenant with this domain already exists",
    "users_tenant_id_extension_key": "this extension already exists in the tenant",
    "conferences_tenant_id_number_key": "a conference with this number already exists in the tenant",
    "ivrs_tenant_id_name_key": "an IVR with this name already exists in the tenant",
    "gateways_tenant_id_name_key": "a gateway with this name already exists in the tenant",
    "numbers_number_key": "this number is already assigned",
    "numbers_number_digits_key": "this number is already assigned (with or without its leading +)",
    "nodes_name_key": "a node with this name already exists",
    "nodes_switchname_key": "a node with this switchname already exists",
    "mixers_name_key": "a mixer with this name already exists",
}


# Secrets FreeSWITCH or a carrier needs back, so kept encrypted rather than hashed: record type -> (table, columns).
SEALED: dict[type, tuple[str, tuple[str, ...]]] = {
    Node: ("nodes", ("esl_password",)),
    User: ("users", ("a1_hash", "vm_a1_hash")),
    Conference: ("conferences", ("pin",)),
    Gateway: ("gateways", ("password",)),
    Mixer: ("mixers", ("control_token",)),
}


def where(table: str, column: str, id: UUID | str) -> str:
    """What a sealed value is bound to: a ciphertext copied to another row or column does not open."""
    return f"{table}.{column}:{id}"


def _sealed(cls: type, id: UUID | None, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the sealed columns of ``cls`` encrypted for row ``id``."""
    table, columns = SEALED.get(cls, ("", ()))
    if not any(c in values for c in columns):
        return values
    cipher = secrets.active()
    return {k: cipher.seal(v, where(table, k, id)) if k in columns else v for k, v in values.items()}


def seal_stored(conn: psycopg.Connection[Any]) -> int:
    """Encrypt the sealed columns still stored in clear (rows written before sealing); return how many.

    Also opens one sealed value per column, so a wrong key stops the start with one SecretKeyError.
    ``updated_at`` is left alone: the value did not change, so this never wins over a newer write at another site.
    """
    cipher = secrets.active()
    sealed_like = secrets.PREFIX + "%"
    count = 0
    for table, columns in SEALED.values():
        for column in columns:
            probe = sql.SQL("SELECT id, {c} AS value FROM {t} WHERE {c} LIKE %s LIMIT 1").format(
                c=sql.Identifier(column), t=sql.Identifier(table)
            )
            for row in conn.execute(probe, [sealed_like]).fetchall():
                cipher.open(row["value"], where(table, column, row["id"]))
        in_clear = sql.SQL(" OR ").join(
            sql.SQL("({c} <> '' AND {c} NOT LIKE %s)").format(c=sql.Identifier(c)) for c in columns
        )
        query = sql.SQL("SELECT id, {} FROM {} WHERE {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), in_clear
        )
        for row in conn.execute(query, [sealed_like] * len(columns)).fetchall():
            for column in columns:
                value = row[column]
                if not value or value.startswith(secrets.PREFIX):
                    continue
                # Compare-and-set: a row changed meanwhile was sealed by the write that changed it.
                update = sql.SQL("UPDATE {t} SET {c} = %s WHERE id = %s AND {c} = %s").format(
                    t=sql.Identifier(table), c=sql.Identifier(column)
                )
                sealed = cipher.seal(value, where(table, column, row["id"]))
                count += conn.execute(update, [sealed, row["id"], value]).rowcount
    return count


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@functools.cache
def _enum_fields(cls: type) -> dict[str, type[enum.Enum]]:
    """The fields of ``cls`` typed as an enum (a state column), by name."""
    hints = typing.get_type_hints(cls)
    return {name: hint for name, hint in hints.items() if isinstance(hint, type) and issubclass(hint, enum.Enum)}


def from_row(cls: type[T], row: dict[str, Any]) -> T:
    """Build ``cls`` from a dict row; SQL arrays become tuples so the record stays hashable, and the text
    of a state column becomes its enum member (a value its CHECK allows and the enum lacks raises ValueError),
    and a sealed column is decrypted."""
    enums = _enum_fields(cls)
    table, sealed = SEALED.get(cls, ("", ()))
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = row[f.name]
        if isinstance(value, list):
            value = tuple(value)
        elif value is not None and f.name in enums:
            value = enums[f.name](value)
        elif f.name in sealed:
            value = secrets.active().open(value, where(table, f.name, row["id"]))
        values[f.name] = value
    return cls(**values)


def _adapt(value: Any) -> Any:
    if isinstance(value, dict):
        return Jsonb(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _translate(exc: psycopg.Error) -> Exception:
    diag = exc.diag
    if isinstance(exc, psycopg.errors.UniqueViolation):
        name = diag.constraint_name or ""
        return Conflict(_UNIQUE_MESSAGES.get(name, "this value is already taken"), {"constraint": name})
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return Invalid("a referenced object does not exist", {"constraint": diag.constraint_name})
    if isinstance(exc, psycopg.errors.CheckViolation):
        return Invalid("a value is out of range", {"constraint": diag.constraint_name})
    return exc


def insert(conn: psycopg.Connection[Any], table: str, record: T) -> T:
    """INSERT every field of ``record`` (timestamps from the server, sealed columns encrypted); return the row."""
    names = [n for n in field_names(type(record)) if n not in ("created_at", "updated_at")]
    values = {n: getattr(record, n) for n in names}
    values = _sealed(type(record), values.get("id"), values)
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
    )
    try:
        with conn.transaction():  # a savepoint, so a conflict leaves the caller's transaction usable
            row = conn.execute(query, [_adapt(values[n]) for n in names]).fetchone()
    except psycopg.Error as exc:
        raise _translate(exc) from exc
    assert row is not None
    return from_row(type(record), row)


def update(conn: psycopg.Connection[Any], table: str, cls: type[T], id: UUID, changes: dict[str, Any]) -> T | None:
    """UPDATE the given columns (sealed ones encrypted) and bump ``updated_at`` (last writer wins across sites)."""
    allowed = set(field_names(cls)) - {"id", "created_at", "updated_at"}
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid("unknown fields", sorted(unknown))
    changes = _sealed(cls, id, changes)
    assignments = [sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder()) for k in changes]
    assignments.append(sql.SQL("updated_at = clock_timestamp()"))
    query = sql.SQL("UPDATE {} SET {} WHERE id = %s RETURNING *").format(
        sql.Identifier(table), sql.SQL(", ").join(assignments)
    )
    try:
        with conn.transaction():
            row = conn.execute(query, [*(_adapt(v) for v in changes.values()), id]).fetchone()
    except psycopg.Error as exc:
        raise _translate(exc) from exc
    return from_row(cls, row) if row else None


def get(conn: psycopg.Connection[Any], table: str, cls: type[T], id: UUID) -> T | None:
    row = conn.execute(sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(table)), [id]).fetchone()
    return from_row(cls, row) if row else None


def select(conn: psycopg.Connection[Any], cls: type[T], query: str, params: Any = ()) -> list[T]:
    return [from_row(cls, row) for row in conn.execute(query, params).fetchall()]  # type: ignore[arg-type]


def delete(conn: psycopg.Connection[Any], table: str, id: UUID) -> bool:
    cur = conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), [id])
    return cur.rowcount > 0


def by_id_or_name(conn: psycopg.Connection[Any], table: str, cls: type[T], ref: str | UUID) -> T | None:
    """A row of a farm-level table (nodes, mixers) by its UUID or its unique ``name``."""
    try:
        uid = ref if isinstance(ref, UUID) else UUID(str(ref))
    except ValueError:
        uid = None
    if uid is not None:
        return get(conn, table, cls, uid)
    row = conn.execute(sql.SQL("SELECT * FROM {} WHERE name = %s").format(sql.Identifier(table)), [str(ref)]).fetchone()
    return from_row(cls, row) if row else None
