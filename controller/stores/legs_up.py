"""The billed gateway legs up now (``billing_legs_up``): live state, written at answer, deleted with the CDR."""

from __future__ import annotations

import uuid
from datetime import datetime
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
    """Record a billed leg that answered (again: nothing changes)."""
    prefix, price, fee, first, next_ = tariff
    conn.execute(
        """INSERT INTO billing_legs_up (id, channel_uuid, node_id, account_id, prefix, price_per_minute,
               connect_fee, first_increment, next_increment, answered_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (channel_uuid) DO NOTHING""",
        [uuid.uuid4(), channel_uuid, node_id, account_id, prefix, price, fee, first, next_, answered_at],
    )


def remove(conn: psycopg.Connection[Any], channel_uuid: str) -> None:
    """The leg ended (its CDR is being stored)."""
    conn.execute("DELETE FROM billing_legs_up WHERE channel_uuid = %s", [channel_uuid])


def of_account(conn: psycopg.Connection[Any], account_id: UUID, since: datetime) -> list[dict[str, Any]]:
    """The account's legs up that answered after ``since`` (older rows: a CDR that never came)."""
    return conn.execute(
        "SELECT * FROM billing_legs_up WHERE account_id = %s AND answered_at > %s ORDER BY answered_at",
        [account_id, since],
    ).fetchall()
