"""Prepaid accounts (``billing_accounts``): a tenant's own, or one user's."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import BillingAccount
from controller.stores import rows


def insert(conn: psycopg.Connection[Any], account: BillingAccount) -> BillingAccount:
    return rows.insert(conn, "billing_accounts", account)


def update(conn: psycopg.Connection[Any], id: UUID, changes: dict[str, Any]) -> BillingAccount | None:
    return rows.update(conn, "billing_accounts", BillingAccount, id, changes)


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "billing_accounts", id)


def of_tenant(conn: psycopg.Connection[Any], tenant_id: UUID) -> list[BillingAccount]:
    """A tenant's accounts, its own first."""
    return rows.select(
        conn,
        BillingAccount,
        "SELECT * FROM billing_accounts WHERE tenant_id = %s ORDER BY user_id NULLS FIRST, created_at",
        [tenant_id],
    )


def get(conn: psycopg.Connection[Any], tenant_id: UUID, id: UUID) -> BillingAccount | None:
    """An account by id, only inside ``tenant_id``."""
    found = rows.select(
        conn, BillingAccount, "SELECT * FROM billing_accounts WHERE tenant_id = %s AND id = %s", [tenant_id, id]
    )
    return found[0] if found else None


def for_owner(conn: psycopg.Connection[Any], tenant_id: UUID, user_id: UUID | None) -> BillingAccount | None:
    """The tenant's own account (``user_id`` None) or that user's."""
    found = rows.select(
        conn,
        BillingAccount,
        "SELECT * FROM billing_accounts WHERE tenant_id = %s AND user_id IS NOT DISTINCT FROM %s",
        [tenant_id, user_id],
    )
    return found[0] if found else None


def list_all(conn: psycopg.Connection[Any]) -> list[BillingAccount]:
    return rows.select(conn, BillingAccount, "SELECT * FROM billing_accounts")


def paying(conn: psycopg.Connection[Any], tenant_id: UUID, extension: str) -> BillingAccount | None:
    """In one query: the account of the tenant's user ``extension`` if it has one, else the tenant's own."""
    found = rows.select(
        conn,
        BillingAccount,
        """SELECT a.* FROM billing_accounts a LEFT JOIN users u ON u.id = a.user_id
           WHERE a.tenant_id = %s AND (a.user_id IS NULL OR (u.extension = %s AND u.tenant_id = a.tenant_id))
           ORDER BY a.user_id NULLS LAST LIMIT 1""",
        [tenant_id, extension],
    )
    return found[0] if found else None
