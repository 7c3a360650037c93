"""``fsfarm billing``: rate decks, deck assignments, prepaid accounts, the ledger and rated calls.

The commands call ``controller.billing``, the code the REST API runs, as a farm admin: the CLI runs
on the controller with the database's own credentials.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from controller import billing
from controller.cli.admin import json_option, with_db
from controller.cli.output import emit
from controller.database import Database
from controller.errors import Invalid
from controller.stores import tenants

DECK_COLUMNS = ("id", "name", "currency", "tenant", "description")
ACCOUNT_COLUMNS = ("id", "user", "currency", "balance", "low_balance", "low")
ENTRY_COLUMNS = ("created_at", "kind", "amount", "reference", "note")
CALL_COLUMNS = ("ended_at", "destination", "prefix", "billsec", "billed_seconds", "price_per_minute", "amount")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@click.group("billing")
def billing_group() -> None:
    """Prepaid billing: rate decks, accounts, ledger, rated calls."""


@billing_group.group(short_help="Rate decks: prefixes, prices, increments.")
def deck() -> None:
    """Rate decks: a prefix, a price per minute, a connect fee and an increment per destination."""


def _deck_row(d: Any, domains: dict[Any, str]) -> dict[str, Any]:
    return {**d.public(), "tenant": domains.get(d.tenant_id, "(shared)") if d.tenant_id else "(shared)"}


def _domains(database: Database) -> dict[Any, str]:
    with database.transaction() as conn:
        return {t.id: t.domain for t in tenants.list_all(conn)}


@deck.command("add", short_help="Create an empty rate deck.")
@click.argument("name")
@click.option("--currency", required=True, help="ISO 4217 code every price of the deck is in, e.g. EUR.")
@click.option("--tenant", help="The tenant it belongs to (default: shared by the farm).")
@click.option("--description", help="A note.")
@json_option
@with_db
def deck_add(
    database: Database, name: str, currency: str, tenant: str | None, description: str | None, as_json: bool
) -> None:
    """Create an empty rate deck (fill it with `fsfarm billing deck import`)."""
    created = billing.add_deck(
        database, _given(name=name, currency=currency, tenant=tenant, description=description), None
    )
    emit(_deck_row(created, _domains(database)), DECK_COLUMNS, as_json)


@deck.command("list")
@json_option
@with_db
def deck_list(database: Database, as_json: bool) -> None:
    """Every rate deck, the shared ones first."""
    domains = _domains(database)
    emit([_deck_row(d, domains) for d in billing.list_decks(database, None)], DECK_COLUMNS, as_json)


@deck.command("show")
@click.argument("name")
@json_option
@with_db
def deck_show(database: Database, name: str, as_json: bool) -> None:
    """A deck's rates."""
    found, rates = billing.get_deck(database, name, None)
    if as_json:
        emit({**found.public(), "rates": [r.public() for r in rates]}, (), True)
        return
    columns = ("prefix", "description", "price_per_minute", "connect_fee", "increment")
    emit([{**r.public(), "increment": f"{r.first_increment}/{r.next_increment}"} for r in rates], columns, False)


@deck.command("rm")
@click.argument("name")
@with_db
def deck_rm(database: Database, name: str) -> None:
    """Delete a deck no tenant is assigned to."""
    removed = billing.remove_deck(database, name, None)
    click.echo(f"rate deck {removed.name} removed")


@deck.command("import", short_help="Replace a deck's rates with a CSV file.")
@click.argument("name")
@click.argument("csv_file", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@with_db
def deck_import(database: Database, name: str, csv_file: str) -> None:
    """Replace a deck's rates with a CSV file's ('-': stdin), all or nothing.

    Header: prefix,description,price_per_minute,connect_fee,increment[,currency]; increment as 1/1, 6/6, 60/60."""
    try:
        text = sys.stdin.read() if csv_file == "-" else Path(csv_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"FILE: cannot read {csv_file}: {exc}") from None
    count = billing.import_rates(database, name, {"csv": text}, None)
    click.echo(f"rate deck {name}: {count} rate(s)")


@deck.command("export")
@click.argument("name")
@with_db
def deck_export(database: Database, name: str) -> None:
    """Print a deck's rates as the CSV `import` reads back."""
    click.echo(billing.export_rates(database, name, None), nl=False)


@billing_group.command("assign", short_help="Rate a tenant's calls with a deck from a time.")
@click.argument("tenant")
@click.argument("deck_ref", metavar="DECK")
@click.option("--from", "effective_from", help="When it takes over, ISO 8601 (default: now).")
@click.option("--margin", "margin_percent", help="Percent added to every price of the deck (default 0).")
@json_option
@with_db
def assign(
    database: Database,
    tenant: str,
    deck_ref: str,
    effective_from: str | None,
    margin_percent: str | None,
    as_json: bool,
) -> None:
    """Rate a tenant's calls with a deck from a given time, resold at a margin."""
    data = _given(deck=deck_ref, effective_from=effective_from, margin_percent=margin_percent)
    created = billing.assign_deck(database, tenant, data)
    emit(created.public(), ("deck_id", "effective_from", "margin_percent"), as_json)


@billing_group.command("assignments", short_help="A tenant's deck assignments.")
@click.argument("tenant")
@json_option
@with_db
def assignments(database: Database, tenant: str, as_json: bool) -> None:
    """A tenant's deck assignments, oldest first (the newest in force rates its calls)."""
    found = [a.public() for a in billing.list_assignments(database, tenant)]
    emit(found, ("deck_id", "effective_from", "margin_percent"), as_json)


@billing_group.group(short_help="Prepaid accounts: a tenant's own, or a user's.")
def account() -> None:
    """Prepaid accounts: a tenant's own, or one user's (a user's calls use it first)."""


@account.command("add")
@click.argument("tenant")
@click.option("--user", help="The user's extension (default: the tenant's own account).")
@click.option("--currency", required=True, help="ISO 4217 code, the same as its rate deck's.")
@click.option("--low-balance", "low_balance", help="Below this the balance reads low.")
@json_option
@with_db
def account_add(
    database: Database, tenant: str, user: str | None, currency: str, low_balance: str | None, as_json: bool
) -> None:
    """Open an account with a zero balance."""
    created = billing.add_account(database, tenant, _given(user=user, currency=currency, low_balance=low_balance))
    emit(created, ACCOUNT_COLUMNS, as_json)


@account.command("list")
@click.argument("tenant")
@json_option
@with_db
def account_list(database: Database, tenant: str, as_json: bool) -> None:
    """A tenant's accounts with their balances."""
    emit(billing.list_accounts(database, tenant), ACCOUNT_COLUMNS, as_json)


@account.command("show", short_help="One account's balance.")
@click.argument("tenant")
@click.argument("ref", metavar="[ACCOUNT]", default=billing.TENANT_ACCOUNT)
@json_option
@with_db
def account_show(database: Database, tenant: str, ref: str, as_json: bool) -> None:
    """One account's balance (ACCOUNT: an id, a user's extension, or 'tenant', the default)."""
    emit(billing.get_account(database, tenant, ref), ACCOUNT_COLUMNS, as_json)


@account.command("set")
@click.argument("tenant")
@click.argument("ref", metavar="ACCOUNT")
@click.option("--low-balance", "low_balance", required=True, help="Below this the balance reads low.")
@json_option
@with_db
def account_set(database: Database, tenant: str, ref: str, low_balance: str, as_json: bool) -> None:
    """Change an account's low-balance threshold."""
    emit(billing.update_account(database, tenant, ref, {"low_balance": low_balance}), ACCOUNT_COLUMNS, as_json)


def _entry_command(kind: str, help_text: str) -> click.Command:
    @click.command(kind, help=help_text, short_help=help_text.split(";")[0].rstrip(".") + ".")
    @click.argument("tenant")
    @click.argument("amount")
    @click.option("--account", "ref", default=billing.TENANT_ACCOUNT, help="Id, user extension or 'tenant'.")
    @click.option("--reference", help="The payment's own id: the same entry given twice is added once.")
    @click.option("--note", help="Why.")
    @json_option
    @with_db
    def add(
        database: Database,
        tenant: str,
        amount: str,
        ref: str,
        reference: str | None,
        note: str | None,
        as_json: bool,
    ) -> None:
        entry = billing.add_entry(
            database, tenant, ref, _given(kind=kind, amount=amount, reference=reference, note=note)
        )
        balance = billing.get_account(database, tenant, ref)["balance"]
        emit({**entry.public(), "balance": balance}, ("kind", "amount", "reference", "balance"), as_json)

    return add


@billing_group.command("ledger")
@click.argument("tenant")
@click.argument("ref", metavar="[ACCOUNT]", default=billing.TENANT_ACCOUNT)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="How many, newest first.")
@json_option
@with_db
def ledger(database: Database, tenant: str, ref: str, limit: int, as_json: bool) -> None:
    """An account's ledger, newest first."""
    emit([e.public() for e in billing.list_entries(database, tenant, ref, limit)], ENTRY_COLUMNS, as_json)


@billing_group.command("calls")
@click.argument("tenant")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="How many, newest first.")
@json_option
@with_db
def calls(database: Database, tenant: str, limit: int, as_json: bool) -> None:
    """A tenant's rated call legs, newest first."""
    emit([e.public() for e in billing.rated_calls(database, tenant, limit)], CALL_COLUMNS, as_json)


for _kind, _help in (
    ("top-up", "Add money a customer paid to an account."),
    ("credit", "Give an account money (a goodwill credit, a refund)."),
    ("adjustment", "Correct an account by a signed amount; a negative one after --: adjustment acme.example -- -1.50"),
):
    billing_group.add_command(_entry_command(_kind, _help))

commands: list[click.Command] = [billing_group]
