"""The append-only ledger (``ledger_entries``): a balance is a sum, nothing is updated in place."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import LedgerEntry, LedgerKind
from controller.stores import rows

_COLUMNS = [n for n in rows.field_names(LedgerEntry) if n not in ("created_at", "updated_at")]
_ADD = (
    f"INSERT INTO ledger_entries ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (reference) DO NOTHING RETURNING *"
)


def add(conn: psycopg.Connection[Any], entry: LedgerEntry) -> LedgerEntry | None:
    """Append ``entry``; None (and nothing written) when its reference is already in the ledger."""
    values = [getattr(entry, n) for n in _COLUMNS]
    row = conn.execute(_ADD, [str(x) if isinstance(x, LedgerKind) else x for x in values]).fetchone()
    return rows.from_row(LedgerEntry, row) if row else None


def by_reference(conn: psycopg.Connection[Any], reference: str) -> LedgerEntry | None:
    found = rows.select(conn, LedgerEntry, "SELECT * FROM ledger_entries WHERE reference = %s", [reference])
    return found[0] if found else None


def balance(conn: psycopg.Connection[Any], account_id: UUID) -> Decimal:
    """The account's balance: the sum of its entries."""
    row = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) AS balance FROM ledger_entries WHERE account_id = %s", [account_id]
    ).fetchone()
    assert row is not None
    return Decimal(row["balance"])


def balances(conn: psycopg.Connection[Any], account_ids: Iterable[UUID] | None = None) -> dict[UUID, Decimal]:
    """Balances of these accounts (every account with an entry when None); an account without entries is absent."""
    if account_ids is None:
        found = conn.execute("SELECT account_id, SUM(amount) AS balance FROM ledger_entries GROUP BY account_id")
    else:
        found = conn.execute(
            "SELECT account_id, SUM(amount) AS balance FROM ledger_entries WHERE account_id = ANY(%s) "
            "GROUP BY account_id",
            [list(account_ids)],
        )
    return {r["account_id"]: Decimal(r["balance"]) for r in found.fetchall()}


def entries(conn: psycopg.Connection[Any], account_id: UUID, limit: int = 100) -> list[LedgerEntry]:
    """An account's newest entries first."""
    return rows.select(
        conn,
        LedgerEntry,
        "SELECT * FROM ledger_entries WHERE account_id = %s ORDER BY created_at DESC, id LIMIT %s",
        [account_id, limit],
    )


def calls(conn: psycopg.Connection[Any], tenant_id: UUID, limit: int = 100) -> list[LedgerEntry]:
    """A tenant's rated call legs, newest first."""
    return rows.select(
        conn,
        LedgerEntry,
        "SELECT * FROM ledger_entries WHERE tenant_id = %s AND kind = 'call' ORDER BY created_at DESC, id LIMIT %s",
        [tenant_id, limit],
    )
