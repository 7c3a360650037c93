"""The billed gateway legs up now (``billing_legs_up``): live state, written at answer, deleted with the CDR."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg


def add(
    conn: psycopg.Connection[Any],
    channel_uuid: str,
    node_id: UUID,
    account_id: UUID,
    tariff: tuple[str, Decimal, Decimal, int, int],
    answered_at: datetime,
) -> None:
    """Record a billed leg that answered (again, as a leg recovered on another node does: only its node changes)."""
    prefix, price, fee, first, next_ = tariff
    conn.execute(
        """INSERT INTO billing_legs_up (id, channel_uuid, node_id, account_id, prefix, price_per_minute,
               connect_fee, first_increment, next_increment, answered_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (channel_uuid) DO UPDATE SET node_id = EXCLUDED.node_id""",
        [uuid.uuid4(), channel_uuid, node_id, account_id, prefix, price, fee, first, next_, answered_at],
    )


def remove(conn: psycopg.Connection[Any], channel_uuid: str) -> None:
    """The leg ended (its CDR is being stored)."""
    conn.execute("DELETE FROM billing_legs_up WHERE channel_uuid = %s", [channel_uuid])


def of_account(conn: psycopg.Connection[Any], account_id: UUID, since: datetime) -> list[dict[str, Any]]:
    """The account's legs up that answered after ``since``.

    A leg stays here from its answer until its CDR is stored, even after its channel is gone from the
    node: until then its cost is not in the ledger, so it still counts as burning. One whose hangup
    (and CDR) was missed while the controller was away is dropped by the node's ESL reconcile
    (``drop_missing``) instead of burning the account's money for a day.
    """
    return conn.execute(
        "SELECT * FROM billing_legs_up WHERE account_id = %s AND answered_at > %s ORDER BY answered_at",
        [account_id, since],
    ).fetchall()


def of_accounts(conn: psycopg.Connection[Any], account_ids: list[UUID], since: datetime) -> list[dict[str, Any]]:
    """``of_account`` for many accounts in one query (a node's reconnect re-times all of its accounts)."""
    return conn.execute(
        "SELECT * FROM billing_legs_up WHERE account_id = ANY(%s) AND answered_at > %s ORDER BY answered_at",
        [account_ids, since],
    ).fetchall()


def move(conn: psycopg.Connection[Any], channel_uuids: list[str], node_id: UUID) -> list[UUID]:
    """These legs now live on ``node_id`` (recovered there after a failover); the accounts that pay them."""
    found = conn.execute(
        "UPDATE billing_legs_up SET node_id = %s WHERE channel_uuid = ANY(%s) RETURNING account_id",
        [node_id, channel_uuids],
    )
    return sorted({r["account_id"] for r in found.fetchall()})


def drop_missing(
    conn: psycopg.Connection[Any], node_id: UUID, present: list[str], grace: timedelta = timedelta(seconds=30)
) -> int:
    """Forget the node's legs that FreeSWITCH no longer has and whose CDR has not come for ``grace``."""
    return conn.execute(
        """DELETE FROM billing_legs_up WHERE node_id = %s AND NOT (channel_uuid = ANY(%s))
           AND answered_at < now() - %s""",
        [node_id, present, grace],
    ).rowcount


def accounts_on_node(conn: psycopg.Connection[Any], node_id: UUID) -> list[UUID]:
    """The accounts with a billed leg up on this node."""
    found = conn.execute("SELECT DISTINCT account_id FROM billing_legs_up WHERE node_id = %s", [node_id])
    return [r["account_id"] for r in found.fetchall()]
