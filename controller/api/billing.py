"""Prepaid billing: rate decks, deck assignments, accounts, the ledger and rated calls.

Farm admins do everything. A tenant admin reads its own tenant's decks, assignments, accounts,
ledger and rated calls, opens accounts and sets low-balance thresholds, but never adds money nor
changes a price (its account would pay what it decides); anything of another tenant is a 404.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint, g, jsonify, request

from controller import billing
from controller import validation as v
from controller.bearer import body, database, requires_token, visible_tenant
from controller.documented import documented
from controller.errors import Forbidden

blueprint = Blueprint("billing", __name__, url_prefix="/api/v1/billing")

_LIMIT = {"limit": "how many, newest first (1 to 1000, default 100)"}


def _viewer() -> UUID | None:
    """The tenant a tenant-admin token is confined to; None for a farm admin."""
    return None if g.token.scope == "farm-admin" else g.token.tenant_id


def _farm_only(what: str, deck: str | None = None) -> None:
    """Forbidden (403) to a tenant admin, after the 404 for a deck it cannot see."""
    if deck is not None:
        billing.get_deck(database(), deck, _viewer())
    if g.token.scope != "farm-admin":
        raise Forbidden(f"only a farm admin {what}")


def _limit() -> int:
    return v.integer(1, 1000)("limit", request.args.get("limit", "100"))


def _deck_json(deck: Any, rates: list[Any] | None = None) -> dict[str, Any]:
    out = deck.public()
    if rates is not None:
        out["rates"] = [r.public() for r in rates]
    return out


@blueprint.get("/decks")
@requires_token
def list_decks() -> Any:
    """List rate decks (a tenant admin sees its own tenant's)."""
    return jsonify([d.public() for d in billing.list_decks(database(), _viewer())])


@blueprint.post("/decks")
@documented(billing.DECK_FIELDS, status=201, errors=(403,))
@requires_token
def add_deck() -> Any:
    """Create a rate deck: shared by the farm, or a tenant's own when it names one."""
    _farm_only("sets prices")
    return jsonify(billing.add_deck(database(), body(), None).public()), 201


@blueprint.get("/decks/<deck>")
@requires_token
def get_deck(deck: str) -> Any:
    """Show a rate deck with its rates."""
    found, rates = billing.get_deck(database(), deck, _viewer())
    return jsonify(_deck_json(found, rates))


@blueprint.patch("/decks/<deck>")
@documented(billing.DECK_UPDATE_FIELDS, partial=True, errors=(403,))
@requires_token
def update_deck(deck: str) -> Any:
    """Rename a rate deck or change its description."""
    _farm_only("changes rate decks", deck)
    return jsonify(billing.update_deck(database(), deck, body(), None).public())


@blueprint.delete("/decks/<deck>")
@documented(errors=(403,))
@requires_token
def remove_deck(deck: str) -> Any:
    """Delete a rate deck no tenant is assigned to."""
    _farm_only("changes rate decks", deck)
    return jsonify(billing.remove_deck(database(), deck, None).public())


@blueprint.get("/decks/<deck>/rates")
@requires_token
def export_rates(deck: str) -> Any:
    """A deck's rates as CSV (``csv``), the text an import takes back."""
    return jsonify({"deck": deck, "csv": billing.export_rates(database(), deck, _viewer())})


@blueprint.put("/decks/<deck>/rates")
@documented(billing.IMPORT_FIELDS, errors=(403,))
@requires_token
def import_rates(deck: str) -> Any:
    """Replace a deck's rates with a CSV file's (prefix,description,price_per_minute,connect_fee,increment).

    All or nothing: a bad line refuses the file, naming the line and the field.
    """
    _farm_only("sets prices", deck)
    return jsonify({"deck": deck, "rates": billing.import_rates(database(), deck, body(), None)})


@blueprint.get("/tenants/<ref>/assignments")
@requires_token
def list_assignments(ref: str) -> Any:
    """A tenant's rate deck assignments, oldest first."""
    visible_tenant(ref)
    return jsonify([a.public() for a in billing.list_assignments(database(), ref)])


@blueprint.post("/tenants/<ref>/assignments")
@documented(billing.ASSIGN_FIELDS, status=201, errors=(403,))
@requires_token
def assign_deck(ref: str) -> Any:
    """Rate a tenant's calls with a deck from a given time, resold at a margin."""
    visible_tenant(ref)
    _farm_only("assigns rate decks")
    return jsonify(billing.assign_deck(database(), ref, body()).public()), 201


@blueprint.get("/tenants/<ref>/accounts")
@requires_token
def list_accounts(ref: str) -> Any:
    """A tenant's prepaid accounts with their balances."""
    visible_tenant(ref)
    return jsonify(billing.list_accounts(database(), ref))


@blueprint.post("/tenants/<ref>/accounts")
@documented(billing.ACCOUNT_FIELDS, status=201)
@requires_token
def add_account(ref: str) -> Any:
    """Open a prepaid account for the tenant or one of its users (balance 0)."""
    visible_tenant(ref)
    return jsonify(billing.add_account(database(), ref, body())), 201


@blueprint.get("/tenants/<ref>/accounts/<account>")
@requires_token
def get_account(ref: str, account: str) -> Any:
    """One account (by id, "tenant" or a user's extension) with its balance."""
    visible_tenant(ref)
    return jsonify(billing.get_account(database(), ref, account))


@blueprint.patch("/tenants/<ref>/accounts/<account>")
@documented(billing.ACCOUNT_UPDATE_FIELDS, partial=True)
@requires_token
def update_account(ref: str, account: str) -> Any:
    """Change an account's low-balance threshold."""
    visible_tenant(ref)
    return jsonify(billing.update_account(database(), ref, account, body()))


@blueprint.get("/tenants/<ref>/accounts/<account>/ledger")
@documented(query=_LIMIT)
@requires_token
def list_entries(ref: str, account: str) -> Any:
    """An account's ledger entries, newest first."""
    visible_tenant(ref)
    return jsonify([e.public() for e in billing.list_entries(database(), ref, account, _limit())])


@blueprint.post("/tenants/<ref>/accounts/<account>/ledger")
@documented(billing.ENTRY_FIELDS, status=201, errors=(403,))
@requires_token
def add_entry(ref: str, account: str) -> Any:
    """Top up, credit or adjust an account (only a farm admin adds money)."""
    visible_tenant(ref)
    billing.get_account(database(), ref, account)
    _farm_only("adds money or adjusts a balance")
    return jsonify(billing.add_entry(database(), ref, account, body()).public()), 201


@blueprint.get("/tenants/<ref>/calls")
@documented(query=_LIMIT)
@requires_token
def rated_calls(ref: str) -> Any:
    """A tenant's rated call legs: destination, prefix, seconds billed and cost, newest first."""
    visible_tenant(ref)
    return jsonify([e.public() for e in billing.rated_calls(database(), ref, _limit())])
