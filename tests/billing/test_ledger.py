"""The ledger against a real PostgreSQL: a balance is the sum of entries, a reference is taken once."""

from __future__ import annotations

from decimal import Decimal

from controller import billing, provisioning


def _tenant_with_account(db) -> None:  # type: ignore[no-untyped-def]
    provisioning.add_tenant(db, {"domain": "acme.example"})
    billing.add_account(db, "acme.example", {"currency": "EUR", "low_balance": "5"})


def test_balance_is_the_sum_of_entries_and_a_retried_top_up_counts_once(db) -> None:  # type: ignore[no-untyped-def]
    _tenant_with_account(db)
    first = billing.add_entry(db, "acme.example", "tenant", {"kind": "top-up", "amount": "10.50", "reference": "pay-1"})
    again = billing.add_entry(db, "acme.example", "tenant", {"kind": "top-up", "amount": "10.50", "reference": "pay-1"})
    billing.add_entry(db, "acme.example", "tenant", {"kind": "adjustment", "amount": "-0.25"})
    assert again.id == first.id
    account = billing.get_account(db, "acme.example", "tenant")
    assert (account["balance"], account["low"]) == ("10.250000", False)
    assert [e.amount for e in billing.list_entries(db, "acme.example", "tenant")] == [Decimal("-0.25"), Decimal("10.5")]
    billing.add_entry(db, "acme.example", "tenant", {"kind": "adjustment", "amount": "-6"})
    assert billing.get_account(db, "acme.example", "tenant")["low"] is True
