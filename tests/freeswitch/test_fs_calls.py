"""The operator's journey on real FreeSWITCH nodes: first start in the README's order, phones, calls, CDRs.

Everything is set up the way the README tells an operator to: ``fsfarm up``, ``fsfarm node add``,
``fsfarm tenant add``/``user add``, then ``fsfarm freeswitch bootstrap`` and FreeSWITCH started last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from farm_harness import Controller, FreeSwitch, Phone, RtpTap, RtpTapUnavailable, hears, stop_together, wait_for
from rtp_gaps import largest_gap, silence_gap, sources

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long", "2001": "pw-2001-long"}
TONES = {"1001": 440, "1002": 1200, "2001": 700}


@dataclass
class Farm:
    controller: Controller
    fs1: FreeSwitch
    spare: FreeSwitch
    workdir: Path
    phones: dict[str, Phone] = field(default_factory=dict)

    def phone(self, user: str, domain: str = "acme.test", password: str | None = None) -> Phone:
        """A registered phone for ``user@domain`` (kept for the module)."""
        key = f"{user}@{domain}"
        if key not in self.phones:
            node = self.node_of(domain)
            p = Phone(self.workdir, user, domain, password or PASSWORDS[user], node.sip_address, TONES[user])
            p.wait_registered()
            self.phones[key] = p
        return self.phones[key]

    def node_of(self, domain: str) -> FreeSwitch:
        placed = tenant_nodes(self.controller)[domain]
        return {"fs1": self.fs1, "spare1": self.spare}[placed]


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
    fs1 = FreeSwitch(controller, "fs1", workdir / "fs1")
    spare = FreeSwitch(controller, "spare1", workdir / "spare1")
    # The README's order: nodes and tenants first, FreeSWITCH started afterwards.
    controller.cli(*fs1.node_add_args())
    controller.cli(*spare.node_add_args("--spare"))
    for domain in ("acme.test", "beta.test"):
        controller.cli("tenant", "add", domain)
    for ext in ("1001", "1002"):
        controller.cli("user", "add", "-t", "acme.test", ext, "--password", PASSWORDS[ext], "--name", f"User {ext}")
    controller.cli("user", "add", "-t", "beta.test", "2001", "--password", PASSWORDS["2001"])
    for node in (fs1, spare):  # both boot at once, then both must be ready
        node.start(wait=False)
    fs1.wait_ready()
    spare.wait_ready()
    f = Farm(controller, fs1, spare, workdir)
    yield f
    stop_together(*f.phones.values(), fs1, spare)


def tenant_nodes(controller: Controller) -> dict[str, Any]:
    """tenant -> node name (None: on no node), from the placement the API shows."""
    return {t["tenant"]: t["node"] for t in controller.api("GET", "/placement")["tenants"]}


def test_first_start_in_readme_order_leaves_every_tenant_on_a_live_node(farm: Farm) -> None:
    ctl = farm.controller
    wait_for(lambda: all(n["health"] == "up" for n in ctl.api("GET", "/nodes")), 30, "both nodes up")
    placed = wait_for(
        lambda: (lambda m: m if all(m.values()) else None)(tenant_nodes(ctl)), 20, "every tenant placed on a node"
    )
    assert set(placed.values()) == {"fs1"}  # the spare is held back
    nodes = {n["name"]: n for n in ctl.api("GET", "/nodes")}
    assert nodes["fs1"]["spare"] is False and nodes["spare1"]["spare"] is True


def test_phones_register_with_their_a1_hash_and_bad_credentials_are_refused(farm: Farm) -> None:
    a, b = farm.phone("1001"), farm.phone("1002")
    regs = wait_for(
        lambda: (lambda r: r if len(r) >= 2 else None)(farm.controller.api("GET", "/tenants/acme.test/registrations")),
        20,
        "both registrations in the API",
    )
    assert {r["username"] for r in regs} >= {"1001", "1002"}, regs
    assert a.registration() == b.registration() == "OK"
    node = farm.node_of("acme.test")
    wrong = Phone(farm.workdir, "1001", "acme.test", "not-the-password", node.sip_address, 500)
    # beta's user with beta's password, claiming acme's domain: a tenant's credentials open no other tenant
    cross = Phone(farm.workdir, "2001", "acme.test", PASSWORDS["2001"], node.sip_address, 500)
    try:
        for refused in (wrong, cross):
            assert "403" in refused.wait_refused()
    finally:
        wrong.stop()
        cross.stop()


def test_call_between_two_phones_carries_audio_both_ways_and_shows_live_then_one_cdr_per_leg(farm: Farm) -> None:
    caller, callee = farm.phone("1001"), farm.phone("1002")
    before = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial("1002")
    caller.wait_event("CALL_ESTABLISHED", after=before[0])
    callee.wait_event("CALL_ESTABLISHED", after=before[1])
    live = wait_for(lambda: farm.controller.api("GET", "/tenants/acme.test/calls") or None, 10, "the live call")
    assert {c["node"] for c in live} == {"fs1"}, live
    time.sleep(3)  # let audio flow
    closed = len(caller.saw("CALL_CLOSED"))
    caller.hangup()
    caller.wait_event("CALL_CLOSED", after=closed)
    assert hears(callee, TONES["1001"]) and not hears(callee, TONES["1002"], threshold=-30)
    assert hears(caller, TONES["1002"]) and not hears(caller, TONES["1001"], threshold=-30)
    wait_for(lambda: not farm.controller.api("GET", "/tenants/acme.test/calls"), 15, "no live call after hangup")
    cdrs = wait_for(
        lambda: (lambda rows: rows if len(rows) >= 2 else None)(
            [r for r in farm.controller.api("GET", "/tenants/acme.test/cdrs") if r["destination"] == "1002"]
        ),
        20,
        "a CDR for each leg",
    )
    assert len(cdrs) == 2 and len({r["channel_uuid"] for r in cdrs}) == 2, cdrs
    assert all(r["billsec"] >= 2 for r in cdrs), cdrs


def test_a_phone_cannot_dial_into_another_tenant(farm: Farm) -> None:
    acme, beta = farm.phone("1001"), farm.phone("2001", "beta.test")
    for caller, target, callee in ((acme, "sip:2001@beta.test", beta), (beta, "sip:1001@acme.test", acme)):
        reached, closed = len(callee.saw("CALL_ESTABLISHED")), len(caller.saw("CALL_CLOSED"))
        established = len(caller.saw("CALL_ESTABLISHED"))
        caller.dial(target)
        caller.wait_event("CALL_CLOSED", after=closed)
        assert len(callee.saw("CALL_ESTABLISHED")) == reached, f"{target} answered across tenants"
        assert len(caller.saw("CALL_ESTABLISHED")) == established


def test_a_did_from_the_public_context_reaches_its_user(farm: Farm) -> None:
    ctl, callee = farm.controller, farm.phone("1002")
    ctl.cli("number", "add", "-t", "acme.test", "+15551230002", "--to", "user:1002")
    established = len(callee.saw("CALL_ESTABLISHED"))
    # The carrier side: another farm member (trusted by the node's ACL) sends the DID to acme's node.
    node = farm.node_of("acme.test")
    farm.spare.esl.bgapi(
        f"originate {{origination_caller_id_number=15559990000}}"
        f"sofia/internal/+15551230002@{node.sip_address} &playback(tone_stream://%(10000,0,900))"
    )
    answered = callee.wait_event("CALL_ESTABLISHED", after=established)
    assert "15559990000" in json.dumps(answered), answered  # the carrier's caller id reached the phone
    time.sleep(2.5)
    closed = len(callee.saw("CALL_CLOSED"))
    callee.hangup()
    callee.wait_event("CALL_CLOSED", after=closed)
    assert hears(callee, 900)
    # The same number without its '+' is the same DID: another tenant cannot take it.
    taken = ctl.cli("number", "add", "-t", "beta.test", "15551230002", "--to", "user:2001", check=False)
    assert taken.returncode != 0 and "already assigned" in taken.stderr, taken


def test_an_outbound_call_leaves_through_the_tenant_gateway_to_the_carrier(farm: Farm) -> None:
    ctl, caller = farm.controller, farm.phone("1001")
    # The carrier: a SIP endpoint taking calls for the number dialled (baresip answers only its own user).
    carrier = Phone(farm.workdir, "15557770000", "", "", None, 1500)
    try:
        ctl.cli(
            "gateway", "add", "-t", "acme.test", "carrier", "--proxy", carrier.address, "--caller-id", "15551230001"
        )
        ctl.api("PATCH", "/tenants/acme.test/users/1001", {"toll_allow": ["local", "domestic"]})
        established = len(caller.saw("CALL_ESTABLISHED"))
        caller.dial("15557770000")
        answered = json.dumps(carrier.wait_event("CALL_ESTABLISHED"))
        caller.wait_event("CALL_ESTABLISHED", after=established)
        assert "15551230001" in answered, answered  # the gateway's caller id, not the extension
        time.sleep(2.5)
        closed = len(caller.saw("CALL_CLOSED"))
        caller.hangup()
        caller.wait_event("CALL_CLOSED", after=closed)
        assert hears(carrier, TONES["1001"]) and hears(caller, 1500)
    finally:
        carrier.stop()


def test_a_prepaid_call_is_refused_without_credit_then_cut_by_the_node_when_the_balance_runs_out(farm: Farm) -> None:
    ctl, caller = farm.controller, farm.phone("1001")
    carrier = Phone(farm.workdir, "15557770000", "", "", None, 1500)
    deck = {"csv": "prefix,price_per_minute,connect_fee,increment\n1555,0.60,0,1/1\n"}  # a cent a second
    try:
        # "billed" sorts before any "carrier" gateway an earlier test left: it takes the number.
        ctl.api("POST", "/tenants/acme.test/gateways", {"name": "billed", "proxy": carrier.address}, expect=201)
        ctl.api("PATCH", "/tenants/acme.test/users/1001", {"toll_allow": ["local", "domestic"]})
        ctl.api("POST", "/billing/decks", {"name": "prepaid", "currency": "EUR"}, expect=201)
        ctl.api("PUT", "/billing/decks/prepaid/rates", deck)
        assign = {"deck": "prepaid", "effective_from": "2020-01-01T00:00:00Z"}
        ctl.api("POST", "/billing/tenants/acme.test/assignments", assign, expect=201)
        ctl.api("POST", "/billing/tenants/acme.test/accounts", {"currency": "EUR"}, expect=201)

        # No credit: refused with a 402 before the carrier hears of it.
        closed = len(caller.saw("CALL_CLOSED"))
        caller.dial("15557770000")
        refused = caller.wait_event("CALL_CLOSED", after=closed)
        assert "402" in json.dumps(refused), refused
        assert carrier.saw("CALL_ESTABLISHED") == []

        # Five seconds of credit: nobody hangs up, the node does, by itself, when they are spent.
        top_up = {"kind": "top-up", "amount": "0.05", "reference": "fs-test-1"}
        ctl.api("POST", "/billing/tenants/acme.test/accounts/tenant/ledger", top_up, expect=201)
        closed = len(caller.saw("CALL_CLOSED"))
        caller.dial("15557770000")
        carrier.wait_event("CALL_ESTABLISHED")
        caller.wait_event("CALL_CLOSED", timeout=30, after=closed)
        rated = wait_for(lambda: ctl.api("GET", "/billing/tenants/acme.test/calls") or None, 20, "the rated leg")
        account = ctl.api("GET", "/billing/tenants/acme.test/accounts/tenant")
    finally:
        carrier.stop()
        ctl.api("DELETE", "/tenants/acme.test/gateways/billed", expect=None)
    assert len(rated) == 1, rated  # one gateway leg, rated once
    # The node's scheduler runs at whole epoch seconds: the cut lands in the last second the balance bought.
    assert 4 <= rated[0]["billsec"] <= 5, rated
    assert Decimal(account["balance"]) == Decimal("0.05") + Decimal(rated[0]["amount"])  # debited exactly
    assert Decimal(0) <= Decimal(account["balance"]) <= Decimal("0.01"), account  # between 0 and one increment


def shared_prepaid(
    ctl: Controller, carriers: list[Phone], numbers: list[str], gateway: str, credit: Decimal, ref: str
) -> set[str]:
    """A gateway ``<gateway>-<i>`` to each carrier for its number; 1001 and 1002 paying from acme.test's account at
    a cent a second, topped up to ``credit``. Returns the rated legs already there (earlier tests')."""
    for i, (carrier, number) in enumerate(zip(carriers, numbers, strict=True)):  # each call has its own far end
        ctl.api(
            "POST",
            "/tenants/acme.test/gateways",
            {"name": f"{gateway}-{i}", "proxy": carrier.address, "dial_pattern": f"^{number}$"},
            expect=201,
        )
    for user in ("1001", "1002"):
        ctl.api("PATCH", f"/tenants/acme.test/users/{user}", {"toll_allow": ["local", "domestic"]})
    # An earlier test may have made these already (a 409 then).
    ctl.api("POST", "/billing/decks", {"name": "shared", "currency": "EUR"}, expect=None)
    deck = {"csv": "prefix,price_per_minute,connect_fee,increment\n1555888,0.60,0,1/1\n"}  # a cent a second
    ctl.api("PUT", "/billing/decks/shared/rates", deck)
    assign = {"deck": "shared", "effective_from": "2021-01-01T00:00:00Z"}
    ctl.api("POST", "/billing/tenants/acme.test/assignments", assign, expect=None)
    ctl.api("POST", "/billing/tenants/acme.test/accounts", {"currency": "EUR"}, expect=None)  # both pay from it
    before = {c["channel_uuid"] for c in ctl.api("GET", "/billing/tenants/acme.test/calls")}
    balance = Decimal(ctl.api("GET", "/billing/tenants/acme.test/accounts/tenant")["balance"])
    top_up = {"kind": "top-up", "amount": str(credit - balance), "reference": ref}
    ctl.api("POST", "/billing/tenants/acme.test/accounts/tenant/ledger", top_up, expect=201)
    return before


def rated_since(ctl: Controller, before: set[str]) -> list[dict[str, Any]] | None:
    """The rated legs not in ``before``, once there are two of them."""
    found = [c for c in ctl.api("GET", "/billing/tenants/acme.test/calls") if c["channel_uuid"] not in before]
    return found if len(found) >= 2 else None


@pytest.mark.parametrize("restart", [False, True], ids=["steady", "controller-restarted-mid-call"])
def test_two_calls_on_sixty_seconds_of_credit_are_both_cut_at_thirty_and_a_third_is_refused(
    farm: Farm, restart: bool
) -> None:
    """The issue's own case: 60 s of credit at the gateway's rate, two calls at once, the account stops at zero."""
    ctl = farm.controller
    credit = Decimal("0.60")  # 60 s at a cent a second
    run = int(restart)  # a gateway name of its own: a node may still be removing the other run's
    callers = [farm.phone("1001"), farm.phone("1002")]
    numbers = [f"1555888000{i}" for i in range(2)]
    carriers = [Phone(farm.workdir, number, "", "", None, 1500) for number in numbers]
    try:
        before = shared_prepaid(ctl, carriers, numbers, f"a-shared-{run}", credit, f"fs-test-60-{restart}")
        closed = [len(c.saw("CALL_CLOSED")) for c in callers]
        for i, caller in enumerate(callers):  # each alone may have all 60 s; together they share them
            caller.dial(numbers[i])
            carriers[i].wait_event("CALL_ESTABLISHED")
        if restart:  # mid-call: the restarted controller reads the legs up back and re-times them on reconnect
            time.sleep(5)
            ctl.restart()
            wait_for(lambda: all(n["health"] == "up" for n in ctl.api("GET", "/nodes")), 30, "both nodes up again")
        for caller, seen in zip(callers, closed, strict=True):
            caller.wait_event("CALL_CLOSED", timeout=60, after=seen)  # nobody hangs up: the nodes do
        # A third call at about 31 s: nothing is left to pay its first second.
        seen = len(callers[0].saw("CALL_CLOSED"))
        callers[0].dial("15558880000")
        refused = callers[0].wait_event("CALL_CLOSED", after=seen)
        rated = wait_for(lambda: rated_since(ctl, before), 20, "both rated legs")
        time.sleep(1)  # a second rating of a leg, were there one, would be in by now
        rated = rated_since(ctl, before) or []
        account = ctl.api("GET", "/billing/tenants/acme.test/accounts/tenant")
    finally:
        for carrier in carriers:
            carrier.stop()
        for i in range(2):
            ctl.api("DELETE", f"/tenants/acme.test/gateways/a-shared-{run}-{i}", expect=None)
    assert "402" in json.dumps(refused), refused
    assert len(carriers[0].saw("CALL_ESTABLISHED")) == 1  # the refused call never reached the carrier
    assert len(rated) == 2 and len({c["channel_uuid"] for c in rated}) == 2, rated  # each leg rated once
    for leg in rated:  # both cut at 30 s +- 1 s of talk
        talked = (datetime.fromisoformat(leg["ended_at"]) - datetime.fromisoformat(leg["answered_at"])).total_seconds()
        assert 29 <= leg["billsec"] <= 31 and 29 <= talked <= 31, rated
    spent = -sum(Decimal(c["amount"]) for c in rated)
    assert Decimal(account["balance"]) == credit - spent  # the ledger moved by exactly the rated legs
    assert Decimal(0) <= Decimal(account["balance"]) < Decimal("0.01"), (account, rated)  # less than one increment


def test_when_one_of_two_prepaid_calls_ends_the_other_gets_what_it_leaves(farm: Farm) -> None:
    """20 s of credit shared by two calls: 1001 hangs up after about 4 s, 1002's call runs on to about 16 s."""
    ctl = farm.controller
    credit = Decimal("0.20")
    callers = [farm.phone("1001"), farm.phone("1002")]
    numbers = [f"1555888100{i}" for i in range(2)]
    carriers = [Phone(farm.workdir, number, "", "", None, 1500) for number in numbers]
    try:
        before = shared_prepaid(ctl, carriers, numbers, "a-freed", credit, "fs-test-freed")
        closed = [len(c.saw("CALL_CLOSED")) for c in callers]
        for i, caller in enumerate(callers):
            caller.dial(numbers[i])
            carriers[i].wait_event("CALL_ESTABLISHED")
        time.sleep(3)
        callers[0].hangup()  # its 4 s or so are paid; the other call may now have the rest
        callers[0].wait_event("CALL_CLOSED", after=closed[0])
        callers[1].wait_event("CALL_CLOSED", timeout=40, after=closed[1])
        rated = wait_for(lambda: rated_since(ctl, before), 20, "both rated legs")
        account = ctl.api("GET", "/billing/tenants/acme.test/accounts/tenant")
    finally:
        for carrier in carriers:
            carrier.stop()
        for i in range(2):
            ctl.api("DELETE", f"/tenants/acme.test/gateways/a-freed-{i}", expect=None)
    first, second = sorted(rated, key=lambda c: c["billsec"])
    # The survivor was not cut at the 10 s it had while both were up, but when the whole credit was spent.
    assert first["billsec"] + second["billsec"] == 20 and second["billsec"] > 10, rated
    assert Decimal(account["balance"]) == Decimal(0), (account, rated)


def test_controller_restart_loses_nothing_and_calls_keep_working(farm: Farm) -> None:
    ctl = farm.controller
    caller, callee = farm.phone("1001"), farm.phone("1002")
    placement = ctl.api("GET", "/placement")
    cdrs_before = len(ctl.api("GET", "/tenants/acme.test/cdrs"))
    ctl.restart()
    wait_for(lambda: all(n["health"] == "up" for n in ctl.api("GET", "/nodes")), 30, "both nodes up again")
    after = ctl.api("GET", "/placement")
    assert (after["generation"], after["tenants"]) == (placement["generation"], placement["tenants"])
    regs = {r["username"] for r in ctl.api("GET", "/tenants/acme.test/registrations")}
    assert {"1001", "1002"} <= regs
    established = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial("1002")
    caller.wait_event("CALL_ESTABLISHED", after=established[0])
    callee.wait_event("CALL_ESTABLISHED", after=established[1])
    wait_for(lambda: ctl.api("GET", "/tenants/acme.test/calls"), 10, "the live call after the restart")
    closed = len(caller.saw("CALL_CLOSED"))
    caller.hangup()
    caller.wait_event("CALL_CLOSED", after=closed)
    wait_for(
        lambda: len(ctl.api("GET", "/tenants/acme.test/cdrs")) >= cdrs_before + 2,
        20,
        "both legs' CDRs written by the restarted controller",
    )


def tap_on(phone: Phone) -> RtpTap:
    try:
        return RtpTap(phone).start()
    except RtpTapUnavailable as e:
        pytest.skip(str(e))


def test_the_tap_sees_the_nodes_steady_rtp_reach_the_callee_and_nothing_once_stopped(farm: Farm) -> None:
    """The media-gap tool the failover tests use (``RtpTap``), checked on a steady call first."""
    caller, callee = farm.phone("1001"), farm.phone("1002")
    tap = tap_on(callee)
    established = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial("1002")
    caller.wait_event("CALL_ESTABLISHED", after=established[0])
    callee.wait_event("CALL_ESTABLISHED", after=established[1])
    wait_for(lambda: len(tap.arrivals()) >= 150, 30, "three seconds of RTP at the callee")
    tap.stop()
    arrivals = tap.arrivals()
    # Stopped means stopped: a second tap still sees the call's packets while the first one's count stays.
    later = tap_on(callee)
    try:
        wait_for(lambda: len(later.arrivals()) >= 25, 10, "RTP at the callee after the first tap stopped")
    finally:
        later.stop()
    assert len(tap.arrivals()) == len(arrivals)

    closed = len(caller.saw("CALL_CLOSED")), len(callee.saw("CALL_CLOSED"))
    caller.hangup()
    caller.wait_event("CALL_CLOSED", after=closed[0])
    callee.wait_event("CALL_CLOSED", after=closed[1])  # its recording is complete once its call is closed

    runs = sources(arrivals)
    assert len(runs) == 1, runs  # one sender for the whole call: the node's media address
    assert runs[0].source.split(":")[0] == farm.fs1.sip_host, runs
    # To the SDP's address first, then where the phone's RTP comes from (127.0.0.1): one socket either way.
    assert len({a.destination.rsplit(":", 1)[1] for a in arrivals}) == 1, {a.destination for a in arrivals}
    seqs = [a.seq for a in arrivals]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "lo lost or duplicated RTP"
    rate = (len(arrivals) - 1) / (arrivals[-1].at - arrivals[0].at)
    assert 40 < rate < 60, f"{rate:.1f} packets/s, not one per 20 ms"
    gap, at = largest_gap(arrivals)
    assert gap < 0.5, f"a {gap * 1000:.0f} ms hole at {at} in a steady call: the tap, not the call, is broken"
    # The wav fallback on the same call: the caller's tone all along once the call is up.
    pcm, rate_hz = callee.heard(skip=1.0)
    assert silence_gap(pcm, rate_hz, TONES["1001"]) < 0.5
