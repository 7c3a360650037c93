"""Rate decks, their rates, and which deck rates each tenant from when (``deck_assignments``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import DeckAssignment, Rate, RateDeck
from controller.stores import rows
from controller.stores.children import as_uuid


def insert(conn: psycopg.Connection[Any], deck: RateDeck) -> RateDeck:
    return rows.insert(conn, "rate_decks", deck)


def update(conn: psycopg.Connection[Any], id: UUID, changes: dict[str, Any]) -> RateDeck | None:
    return rows.update(conn, "rate_decks", RateDeck, id, changes)


def delete(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "rate_decks", id)


def visible(conn: psycopg.Connection[Any], tenant_id: UUID | None) -> list[RateDeck]:
    """Every deck (``tenant_id`` None, a farm admin's view) or only one tenant's own decks, by name."""
    if tenant_id is None:
        return rows.select(conn, RateDeck, "SELECT * FROM rate_decks ORDER BY tenant_id NULLS FIRST, name")
    return rows.select(conn, RateDeck, "SELECT * FROM rate_decks WHERE tenant_id = %s ORDER BY name", [tenant_id])


def find(conn: psycopg.Connection[Any], ref: str, owners: Iterable[UUID | None] | None) -> list[RateDeck]:
    """Decks named ``ref`` (or with that id) among the owners given (None in them: shared); None: any owner."""
    uid = as_uuid(ref)
    column = "id" if uid else "name"
    found = rows.select(conn, RateDeck, f"SELECT * FROM rate_decks WHERE {column} = %s", [uid or ref])
    if owners is None:
        return found
    allowed = set(owners)
    return [d for d in found if d.tenant_id in allowed]


def rates(conn: psycopg.Connection[Any], deck_id: UUID) -> list[Rate]:
    """A deck's rates by prefix."""
    return rows.select(conn, Rate, "SELECT * FROM rates WHERE deck_id = %s ORDER BY prefix", [deck_id])


def rates_for_number(conn: psycopg.Connection[Any], deck_id: UUID, digits: str) -> list[Rate]:
    """The deck's rates whose prefix starts ``digits``: one index lookup per leading substring, not the deck."""
    candidates = [digits[:n] for n in range(1, min(len(digits), 15) + 1)]
    return rows.select(conn, Rate, "SELECT * FROM rates WHERE deck_id = %s AND prefix = ANY(%s)", [deck_id, candidates])


def replace_rates(conn: psycopg.Connection[Any], deck_id: UUID, new: Iterable[Rate]) -> int:
    """Make ``new`` the deck's whole rate list (in the caller's transaction); return how many."""
    conn.execute("DELETE FROM rates WHERE deck_id = %s", [deck_id])
    count = 0
    for rate in new:
        rows.insert(conn, "rates", rate)
        count += 1
    # Fresh statistics now, not when autovacuum gets to it: without them a call's price is looked up by
    # filtering the whole deck (0.6 ms for 2,000 prefixes) instead of through the (deck, prefix) index.
    conn.execute("ANALYZE rates")
    return count


def assign(conn: psycopg.Connection[Any], assignment: DeckAssignment) -> DeckAssignment:
    return rows.insert(conn, "deck_assignments", assignment)


def unassign(conn: psycopg.Connection[Any], id: UUID) -> bool:
    return rows.delete(conn, "deck_assignments", id)


def assignments(conn: psycopg.Connection[Any], tenant_id: UUID | None = None) -> list[DeckAssignment]:
    """One tenant's deck assignments (every tenant's when None), oldest first."""
    if tenant_id is None:
        return rows.select(conn, DeckAssignment, "SELECT * FROM deck_assignments ORDER BY effective_from")
    return rows.select(
        conn,
        DeckAssignment,
        "SELECT * FROM deck_assignments WHERE tenant_id = %s ORDER BY effective_from",
        [tenant_id],
    )


def assignments_of_deck(conn: psycopg.Connection[Any], deck_id: UUID) -> list[DeckAssignment]:
    return rows.select(conn, DeckAssignment, "SELECT * FROM deck_assignments WHERE deck_id = %s", [deck_id])
