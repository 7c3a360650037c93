"""Rating of stored CDRs: each billed gateway leg debits its account once, exactly its rated cost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from controller import billing, provisioning
from controller.database import Database
from controller.stores import legs_up, live_calls
from controller.stores.live_calls import LiveCall
from esl_workers import cdr
from esl_workers.inbound import Ingest, WorkerConfig

START = int(time.time() * 1_000_000)
NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}


def _farm(db: Database) -> tuple[Any, Any]:
    """acme with a shared deck at +50 %, 1001's own account (10 EUR) and the tenant's (5 EUR)."""
    node = provisioning.add_node(db, NODE)
    spare = provisioning.add_node(db, {**NODE, "name": "fs2", "sip_address": "10.0.0.2", "esl_address": "10.0.0.2"})
    tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
    for ext in ("1001", "1002"):
        provisioning.add_child(db, "users", "acme.example", {"extension": ext, "password": f"pw-{ext}-long"})
    billing.add_deck(db, {"name": "world", "currency": "EUR"}, None)
    rates = "prefix,price_per_minute,connect_fee,increment\n49,0.60,0.10,60/60\n4915,1.20,0,1/1\n"
    billing.import_rates(db, "world", {"csv": rates}, None)
    billing.assign_deck(db, "acme.example", {"deck": "world", "margin_percent": "50", "effective_from": "2020-01-01"})
    for user, amount in (("1001", "10"), (None, "5")):
        billing.add_account(db, "acme.example", {"currency": "EUR", **({"user": user} if user else {})})
        ref = user or billing.TENANT_ACCOUNT
        billing.add_entry(db, "acme.example", ref, {"kind": "top-up", "amount": amount})
    return tenant, (node, spare)


def leg(tenant: Any, uuid: str, caller: str, number: str, billsec: int, billed: bool = True) -> cdr.Cdr:
    """The CDR of an outbound gateway leg as FreeSWITCH reports it, marked by the dialplan when ``billed``."""
    marks = {billing.BILL_TENANT: str(tenant.id), billing.BILL_USER: caller, billing.BILL_NUMBER: number}
    answer = START + 5_000_000
    return cdr.Cdr(
        channel_uuid=uuid,
        call_uuid=uuid,
        tenant_domain="acme.example",
        direction="outbound",
        caller_number=caller,
        caller_name="",
        destination=number.lstrip("+"),
        other_leg_uuid="",
        sip_call_id="",
        start_usec=START,
        answer_usec=answer if billsec else 0,
        end_usec=answer + billsec * 1_000_000,
        duration=billsec + 5,
        billsec=billsec,
        hangup_cause="NORMAL_CLEARING",
        variables=marks if billed else {},
    )


def store(db: Database, node: Any, tenant: Any, legs: list[cdr.Cdr]) -> int:
    with db.transaction() as conn:
        return cdr.insert_many(conn, node.id, legs, {"acme.example": tenant.id})


def test_each_billed_leg_is_debited_once_at_its_rate_with_increments_and_margin(db: Database) -> None:
    tenant, (node, _) = _farm(db)
    legs = [
        leg(tenant, "leg-landline", "1001", "+4930123456", 61),  # 60/60: two minutes at 0.90, fee 0.15
        leg(tenant, "leg-mobile", "1002", "004915112345", 7),  # 1/1 at 1.80: 7 s; 1002 has no account: the tenant's
        leg(tenant, "leg-unanswered", "1001", "+4930123456", 0),
        leg(tenant, "leg-internal", "1001", "+4930123456", 30, billed=False),
        leg(tenant, "leg-nowhere", "1001", "+3312345", 30),  # no rate for +33: not billed
    ]
    assert store(db, node, tenant, legs) == 5
    user = billing.get_account(db, "acme.example", "1001")
    own = billing.get_account(db, "acme.example", "tenant")
    assert Decimal(user["balance"]) == Decimal(10) - (Decimal("0.15") + Decimal("1.80"))
    assert Decimal(own["balance"]) == Decimal(5) - Decimal("0.21")
    calls = {c.channel_uuid: c for c in billing.rated_calls(db, "acme.example")}
    assert set(calls) == {"leg-landline", "leg-mobile"}
    landline = calls["leg-landline"]
    assert (landline.prefix, landline.billsec, landline.billed_seconds) == ("49", 61, 120)
    assert (landline.price_per_minute, landline.amount, landline.node_id) == (Decimal("0.9"), Decimal("-1.95"), node.id)
    assert (calls["leg-mobile"].prefix, calls["leg-mobile"].destination) == ("4915", "004915112345")


def test_a_spool_replay_and_the_heirs_cdr_after_a_failover_do_not_bill_twice(db: Database, tmp_path: Path) -> None:
    tenant, (node, heir) = _farm(db)
    call = leg(tenant, "leg-1", "1001", "+4930123456", 61)
    assert store(db, node, tenant, [call]) == 1
    # The watcher crashed after the commit, before emptying its spool: the replay stores and rates nothing.
    ingest = Ingest(db, node, WorkerConfig(spool_dir=tmp_path))
    ingest.spool.append([call])
    assert ingest.replay_spool() == 0
    # The heir that recovered the leg reports its own CDR for the same leg uuid: stored, not billed again.
    assert store(db, heir, tenant, [call]) == 1
    entries = billing.list_entries(db, "acme.example", "1001")
    assert [e.kind for e in entries] == ["call", "top-up"]
    assert Decimal(billing.get_account(db, "acme.example", "1001")["balance"]) == Decimal("8.05")


def test_a_cdr_first_seen_in_the_spool_is_rated_when_it_is_replayed(db: Database, tmp_path: Path) -> None:
    tenant, (node, _) = _farm(db)
    ingest = Ingest(db, node, WorkerConfig(spool_dir=tmp_path))
    ingest.spool.append([leg(tenant, "leg-spooled", "1001", "+4915100", 10)])  # PostgreSQL was away at hangup
    assert ingest.replay_spool() == 1
    assert [c.channel_uuid for c in billing.rated_calls(db, "acme.example")] == ["leg-spooled"]
    assert billing.get_account(db, "acme.example", "1001")["balance"] == "9.700000"


def test_a_new_call_is_allowed_what_the_balance_leaves_after_the_calls_already_up(db: Database) -> None:
    tenant, (node, _) = _farm(db)
    marks = {billing.BILL_TENANT: str(tenant.id), billing.BILL_USER: "1001", billing.BILL_NUMBER: "+4915100"}
    now = datetime.now(UTC)
    with db.transaction() as conn:
        alone = billing.authorise(conn, tenant.id, "1001", "+4915100", now)
        # 1001's first call answered 60 s ago at 1.80 a minute: 1.80 of its 10 are burnt, and it burns on.
        live_calls.upsert(conn, node.id, LiveCall("leg-up", "answered"), tenant.id)  # as the ESL room saw it
        assert billing.leg_answered(conn, node.id, "leg-up", marks, now - timedelta(seconds=60)) is not None
        second = billing.authorise(conn, tenant.id, "1001", "+4915100", now)
    assert alone is not None and second is not None
    assert alone.seconds == 333  # 10 / 0.03 a second
    assert second.seconds == (333 - 60) // 2  # what is left, shared by two calls burning alike
    # Its CDR ends it: the leg is no longer counted, its cost is in the ledger instead.
    assert store(db, node, tenant, [leg(tenant, "leg-up", "1001", "+4915100", 60)]) == 1
    with db.transaction() as conn:
        after = billing.authorise(conn, tenant.id, "1001", "+4915100", datetime.now(UTC))
    assert after is not None and after.seconds == 333 - 60


def test_a_hung_up_leg_counts_until_its_cdr_and_a_missed_one_until_the_nodes_reconcile(db: Database) -> None:
    tenant, (node, _) = _farm(db)
    marks = {billing.BILL_TENANT: str(tenant.id), billing.BILL_USER: "1001", billing.BILL_NUMBER: "+4915100"}
    now = datetime.now(UTC)
    with db.transaction() as conn:
        live_calls.upsert(conn, node.id, LiveCall("leg-lost", "answered"), tenant.id)
        billing.leg_answered(conn, node.id, "leg-lost", marks, now - timedelta(seconds=60))
        account = billing.paying_account(conn, tenant.id, "1001")
        assert account is not None and len(billing.calls_up(conn, account.id, now)) == 1
        # Hung up, its channel gone, its CDR not stored yet: its cost is in no ledger yet, so it still burns.
        live_calls.remove(conn, node.id, "leg-lost")
        assert billing.authorise(conn, tenant.id, "1001", "+4915100", now).seconds == (333 - 60) // 2  # type: ignore[union-attr]
        # Its hangup was missed (the controller was away): the node's reconcile finds no such channel.
        assert legs_up.drop_missing(conn, node.id, ["some-other-channel"]) == 1
        decision = billing.authorise(conn, tenant.id, "1001", "+4915100", now)
    assert decision is not None and decision.seconds == 333  # the whole balance again
