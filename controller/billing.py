"""Prepaid billing: rate decks, accounts, the ledger, and the rating of call legs (part of the core).

The admin operations here are shared by the REST API and the CLI, each in one transaction, like
``controller.provisioning``; ``rate_leg`` is what the ESL room calls for each CDR it stores, in the
CDR's own transaction. Who may call what (a tenant admin reads its own accounts and never adds
money) is the API's business: these functions take the tenant the caller may see.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from controller import rating
from controller import validation as v
from controller.database import Database
from controller.domain import BillingAccount, DeckAssignment, LedgerEntry, LedgerKind, Rate, RateDeck, Tenant
from controller.errors import Conflict, Invalid, NotFound
from controller.stores import accounts, ledger, legs_up, rate_decks, tenants, users

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

# Channel variables the dialplan puts on an outbound gateway leg; the CDR carries them back (fsfarm_*).
BILL_TENANT = "fsfarm_bill_tenant"
BILL_USER = "fsfarm_bill_user"
BILL_NUMBER = "fsfarm_bill_number"

TENANT_ACCOUNT = "tenant"  # how the tenant's own account is named in a path, next to user extensions
MAX_AMOUNT = Decimal("99999999999999")
MAX_RATES = 200_000  # rows of one CSV import
CSV_COLUMNS = ("prefix", "description", "price_per_minute", "connect_fee", "increment", "currency")

# ---------------------------------------------------------------- decks and rates

DECK_FIELDS = {
    "name": v.Field(v.slug, required=True),
    "currency": v.Field(v.currency, required=True),
    "description": v.Field(v.text),
    "tenant": v.Field(v.reference),  # the owning tenant's domain or id; left out: a shared deck
}
DECK_UPDATE_FIELDS = {"name": DECK_FIELDS["name"], "description": DECK_FIELDS["description"]}
RATE_PRICE = v.money(Decimal(0), MAX_AMOUNT)


def _tenant(conn: Conn, ref: str | UUID) -> Tenant:
    found = tenants.get(conn, ref)
    if found is None:
        raise NotFound(f"no tenant {str(ref)!r}")
    return found


def list_decks(db: Database, viewer: UUID | None) -> list[RateDeck]:
    """Every deck for a farm admin (``viewer`` None); a tenant admin's own tenant's decks otherwise."""
    with db.transaction() as conn:
        return rate_decks.visible(conn, viewer)


def _deck(conn: Conn, ref: str, viewer: UUID | None) -> RateDeck:
    found = rate_decks.find(conn, ref, None if viewer is None else [viewer])
    if not found:
        raise NotFound(f"no rate deck {ref!r}")
    if len(found) > 1:
        raise Conflict(
            f"{len(found)} rate decks are named {ref!r}: name it by its id", {"ids": [str(d.id) for d in found]}
        )
    return found[0]


def add_deck(db: Database, data: Any, viewer: UUID | None) -> RateDeck:
    """Create a rate deck: a farm admin's is shared unless it names a tenant; a tenant admin's is its tenant's."""
    values = v.parse(DECK_FIELDS, data)
    with db.transaction() as conn:
        owner: UUID | None = viewer
        if "tenant" in values:
            tenant = _tenant(conn, values.pop("tenant"))
            if viewer is not None and tenant.id != viewer:
                raise NotFound(f"no tenant {str(data.get('tenant'))!r}")
            owner = tenant.id
        try:
            return rate_decks.insert(conn, RateDeck(id=uuid.uuid4(), tenant_id=owner, **values))
        except Conflict:
            raise Conflict(f"a rate deck named {values['name']} already exists", {"field": "name"}) from None


def get_deck(db: Database, ref: str, viewer: UUID | None) -> tuple[RateDeck, list[Rate]]:
    """A deck and its rates by prefix."""
    with db.transaction() as conn:
        deck = _deck(conn, ref, viewer)
        return deck, rate_decks.rates(conn, deck.id)


def update_deck(db: Database, ref: str, data: Any, viewer: UUID | None) -> RateDeck:
    """Rename a deck or change its description (its currency stays: its rates are priced in it)."""
    updates = v.parse(DECK_UPDATE_FIELDS, data, partial=True)
    with db.transaction() as conn:
        deck = _deck(conn, ref, viewer)
        try:
            updated = rate_decks.update(conn, deck.id, updates) if updates else deck
        except Conflict:
            raise Conflict(f"a rate deck named {updates.get('name')} already exists", {"field": "name"}) from None
        assert updated is not None
        return updated


def remove_deck(db: Database, ref: str, viewer: UUID | None) -> RateDeck:
    """Delete a deck and its rates; refused while a tenant is assigned to it (its calls are rated with it)."""
    with db.transaction() as conn:
        deck = _deck(conn, ref, viewer)
        used = rate_decks.assignments_of_deck(conn, deck.id)
        if used:
            raise Conflict(f"rate deck {deck.name} is assigned to {len(used)} tenant(s)", {"assignments": len(used)})
        rate_decks.delete(conn, deck.id)
        return deck


def _increment(line: int, value: str) -> tuple[int, int]:
    first, _, next_ = value.strip().partition("/")
    parse = v.integer(1, 3600)
    field = f"line {line}: increment"
    try:
        return parse(field, first), parse(field, next_ or first)
    except Invalid:
        raise Invalid(
            f"{field}: must be seconds as first/next, e.g. 1/1, 6/6 or 60/60", {"field": "increment", "line": line}
        ) from None


def parse_rates(deck: RateDeck, text: str) -> list[Rate]:
    """The rates a CSV gives (header ``prefix,description,price_per_minute,connect_fee,increment[,currency]``).

    Any bad line refuses the whole file with the line and the field named.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("prefix", "price_per_minute") if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        raise Invalid(
            f"csv header: needs {', '.join(CSV_COLUMNS[:5])} (and optionally currency)",
            {"field": "csv", "missing": missing, "unknown": unknown},
        )
    out: dict[str, Rate] = {}
    for number, row in enumerate(reader, start=2):
        if len(out) >= MAX_RATES:
            raise Invalid(f"csv: more than {MAX_RATES} rates", {"field": "csv"})
        if None in row:
            raise Invalid(f"line {number}: more fields than the header", {"field": "csv", "line": number})
        cells = {k.strip(): (val or "").strip() for k, val in row.items()}
        prefix = rating.digits(cells.get("prefix", ""))
        if not prefix.isdigit() or len(prefix) > 15:
            raise Invalid(f"line {number}: prefix: must be 1 to 15 digits", {"field": "prefix", "line": number})
        if prefix in out:
            raise Invalid(f"line {number}: prefix {prefix} appears twice", {"field": "prefix", "line": number})
        if cells.get("currency") and cells["currency"].upper() != deck.currency:
            raise Invalid(
                f"line {number}: currency: the deck is priced in {deck.currency}", {"field": "currency", "line": number}
            )
        first, next_ = _increment(number, cells.get("increment") or "1/1")
        out[prefix] = Rate(
            id=uuid.uuid4(),
            deck_id=deck.id,
            prefix=prefix,
            description=v.text(f"line {number}: description", cells.get("description", "")),
            price_per_minute=RATE_PRICE(f"line {number}: price_per_minute", cells.get("price_per_minute", "")),
            connect_fee=RATE_PRICE(f"line {number}: connect_fee", cells.get("connect_fee") or "0"),
            first_increment=first,
            next_increment=next_,
        )
    return list(out.values())


def csv_text(name: str, value: Any) -> str:
    """A whole CSV file as one string (lines and all; no NUL, which PostgreSQL refuses)."""
    if not isinstance(value, str) or "\x00" in value:
        raise Invalid(f"{name}: must be the CSV file's text", {"field": name})
    return value


IMPORT_FIELDS = {"csv": v.Field(csv_text, required=True)}


def import_rates(db: Database, ref: str, data: Any, viewer: UUID | None) -> int:
    """Replace a deck's rates with those of a CSV (``{"csv": text}``), all or nothing; return how many."""
    text = v.parse(IMPORT_FIELDS, data)["csv"]
    with db.transaction() as conn:
        deck = _deck(conn, ref, viewer)
        return rate_decks.replace_rates(conn, deck.id, parse_rates(deck, text))


def export_rates(db: Database, ref: str, viewer: UUID | None) -> str:
    """A deck's rates as the CSV ``import_rates`` reads back."""
    deck, found = get_deck(db, ref, viewer)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in found:
        increment = f"{r.first_increment}/{r.next_increment}"
        writer.writerow([r.prefix, r.description, r.price_per_minute, r.connect_fee, increment, deck.currency])
    return out.getvalue()


# ---------------------------------------------------------------- assignments

ASSIGN_FIELDS = {
    "deck": v.Field(v.reference, required=True),
    "effective_from": v.Field(v.timestamp),  # left out: now
    "margin_percent": v.Field(v.money(Decimal(0), Decimal(100_000))),
}


def assign_deck(db: Database, tenant_ref: str, data: Any) -> DeckAssignment:
    """Rate a tenant's calls with a deck (a shared one or the tenant's own) from ``effective_from``."""
    values = v.parse(ASSIGN_FIELDS, data)
    with db.transaction() as conn:
        tenant = _tenant(conn, tenant_ref)
        found = rate_decks.find(conn, values["deck"], [None, tenant.id])
        if len(found) != 1:
            why = "no shared or own rate deck" if not found else "several rate decks are named"
            raise Invalid(f"deck: {why} {values['deck']!r} for {tenant.domain}", {"field": "deck"})
        when = values.get("effective_from") or datetime.now(UTC)
        try:
            return rate_decks.assign(
                conn,
                DeckAssignment(
                    id=uuid.uuid4(),
                    tenant_id=tenant.id,
                    deck_id=found[0].id,
                    effective_from=when,
                    margin_percent=values.get("margin_percent", Decimal(0)),
                ),
            )
        except Conflict:
            raise Conflict(
                f"{tenant.domain} already has a deck from {when.isoformat()}", {"field": "effective_from"}
            ) from None


def list_assignments(db: Database, tenant_ref: str) -> list[DeckAssignment]:
    """A tenant's deck assignments, oldest first (the newest one in force rates its calls)."""
    with db.transaction() as conn:
        return rate_decks.assignments(conn, _tenant(conn, tenant_ref).id)


# ---------------------------------------------------------------- accounts

ACCOUNT_FIELDS = {
    "user": v.Field(v.extension),  # left out: the tenant's own account
    "currency": v.Field(v.currency, required=True),
    "low_balance": v.Field(v.money(Decimal(0), MAX_AMOUNT)),
}
ACCOUNT_UPDATE_FIELDS = {"low_balance": ACCOUNT_FIELDS["low_balance"]}


def _account(conn: Conn, tenant: Tenant, ref: str) -> BillingAccount:
    """An account by id, ``tenant`` (the tenant's own) or a user's extension, only inside ``tenant``."""
    found: BillingAccount | None = None
    if ref == TENANT_ACCOUNT:
        found = accounts.for_owner(conn, tenant.id, None)
    else:
        try:
            found = accounts.get(conn, tenant.id, UUID(ref))
        except ValueError:
            user = users.store.get(conn, tenant.id, ref)
            found = accounts.for_owner(conn, tenant.id, user.id) if user else None
    if found is None:
        raise NotFound(f"no account {ref!r} in {tenant.domain}")
    return found


def _view(conn: Conn, account: BillingAccount, balance: Decimal) -> dict[str, Any]:
    extension = None
    if account.user_id is not None:
        user = users.store.get(conn, account.tenant_id, account.user_id)
        extension = user.extension if user else None
    return {
        **account.public(),
        "user": extension,
        "balance": str(balance),
        "low": balance < account.low_balance,
    }


def add_account(db: Database, tenant_ref: str, data: Any) -> dict[str, Any]:
    """Open a prepaid account for a tenant or one of its users, with a zero balance."""
    values = v.parse(ACCOUNT_FIELDS, data)
    with db.transaction() as conn:
        tenant = _tenant(conn, tenant_ref)
        user_id = None
        if "user" in values:
            user = users.store.get(conn, tenant.id, values.pop("user"))
            if user is None:
                raise Invalid(f"user: no user {data['user']!r} in {tenant.domain}", {"field": "user"})
            user_id = user.id
        try:
            account = accounts.insert(
                conn, BillingAccount(id=uuid.uuid4(), tenant_id=tenant.id, user_id=user_id, **values)
            )
        except Conflict:
            raise Conflict("this tenant or user already has an account", {"field": "user"}) from None
        return _view(conn, account, Decimal(0))


def list_accounts(db: Database, tenant_ref: str) -> list[dict[str, Any]]:
    """A tenant's accounts with their balances, its own first."""
    with db.transaction() as conn:
        tenant = _tenant(conn, tenant_ref)
        found = accounts.of_tenant(conn, tenant.id)
        sums = ledger.balances(conn, [a.id for a in found])
        return [_view(conn, a, sums.get(a.id, Decimal(0))) for a in found]


def get_account(db: Database, tenant_ref: str, ref: str) -> dict[str, Any]:
    """One account with its balance and whether it is below its low-balance threshold."""
    with db.transaction() as conn:
        account = _account(conn, _tenant(conn, tenant_ref), ref)
        return _view(conn, account, ledger.balance(conn, account.id))


def update_account(db: Database, tenant_ref: str, ref: str, data: Any) -> dict[str, Any]:
    """Change an account's low-balance threshold (its money changes only through the ledger)."""
    updates = v.parse(ACCOUNT_UPDATE_FIELDS, data, partial=True)
    with db.transaction() as conn:
        account = _account(conn, _tenant(conn, tenant_ref), ref)
        updated = accounts.update(conn, account.id, updates) if updates else account
        assert updated is not None
        return _view(conn, updated, ledger.balance(conn, account.id))


# ---------------------------------------------------------------- the ledger

ENTRY_KINDS = (LedgerKind.TOP_UP, LedgerKind.CREDIT, LedgerKind.ADJUSTMENT)
ENTRY_FIELDS = {
    "kind": v.Field(v.one_of(*ENTRY_KINDS), required=True),
    "amount": v.Field(v.money(-MAX_AMOUNT, MAX_AMOUNT), required=True),
    "note": v.Field(v.text),
    "reference": v.Field(v.text),  # the payment's own id: sending the same entry twice adds it once
}


def add_entry(db: Database, tenant_ref: str, ref: str, data: Any) -> LedgerEntry:
    """Add money to an account (top-up, credit) or correct it (adjustment, either sign).

    With a ``reference``, a retry of the same entry returns the first one; another entry with it is a 409.
    """
    values = v.parse(ENTRY_FIELDS, data)
    kind = LedgerKind(values["kind"])
    amount: Decimal = values["amount"]
    if kind != LedgerKind.ADJUSTMENT and amount <= 0:
        raise Invalid(
            f"amount: a {kind} adds money, it must be above 0 (an adjustment may take some)", {"field": "amount"}
        )
    if amount == 0:
        raise Invalid("amount: an adjustment of 0 changes nothing", {"field": "amount"})
    reference = f"{kind}:{values['reference']}" if values.get("reference") else f"{kind}:{uuid.uuid4()}"
    with db.transaction() as conn:
        tenant = _tenant(conn, tenant_ref)
        account = _account(conn, tenant, ref)
        entry = LedgerEntry(
            id=uuid.uuid4(),
            account_id=account.id,
            tenant_id=tenant.id,
            kind=kind,
            amount=amount,
            reference=reference,
            note=values.get("note", ""),
        )
        added = ledger.add(conn, entry)
        if added is not None:
            return added
        earlier = ledger.by_reference(conn, reference)
        assert earlier is not None
        if (earlier.account_id, earlier.amount, earlier.kind) != (account.id, amount, kind):
            raise Conflict("reference: already used by another entry", {"field": "reference"})
        return earlier


def list_entries(db: Database, tenant_ref: str, ref: str, limit: int = 100) -> list[LedgerEntry]:
    """An account's ledger, newest first."""
    with db.transaction() as conn:
        account = _account(conn, _tenant(conn, tenant_ref), ref)
        return ledger.entries(conn, account.id, limit)


def rated_calls(db: Database, tenant_ref: str, limit: int = 100) -> list[LedgerEntry]:
    """A tenant's rated call legs (what each cost and how it was rated), newest first."""
    with db.transaction() as conn:
        return ledger.calls(conn, _tenant(conn, tenant_ref).id, limit)


# ---------------------------------------------------------------- rating


@dataclass(frozen=True)
class Priced:
    """Which account pays a call and the tariff it pays, as of one moment."""

    account: BillingAccount
    tariff: rating.Tariff
    deck_id: UUID
    rate: Rate


def paying_account(conn: Conn, tenant_id: UUID, extension: str) -> BillingAccount | None:
    """The account that pays a caller's calls: the user's own if it has one, else the tenant's."""
    return accounts.paying(conn, tenant_id, extension)


def price(conn: Conn, tenant_id: UUID, extension: str, number: str, at: datetime) -> Priced | str | None:
    """The account and tariff of a call to ``number`` at ``at``.

    None when the tenant bills nothing (no account, or no deck in force yet); a sentence saying why when
    it bills but cannot price this call (no rate for the number, a deck in another currency).
    """
    account = paying_account(conn, tenant_id, extension)
    if account is None:
        return None
    found = rate_decks.assignments(conn, tenant_id)
    chosen = rating.deck_in_force([rating.Assignment(a.deck_id, a.effective_from, a.margin_percent) for a in found], at)
    if chosen is None:
        return None
    by_prefix = {r.prefix: r for r in rate_decks.rates_for_number(conn, chosen.deck_id, rating.digits(number))}
    prefix = rating.longest_prefix(by_prefix, number)
    if prefix is None:
        return f"no rate for {number}"
    decks = rate_decks.find(conn, str(chosen.deck_id), None)
    if not decks or decks[0].currency != account.currency:
        log.warning(
            "tenant %s: deck %s is not in the account's currency %s", tenant_id, chosen.deck_id, account.currency
        )
        return "the rate deck is not in the account's currency"
    r = by_prefix[prefix]
    tariff = rating.with_margin(
        prefix, r.price_per_minute, r.connect_fee, r.first_increment, r.next_increment, chosen.margin_percent
    )
    return Priced(account, tariff, chosen.deck_id, r)


@dataclass(frozen=True)
class Decision:
    """What a billed call may do: go on for ``seconds`` after it answers, or (0) be refused, saying why."""

    seconds: int
    reason: str = ""
    account_id: UUID | None = None
    balance: Decimal | None = None


def authorise(conn: Conn, tenant_id: UUID, extension: str, number: str, at: datetime) -> Decision | None:
    """Whether a caller's outbound call to ``number`` may start and for how long; None: the tenant bills nothing.

    Refused when the balance cannot pay the first increment, or the deck has no rate for the number.
    """
    priced = price(conn, tenant_id, extension, number, at)
    if priced is None:
        return None
    if isinstance(priced, str):
        return Decision(0, priced)
    balance = ledger.balance(conn, priced.account.id)
    others = [up for _, _, up in calls_up(conn, priced.account.id, at)]
    seconds = rating.seconds_affordable(balance, others, priced.tariff)
    reason = "" if seconds else "the balance cannot pay the first increment"
    return Decision(seconds, reason, priced.account.id, balance)


def billsec_at(answered_at: datetime, now: datetime) -> int:
    """The billsec FreeSWITCH gives a leg answered at ``answered_at`` if it hangs up at ``now``: whole epoch seconds."""
    return max(0, math.floor(now.timestamp()) - math.floor(answered_at.timestamp()))


def _call_up(row: dict[str, Any], now: datetime) -> tuple[str, UUID, rating.CallUp]:
    tariff = rating.Tariff(
        row["prefix"], row["price_per_minute"], row["connect_fee"], row["first_increment"], row["next_increment"]
    )
    return row["channel_uuid"], row["node_id"], rating.CallUp(tariff, billsec_at(row["answered_at"], now))


def calls_up(conn: Conn, account_id: UUID, now: datetime) -> list[tuple[str, UUID, rating.CallUp]]:
    """The account's billed legs up at ``now``: (leg uuid, node id, tariff and the billsec it has reached)."""
    since = now - timedelta(seconds=rating.MAX_SECONDS)
    return [_call_up(row, now) for row in legs_up.of_account(conn, account_id, since)]


def calls_up_of(
    conn: Conn, account_ids: list[UUID], now: datetime
) -> dict[UUID, list[tuple[str, UUID, rating.CallUp]]]:
    """``calls_up`` of many accounts at once, by account; an account with no leg up is absent."""
    out: dict[UUID, list[tuple[str, UUID, rating.CallUp]]] = {}
    for row in legs_up.of_accounts(conn, account_ids, now - timedelta(seconds=rating.MAX_SECONDS)):
        out.setdefault(row["account_id"], []).append(_call_up(row, now))
    return out


def leg_answered(
    conn: Conn, node_id: UUID, channel_uuid: str, variables: dict[str, str], answered_at: datetime
) -> UUID | None:
    """Record a billed gateway leg that answered; return the account that pays it (None: not billed)."""
    try:
        tenant_id = UUID(variables.get(BILL_TENANT, ""))
    except ValueError:
        return None
    number = variables.get(BILL_NUMBER, "")
    priced = price(conn, tenant_id, variables.get(BILL_USER, ""), number, answered_at)
    if not isinstance(priced, Priced):
        return None
    t = priced.tariff
    legs_up.add(
        conn,
        channel_uuid,
        node_id,
        priced.account.id,
        (t.prefix, t.price_per_minute, t.connect_fee, t.first, t.next),
        answered_at,
    )
    return priced.account.id


def paying_account_of(conn: Conn, variables: dict[str, str]) -> UUID | None:
    """The account a billed leg's channel variables name (its tenant and caller), or None."""
    try:
        tenant_id = UUID(variables.get(BILL_TENANT, ""))
    except ValueError:
        return None
    found = paying_account(conn, tenant_id, variables.get(BILL_USER, ""))
    return found.id if found else None


def rate_leg(
    conn: Conn,
    node_id: UUID,
    channel_uuid: str,
    variables: dict[str, str],
    destination: str,
    billsec: int,
    answered_at: datetime | None,
    ended_at: datetime | None,
) -> LedgerEntry | None:
    """Debit the account of an outbound gateway leg by exactly its rated cost, once per leg uuid.

    A leg the dialplan did not mark for billing, an unanswered one, or one whose tenant bills nothing is
    skipped (None); so is a leg already in the ledger, whichever node or spool replay reported it first.
    """
    tenant_ref = variables.get(BILL_TENANT, "")
    if not tenant_ref:
        return None
    legs_up.remove(conn, channel_uuid)  # ended: from now on its cost is in the ledger, not burning
    if billsec <= 0:
        return None
    try:
        tenant_id = UUID(tenant_ref)
    except ValueError:
        return None
    reference = f"call:{channel_uuid}"
    if ledger.by_reference(conn, reference) is not None:
        return None
    number = variables.get(BILL_NUMBER) or destination
    priced = price(conn, tenant_id, variables.get(BILL_USER, ""), number, answered_at or datetime.now(UTC))
    if not isinstance(priced, Priced):
        if priced is not None:  # billed, yet this leg cannot be priced: the operator should hear of it
            log.warning("leg %s of tenant %s not rated: %s", channel_uuid, tenant_id, priced)
        return None
    return ledger.add(
        conn,
        LedgerEntry(
            id=uuid.uuid4(),
            account_id=priced.account.id,
            tenant_id=tenant_id,
            kind=LedgerKind.CALL,
            amount=-rating.cost(priced.tariff, billsec),
            reference=reference,
            channel_uuid=channel_uuid,
            node_id=node_id,
            destination=number,
            prefix=priced.tariff.prefix,
            deck_id=priced.deck_id,
            billsec=billsec,
            billed_seconds=rating.billed_seconds(billsec, priced.tariff.first, priced.tariff.next),
            price_per_minute=priced.tariff.price_per_minute.quantize(rating.PRECISION),
            answered_at=answered_at,
            ended_at=ended_at,
        ),
    )
