"""Billing over the REST API: decks and CSV, assignments, accounts, the ledger, bad input, tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from testsupport import AuthedClient

from controller import provisioning
from controller.database import Database

B = "/api/v1/billing"
DECK_CSV = (
    "prefix,description,price_per_minute,connect_fee,increment\n"
    "49,Germany,0.020000,0,60/60\n"
    "4915,Germany mobile,0.120000,0.05,1/1\n"
)
BILLING_TABLES = ("rate_decks", "rates", "deck_assignments", "billing_accounts", "ledger_entries")


def billing_state(db: Database) -> list[Any]:
    """Every billing row, to show a refused request changed nothing."""
    with db.transaction() as conn:
        return [conn.execute(f"SELECT to_jsonb(t)::text AS j FROM {t} t ORDER BY 1").fetchall() for t in BILLING_TABLES]


@pytest.fixture
def farm(admin: Any) -> Any:
    """Two tenants with a user each, a shared deck assigned to acme at 20 %, and acme's funded account."""
    for domain in ("acme.example", "beta.example"):
        assert admin.post("/api/v1/tenants", json={"domain": domain}).status_code == 201
        users = f"/api/v1/tenants/{domain}/users"
        assert admin.post(users, json={"extension": "1001", "password": "pw-1001-long"}).status_code == 201
        assert admin.post(f"{B}/tenants/{domain}/accounts", json={"currency": "EUR"}).status_code == 201
    assert admin.post(f"{B}/decks", json={"name": "world", "currency": "EUR"}).status_code == 201
    assert admin.put(f"{B}/decks/world/rates", json={"csv": DECK_CSV}).json == {"deck": "world", "rates": 2}
    assigned = admin.post(f"{B}/tenants/acme.example/assignments", json={"deck": "world", "margin_percent": "20"})
    assert assigned.status_code == 201
    top_up = {"kind": "top-up", "amount": "25.00", "reference": "invoice-7"}
    assert admin.post(f"{B}/tenants/acme.example/accounts/tenant/ledger", json=top_up).status_code == 201
    return admin


def test_a_deck_round_trips_through_csv_and_an_account_shows_its_balance(farm: Any) -> None:
    exported = farm.get(f"{B}/decks/world/rates").json["csv"]
    assert exported.splitlines()[1:] == [
        "49,Germany,0.020000,0.000000,60/60,EUR",
        "4915,Germany mobile,0.120000,0.050000,1/1,EUR",
    ]
    assert farm.put(f"{B}/decks/world/rates", json={"csv": exported}).json["rates"] == 2
    assert farm.get(f"{B}/decks/world/rates").json["csv"] == exported
    deck = farm.get(f"{B}/decks/world").json
    assert [(r["prefix"], r["price_per_minute"]) for r in deck["rates"]] == [("49", "0.020000"), ("4915", "0.120000")]
    account = farm.get(f"{B}/tenants/acme.example/accounts/tenant").json
    assert (account["balance"], account["currency"], account["user"]) == ("25.000000", "EUR", None)
    # The same payment sent twice is one top-up.
    again = {"kind": "top-up", "amount": "25.00", "reference": "invoice-7"}
    assert farm.post(f"{B}/tenants/acme.example/accounts/tenant/ledger", json=again).status_code == 201
    assert farm.get(f"{B}/tenants/acme.example/accounts/tenant").json["balance"] == "25.000000"
    user = farm.post(f"{B}/tenants/acme.example/accounts", json={"user": "1001", "currency": "EUR", "low_balance": 2})
    assert (user.status_code, user.json["user"], user.json["low"]) == (201, "1001", True)
    assert farm.get(f"{B}/tenants/acme.example/accounts/1001").json["id"] == user.json["id"]
    assigned = farm.get(f"{B}/tenants/acme.example/assignments").json
    assert [a["margin_percent"] for a in assigned] == ["20.000"]


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/decks", {"name": "x", "currency": "euro"}, "currency"),
        ("/decks", {"name": "Bad Name", "currency": "EUR"}, "name"),
        ("/decks/world/rates", {"csv": "prefix,price_per_minute\n49x,0.1\n"}, "prefix"),
        ("/decks/world/rates", {"csv": "prefix,price_per_minute\n49,0.1\n49,0.2\n"}, "prefix"),
        ("/decks/world/rates", {"csv": "prefix,price_per_minute\n49,-1\n"}, "line 2: price_per_minute"),
        ("/decks/world/rates", {"csv": "prefix,price_per_minute\n49,1e3\n"}, "line 2: price_per_minute"),
        ("/decks/world/rates", {"csv": "prefix,price_per_minute,increment\n49,0.1,6/x\n"}, "increment"),
        ("/decks/world/rates", {"csv": "prefix,price_per_minute,currency\n49,0.1,USD\n"}, "currency"),
        ("/decks/world/rates", {"csv": "prefix,cost\n49,0.1\n"}, "csv"),
        ("/decks/world/rates", {"csv": 12}, "csv"),
        ("/tenants/acme.example/assignments", {"deck": "nope"}, "deck"),
        ("/tenants/acme.example/assignments", {"deck": "world", "effective_from": "tomorrow"}, "effective_from"),
        ("/tenants/acme.example/assignments", {"deck": "world", "margin_percent": "-5"}, "margin_percent"),
        ("/tenants/acme.example/accounts", {"user": "9999", "currency": "EUR"}, "user"),
        ("/tenants/acme.example/accounts/tenant/ledger", {"kind": "top-up", "amount": "-5"}, "amount"),
        ("/tenants/acme.example/accounts/tenant/ledger", {"kind": "top-up", "amount": "0.1234567"}, "amount"),
        ("/tenants/acme.example/accounts/tenant/ledger", {"kind": "top-up", "amount": True}, "amount"),
        ("/tenants/acme.example/accounts/tenant/ledger", {"kind": "call", "amount": "-1"}, "kind"),
        ("/tenants/acme.example/accounts/tenant/ledger", {"kind": "adjustment", "amount": 0}, "amount"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(
    farm: Any, db: Database, path: str, payload: Any, field: str
) -> None:
    before = billing_state(db)
    method = farm.put if path.endswith("/rates") else farm.post
    answer = method(B + path, json=payload)
    assert answer.status_code == 400, answer.json
    assert field in answer.json["error"]
    assert billing_state(db) == before


def test_a_retried_reference_with_another_amount_is_a_conflict(farm: Any, db: Database) -> None:
    before = billing_state(db)
    clash = {"kind": "top-up", "amount": "99", "reference": "invoice-7"}
    answer = farm.post(f"{B}/tenants/acme.example/accounts/tenant/ledger", json=clash)
    assert (answer.status_code, answer.json["detail"]) == (409, {"field": "reference"})
    assert billing_state(db) == before
    assert farm.delete(f"{B}/decks/world").status_code == 409  # acme is rated with it
    assert billing_state(db) == before


def test_a_tenant_admin_attacking_sees_only_its_own_and_cannot_add_money(farm: Any, client: Any, db: Database) -> None:
    farm.post(f"{B}/decks", json={"name": "beta-special", "currency": "EUR", "tenant": "beta.example"})
    farm.post(f"{B}/tenants/beta.example/accounts/tenant/ledger", json={"kind": "credit", "amount": "3"})
    beta_account = farm.get(f"{B}/tenants/beta.example/accounts/tenant").json["id"]
    attacker = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "acme.example")[0])
    before = billing_state(db)

    # Its own things: readable.
    assert attacker.get(f"{B}/tenants/acme.example/accounts/tenant").json["balance"] == "25.000000"
    assert len(attacker.get(f"{B}/tenants/acme.example/accounts/tenant/ledger").json) == 1
    assert attacker.get(f"{B}/tenants/acme.example/calls").json == []
    assert attacker.get(f"{B}/decks").json == []  # the shared deck and beta's are not its own

    # Another tenant's accounts, ledger, calls and decks answer like things that do not exist.
    for method, path, kwargs in [
        ("get", "/tenants/beta.example/accounts", {}),
        ("get", "/tenants/beta.example/accounts/tenant", {}),
        ("get", "/tenants/beta.example/accounts/tenant/ledger", {}),
        ("get", "/tenants/beta.example/calls", {}),
        ("get", "/tenants/beta.example/assignments", {}),
        ("patch", "/tenants/beta.example/accounts/tenant", {"json": {"low_balance": "1"}}),
        ("post", "/tenants/beta.example/accounts", {"json": {"user": "1001", "currency": "EUR"}}),
        ("post", "/tenants/beta.example/accounts/tenant/ledger", {"json": {"kind": "top-up", "amount": "5"}}),
    ]:
        theirs = getattr(attacker, method)(B + path, **kwargs)
        missing = getattr(attacker, method)(B + path.replace("beta.example", "nobody.example"), **kwargs)
        assert theirs.status_code == missing.status_code == 404, path
        assert theirs.json["error"].replace("beta", "X") == missing.json["error"].replace("nobody", "X")
    # Beta's account by its id, through acme's own path, is not found either.
    assert attacker.get(f"{B}/tenants/acme.example/accounts/{beta_account}").status_code == 404
    for deck in ("beta-special", "world"):
        assert attacker.get(f"{B}/decks/{deck}").status_code == 404
        assert (
            attacker.put(f"{B}/decks/{deck}/rates", json={"csv": "prefix,price_per_minute\n49,0\n"}).status_code == 404
        )

    # Its own balance: it may not top itself up, credit or adjust, nor set prices or assign itself a deck.
    for kind, amount in (("top-up", "1000"), ("credit", "5"), ("adjustment", "5")):
        answer = attacker.post(
            f"{B}/tenants/acme.example/accounts/tenant/ledger", json={"kind": kind, "amount": amount}
        )
        assert answer.status_code == 403, kind
    assert attacker.post(f"{B}/decks", json={"name": "free", "currency": "EUR"}).status_code == 403
    assert attacker.post(f"{B}/tenants/acme.example/assignments", json={"deck": "world"}).status_code == 403
    assert billing_state(db) == before
