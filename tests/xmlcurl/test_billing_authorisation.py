"""Prepaid authorisation in the dialplan answer: a limit set on the channel, or a refusal with a 402."""

from __future__ import annotations

from typing import Any

from xmlcurl_support import actions, parse_answer, pick, post

from controller import billing, provisioning

LIMIT = "nolocal:execute_on_answer=sched_hangup +{} ALLOTTED_TIMEOUT"  # on the gateway leg


def call(client: Any, recorded: Any, dest: str, caller: str, context: str = "acme.test") -> list[tuple[str, str]]:
    """The actions the node gets for ``caller`` dialling ``dest``."""
    body = pick(recorded, "dialplan acme.test 1002").with_fields(
        **{
            "Caller-Destination-Number": dest,
            "Hunt-Destination-Number": dest,
            "Caller-Context": context,
            "Hunt-Context": context,
            "variable_user_name": caller,
        }
    )
    return actions(parse_answer(post(client, body)))


def test_the_balance_sets_the_limit_on_the_channel_or_refuses_the_call(
    client: Any, db: Any, farm: Any, recorded: Any
) -> None:
    for domain in ("acme.test", "beta.test"):
        provisioning.add_child(db, "gateways", domain, {"name": "carrier", "proxy": "203.0.113.5"})
    billing.add_deck(db, {"name": "world", "currency": "EUR"}, None)
    billing.import_rates(db, "world", {"csv": "prefix,price_per_minute,increment\n49,0.60,1/1\n"}, None)
    billing.assign_deck(db, "acme.test", {"deck": "world", "effective_from": "2020-01-01T00:00:00Z"})
    billing.add_account(db, "acme.test", {"currency": "EUR"})
    billing.add_account(db, "acme.test", {"currency": "EUR", "user": "1001"})
    billing.add_entry(db, "acme.test", "tenant", {"kind": "top-up", "amount": "0.60"})

    # 1002 has no account of its own: the tenant's 0.60 at 0.01 a second is one minute, scheduled by the node.
    allowed = call(client, recorded, "+4930123456", "1002")
    assert allowed[-1] == ("bridge", "sofia/gateway/acme.test--carrier/+4930123456")
    assert ("export", LIMIT.format(60)) in allowed
    assert ("export", f"nolocal:fsfarm_bill_tenant={farm['acme'].id}") in allowed

    # 1001 pays from its own empty account: refused with an announcement and a 402, never bridged.
    refused = call(client, recorded, "+4930123456", "1001")
    assert refused[-1] == ("respond", "402 Payment Required")
    assert not any(app == "bridge" for app, _ in refused)
    assert ("set", "fsfarm_bill_refused=the balance cannot pay the first increment") in refused

    # A destination the deck does not price is refused too; a top-up counts from the next call (no stale cache).
    assert call(client, recorded, "+3312345678", "1002")[-1] == ("respond", "402 Payment Required")
    billing.add_entry(db, "acme.test", "1001", {"kind": "top-up", "amount": "1.20"})
    assert ("export", LIMIT.format(120)) in call(client, recorded, "+4930123456", "1001")
    billing.add_entry(db, "acme.test", "tenant", {"kind": "adjustment", "amount": "-0.595"})
    assert call(client, recorded, "+4930123456", "1002")[-1] == ("respond", "402 Payment Required")

    # A tenant that bills nothing gets the plain route, no limit.
    free = call(client, recorded, "+4930123456", "2001", context="beta.test")
    assert free[-1][0] == "bridge" and not any("execute_on_answer" in data for _, data in free)
