"""Failover on real FreeSWITCH nodes behind a real Kamailio: a node that dies loses nothing a caller notices.

First, calls to phones come back through Kamailio, the address they registered with (RFC 3327 Path):
the node stores the Path with the contact (``fs_path``) and sends a phone's INVITE to Kamailio, which
relays it from its own address and stays in the dialog. That is what any node, the spare included,
uses to reach a phone.

fs1 (active) and spare1 (``--spare``) run from bootstrap files only, with FreeSWITCH's own state
(sofia registrations, the calls sofia tracks) in the farm's shared PostgreSQL. Kamailio is rendered
by ``fsfarm kamailio config`` and ``fsfarm up`` reloads it. Phones register through Kamailio once,
for an hour: nothing a test sees can come from a phone registering again.

When a node dies its tenant moves to the spare, which also answers at the dead node's SIP and
media address (here its own 127.x.1.y address, bound by a second SIP profile on the spare) and
recovers its calls there; once they are over it gives the address back, and the dead node, when
it returns, rejoins as the spare. A hung node is fenced first (``FSFARM_FENCE_COMMAND``, here a
SIGKILL of the pid in its run dir).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from console_browser import chromium, loaded, shot, sign_in, until
from farm_harness import (
    Controller,
    FreeSwitch,
    Kamailio,
    Phone,
    RtpTap,
    RtpTapUnavailable,
    level_db,
    stop_together,
    wait_for,
)
from rtp_gaps import largest_gap, sources

from controller.kamailio.control import KamailioControl

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long", "1003": "pw-1003-long"}
TONES = {"1001": 440, "1002": 1200, "1003": 700}
REGINT = 3600  # one registration for the whole module: the spare must know the phones without a new one


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    """``fsfarm up`` reloading the module's Kamailio, fencing a node by killing the pid in its run dir."""
    env = {
        "FSFARM_KAMAILIO_CTL": str(workdir / "kamailio" / "ctl"),
        "FSFARM_SIP_PROXIES": "127.0.0.1",
        # What an operator's STONITH does (ssh + kill, the cloud's stop-instance): here the process is local.
        "FSFARM_FENCE_COMMAND": f"kill -KILL $(cat {workdir}/{{name}}/run/freeswitch.pid) 2>/dev/null; true",
    }
    ctl = Controller(farm_dsn, workdir, env=env).start()
    yield ctl
    ctl.stop()


@dataclass
class Farm:
    controller: Controller
    kamailio: Kamailio
    nodes: dict[str, FreeSwitch]
    workdir: Path
    switch_dsn: str
    phones: dict[str, Phone] = field(default_factory=dict)

    def phone(self, user: str) -> Phone:
        """A phone for ``user@acme.test`` registered through Kamailio (kept for the module)."""
        if user not in self.phones:
            p = Phone(
                self.workdir,
                user,
                "acme.test",
                PASSWORDS[user],
                self.kamailio.address,
                TONES[user],
                regint=REGINT,
                sip_trace=True,
            )
            p.wait_registered()
            self.phones[user] = p
        return self.phones[user]

    def active(self) -> FreeSwitch:
        """The node acme.test is placed on now."""
        return self.nodes[str(tenant_node(self.controller))]

    def standby(self) -> FreeSwitch:
        """The other node."""
        active = tenant_node(self.controller)
        return next(n for name, n in self.nodes.items() if name != active)

    def registered_by(self, user: str) -> set[str]:
        """Switchnames of the nodes that keep (and expire) ``user``'s registrations in the shared database."""
        with psycopg.connect(self.switch_dsn) as conn:
            rows = conn.execute(
                "SELECT hostname FROM sofia.sip_registrations WHERE sip_user = %s AND sip_host = 'acme.test'", [user]
            ).fetchall()
        return {r[0] for r in rows}

    def switchname(self, node: FreeSwitch) -> str:
        return str(nodes(self.controller)[node.name]["switchname"])

    def failovers(self) -> list[dict[str, Any]]:
        return list(self.controller.cli_json("failover", "list"))


def tenant_node(controller: Controller, domain: str = "acme.test") -> str | None:
    return {t["tenant"]: t["node"] for t in controller.api("GET", "/placement")["tenants"]}.get(domain)


def nodes(controller: Controller) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in controller.api("GET", "/nodes")}


def hears_last(phone: Phone, tone: float, seconds: float = 1.5) -> bool:
    """Did the last ``seconds`` of ``phone``'s latest call carry ``tone`` from the far end?"""
    pcm, rate = phone.heard(skip=0)
    return level_db(pcm[-int(rate * seconds) :], rate, tone) > -40.0


def taps(*phones: Phone) -> list[RtpTap]:
    """RTP arrival recorders on ``phones`` (raw socket on lo: the tier runs as root)."""
    try:
        return [RtpTap(p).start() for p in phones]
    except RtpTapUnavailable as exc:
        pytest.skip(f"cannot watch RTP arrivals: {exc}")


def media_gap(tap: RtpTap, failed_at: float) -> float:
    """The longest stretch without RTP at the tapped phone, from 1 s before the failure to the end of the tap."""
    tap.stop()
    arrivals = tap.arrivals()
    assert any(a.at > failed_at + 1.0 for a in arrivals), "RTP never came back to the phone after the failure"
    gap, _ = largest_gap(arrivals, after=failed_at - 1.0, until=tap.stopped_at)
    return gap


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path, farm_dsn: str) -> Iterator[Farm]:
    kamailio = Kamailio(controller, workdir / "kamailio")
    # Nodes get their own addresses (harness): on Kamailio's 127.0.0.1 the node ACL would trust every proxied call.
    fs1 = FreeSwitch(controller, "fs1", workdir / "fs1")
    spare = FreeSwitch(controller, "spare1", workdir / "spare1")
    # The README's order: nodes, tenant and users first, FreeSWITCH started afterwards.
    controller.cli(*fs1.node_add_args())
    controller.cli(*spare.node_add_args("--spare"))
    controller.cli("tenant", "add", "acme.test")
    for ext in PASSWORDS:
        controller.cli("user", "add", "-t", "acme.test", ext, "--password", PASSWORDS[ext])
    controller.cli("conference", "add", "-t", "acme.test", "3000")
    dbname = psycopg.conninfo.conninfo_to_dict(farm_dsn)["dbname"]
    switch_dsn = psycopg.conninfo.make_conninfo(farm_dsn, dbname=f"{dbname}_switch")
    f = Farm(controller, kamailio, {"fs1": fs1, "spare1": spare}, workdir, switch_dsn)
    try:
        for node in (fs1, spare):  # both boot at once, then both must be ready
            node.start(wait=False)
        fs1.wait_ready()
        spare.wait_ready()
        wait_for(lambda: all(n["health"] == "up" for n in controller.api("GET", "/nodes")), 30, "both nodes up")
        control = KamailioControl(kamailio.ctl)
        wait_for(lambda: "acme.test" in control.domains(), 30, "Kamailio to route acme.test (fsfarm up reloads it)")
        # A destination Kamailio has not heard answer its OPTIONS yet gets no request (503 to the phone).
        for node in (fs1, spare):
            uri = f"sip:{node.sip_address}"
            wait_for(lambda u=uri: control.destinations().get(u, "").startswith("A"), 30, f"pings to {node.name}")
        yield f
    finally:
        for p in f.phones.values():  # killed: a clean quit waits for un-REGISTERs nobody needs here
            p.process.kill()
            p.process.wait()
            p.ctrl.close()
        stop_together(fs1, spare, kamailio)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium for the console tests of this module (their farm is this module's)."""
    with chromium() as b:
        yield b


def call(caller: Phone, callee: Phone, node: FreeSwitch, timeout: float = 30) -> None:
    """``caller`` dials ``callee`` through Kamailio; both ends up and the channels on ``node``."""
    before_a, before_b = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(callee.user)
    caller.wait_event("CALL_ESTABLISHED", timeout, after=before_a)
    callee.wait_event("CALL_ESTABLISHED", timeout, after=before_b)
    wait_for(lambda: len(node.esl.channels()) >= 2, 10, f"the call's two legs on {node.name}")


def hang_up(by: Phone, other: Phone) -> None:
    before = len(other.saw("CALL_CLOSED"))
    by.hangup()
    other.wait_event("CALL_CLOSED", 15, after=before)


def back_as_spare(farm: Farm, node: FreeSwitch) -> None:
    """Start a failed-over node again once its heir gave its address back: it rejoins as the spare."""
    ctl = farm.controller
    wait_for(lambda: nodes(ctl)[node.name]["heir_id"] is None, 20, f"{node.name}'s address given back")
    node.start()
    wait_for(lambda: nodes(ctl)[node.name]["health"] == "up" and nodes(ctl)[node.name]["spare"], 60, "back as spare")


def wait_failover(farm: Farm, count: int) -> dict[str, Any]:
    """The newest failover once it is done (``count`` failovers recorded by then)."""

    def done() -> dict[str, Any] | None:
        rows = farm.failovers()
        return rows[0] if len(rows) >= count and rows[0]["state"] == "done" else None

    return dict(wait_for(done, 60, f"failover #{count} done"))


def stored_contact(node: FreeSwitch, user: str) -> str:
    """The Contact the node stored for ``user@acme.test`` (``sofia status profile internal reg``)."""
    body = node.esl.api("sofia status profile internal reg")
    for block in body.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        if fields.get("User", "").strip() == f"{user}@acme.test":
            return fields.get("Contact", "").strip()
    return ""


def traced(phone: Phone, method: str) -> list[tuple[str, str]]:
    """(source, destination) of each ``method`` request ``phone`` sent or received, from its SIP trace."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", phone.log())
    # baresip -s: a line "UDP source -> destination", then the message's start line
    return re.findall(r"^UDP (\S+) -> (\S+)\n" + method + " sip:", text, flags=re.MULTILINE)


def test_a_call_reaches_the_phone_from_kamailio_and_the_phone_hanging_up_ends_it(farm: Farm) -> None:
    a, b = farm.phone("1001"), farm.phone("1002")
    contact = unquote(stored_contact(farm.nodes["fs1"], "1002"))
    # The node keeps the Path Kamailio added: Kamailio's address, and where the phone registered from.
    assert "fs_path=" in contact and farm.kamailio.address in contact and b.address in contact, contact

    a.dial("1002")
    a.wait_event("CALL_ESTABLISHED", 30)
    b.wait_event("CALL_ESTABLISHED", 30)
    wait_for(lambda: len(farm.nodes["fs1"].esl.channels()) == 2, 10, "the call's two legs on fs1")
    # The INVITE came to the phone from Kamailio's address, not from the node's.
    assert traced(b, "INVITE") == [(farm.kamailio.address, b.address)]
    time.sleep(2)  # let some audio flow before checking what each side decoded

    b.hangup()  # the called phone hangs up: its BYE goes to Kamailio (Record-Route), which passes it on
    a.wait_event("CALL_CLOSED", 15)
    wait_for(lambda: farm.nodes["fs1"].esl.channels() == [], 10, "both legs gone from fs1")
    assert traced(b, "BYE") == [(b.address, farm.kamailio.address)]
    assert traced(a, "BYE") == [(farm.kamailio.address, a.address)]  # the node's BYE to the caller, relayed
    assert hears_last(a, TONES["1002"]) and hears_last(b, TONES["1001"])


def test_the_caller_hanging_up_ends_the_call_at_the_called_phone_through_kamailio(farm: Farm) -> None:
    a, b = farm.phone("1001"), farm.phone("1002")
    invites, byes = len(traced(b, "INVITE")), len(traced(b, "BYE"))
    closed_a, closed_b = len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))
    established_a, established_b = len(a.saw("CALL_ESTABLISHED")), len(b.saw("CALL_ESTABLISHED"))
    a.dial("1002")
    a.wait_event("CALL_ESTABLISHED", 30, after=established_a)
    b.wait_event("CALL_ESTABLISHED", 30, after=established_b)
    assert traced(b, "INVITE")[invites:] == [(farm.kamailio.address, b.address)]

    a.hangup()
    b.wait_event("CALL_CLOSED", 15, after=closed_b)  # the node's BYE reached the called phone, from Kamailio
    assert traced(b, "BYE")[byes:] == [(farm.kamailio.address, b.address)]
    wait_for(lambda: farm.nodes["fs1"].esl.channels() == [], 10, "both legs gone from fs1")
    assert len(a.saw("CALL_CLOSED")) == closed_a + 1


def test_a_live_call_shows_on_the_tenant_admins_console_and_its_hang_up_button_ends_it(
    farm: Farm, browser: Any
) -> None:
    ctl = farm.controller
    a, b = farm.phone("1001"), farm.phone("1002")
    token = ctl.api("POST", "/tokens", {"scope": "tenant-admin", "tenant": "acme.test", "label": "acme"}, 201)["token"]
    page = loaded(sign_in(browser, ctl.url, token=token), f"{ctl.url}/console/tenants/acme.test/registrations")
    shown = page.eval_on_selector_all("td[data-col='username']", "cells => cells.map(c => c.textContent)")
    assert {"1001", "1002"} <= set(shown), shown  # both phones, registered through Kamailio
    loaded(page, f"{ctl.url}/console/tenants/acme.test/calls")
    assert page.locator("tr[data-key]").count() == 0
    closed_a, closed_b = len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))
    call(a, b, farm.nodes["fs1"])
    legs = {ch["uuid"] for ch in farm.nodes["fs1"].esl.channels()}
    # The page polls the API: both legs appear without a reload, with who calls whom.
    until(lambda: set(page.eval_on_selector_all("tr[data-key]", "rows => rows.map(r => r.dataset.key)")) == legs, page)
    assert "1002" in page.inner_text("#page")
    shot(page, "tenant-calls-live")

    page.on("dialog", lambda d: d.accept())  # "Hang up this call?"
    page.locator("tr[data-key] button", has_text="Hang up").first.click()
    a.wait_event("CALL_CLOSED", 15, after=closed_a)
    b.wait_event("CALL_CLOSED", 15, after=closed_b)
    wait_for(lambda: farm.nodes["fs1"].esl.channels() == [], 10, "both legs gone from fs1")
    until(lambda: page.locator("tr[data-key]").count() == 0, page)
    page.context.close()


def test_a_phone_registered_on_the_crashed_node_is_called_on_the_spare_without_registering_again(
    farm: Farm, browser: Any
) -> None:
    ctl = farm.controller
    fs1, spare = farm.nodes["fs1"], farm.nodes["spare1"]
    assert tenant_node(ctl) == "fs1"
    a, b = farm.phone("1001"), farm.phone("1002")
    assert farm.registered_by("1002") == {farm.switchname(fs1)}
    registers = len(b.saw("REGISTER_OK"))
    control = KamailioControl(farm.kamailio.ctl)
    fs1_set = control.domains()["acme.test"]
    # The farm admin watches the placement page through the crash.
    token = (ctl.state_dir / "admin-token").read_text().strip()
    page = loaded(sign_in(browser, ctl.url, token=token), f"{ctl.url}/console/placement")
    assert page.locator("[data-node='fs1'] [data-tenant='acme.test']").count() == 1
    page.evaluate("window.notReloaded = true")

    killed = time.monotonic()
    fs1.kill()
    wait_for(lambda: tenant_node(ctl) == "spare1", 30, "acme.test placed on spare1 after fs1's crash")
    # The page shows the move by itself: acme.test on spare1, fs1 down.
    until(lambda: page.locator("[data-node='spare1'] [data-tenant='acme.test']").count(), page)
    until(lambda: page.locator("[data-node='fs1'].health-down").count(), page)
    assert page.evaluate("window.notReloaded") is True
    shot(page, "placement-failover")
    wait_for(lambda: control.domains().get("acme.test") != fs1_set, 10, "Kamailio routing acme.test elsewhere")
    call(a, b, spare)
    answered = time.monotonic() - killed
    time.sleep(2)
    hang_up(a, b)
    assert hears_last(a, TONES["1002"]) and hears_last(b, TONES["1001"])
    assert len(b.saw("REGISTER_OK")) == registers  # reached through the registration fs1 took, not a new one
    print(f"\nfs1 SIGKILL -> 1002 answered a call on spare1 {answered:.2f} s later, without registering again")

    row = wait_failover(farm, 1)
    assert row["reason"].startswith("the ESL watcher declared it down")
    assert row["kamailio"].startswith("reloaded")
    assert row["takeover"].startswith("address taken"), row["takeover"]
    assert row["registrations_moved"] >= 2 and row["calls_recovered"] == 0, row
    # spare1 expires the phones' registrations now; with no call to carry on it gave fs1's address back.
    assert farm.registered_by("1002") == {farm.switchname(spare)}
    wait_for(lambda: nodes(ctl)["fs1"]["heir_id"] is None, 10, "fs1's address given back")
    assert "the ESL watcher declared it down" in ctl.cli("failover", "list").stdout
    loaded(page, f"{ctl.url}/console/failovers")
    assert "the ESL watcher declared it down" in page.inner_text("#page")
    shot(page, "failovers-after-crash")
    page.context.close()


def test_a_call_in_progress_carries_on_when_its_node_is_killed_and_ends_with_one_cdr_per_leg(farm: Farm) -> None:
    ctl = farm.controller
    back_as_spare(farm, farm.nodes["fs1"])
    node, heir = farm.active(), farm.standby()
    a, b = farm.phone("1001"), farm.phone("1002")
    call(a, b, node)
    legs = {ch["uuid"] for ch in node.esl.channels()}
    answered = time.monotonic()
    watching = taps(a, b)
    time.sleep(2)
    closed_a = len(a.saw("CALL_CLOSED"))

    killed = time.monotonic()
    node.kill()
    row = wait_failover(farm, 2)
    assert row["takeover"].startswith("address taken"), row["takeover"]
    assert row["calls_tracked"] == 2 and row["calls_recovered"] == 2, row
    wait_for(lambda: legs <= {ch["uuid"] for ch in heir.esl.channels()}, 10, f"both legs up on {heir.name}")
    time.sleep(3)  # audio after the takeover
    gaps = [media_gap(tap, killed) for tap in watching]
    # The media comes from the same address and port as before the crash: the heir took them over.
    assert all(len({s.source for s in sources(tap.arrivals())}) == 1 for tap in watching)
    assert len(a.saw("CALL_CLOSED")) == closed_a  # nobody noticed a hang-up
    hang_up(b, a)  # a BYE from the called phone reaches the heir through the recovered dialog
    duration = time.monotonic() - answered
    assert hears_last(a, TONES["1002"]) and hears_last(b, TONES["1001"])
    print(
        f"\n{node.name} SIGKILL, call up: {heir.name} recovered both legs; media gap at the phones "
        f"{gaps[0] * 1000:.0f} / {gaps[1] * 1000:.0f} ms"
    )
    wait_for(lambda: not heir.esl.channels(), 15, f"no channel left on {heir.name}")

    cdrs = wait_for(
        lambda: (lambda rows: rows if len(rows) >= 2 else None)(
            [r for r in ctl.api("GET", "/tenants/acme.test/cdrs") if r["channel_uuid"] in legs]
        ),
        20,
        "a CDR for each leg of the recovered call",
    )
    assert sorted(r["channel_uuid"] for r in cdrs) == sorted(legs), cdrs  # one per leg, none from the dead node
    assert all(r["billsec"] >= int(duration) - 1 for r in cdrs), (duration, cdrs)  # the whole call, not its tail


def test_drain_keeps_the_call_up_sends_new_calls_elsewhere_and_disables_the_node_after_it(farm: Farm) -> None:
    ctl = farm.controller
    dead = next(n for n in farm.nodes.values() if nodes(ctl)[n.name]["health"] == "down")
    back_as_spare(farm, dead)
    node, other = farm.active(), farm.standby()
    a, b = farm.phone("1001"), farm.phone("1002")
    call(a, b, node)
    closed = len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))
    control = KamailioControl(farm.kamailio.ctl)
    node_set = control.domains()["acme.test"]

    out = ctl.cli("node", "drain", node.name).stdout
    drained = time.monotonic()
    assert "draining" in out
    # The node was the only active one: the spare takes its tenants instead of leaving them on no node.
    assert tenant_node(ctl) == other.name and nodes(ctl)[other.name]["spare"] is False
    wait_for(lambda: control.domains().get("acme.test") != node_set, 15, f"Kamailio routing acme.test to {other.name}")

    # New calls for the tenant go to the other node: a phone's call is answered there.
    c = farm.phone("1003")
    c.dial("3000")
    c.wait_event("CALL_ESTABLISHED", 30)
    wait_for(lambda: any(ch.get("cid_num") == "1003" for ch in other.esl.channels()), 10, "1003's call on the other")

    # The call on the drained node is still up, and it stays draining while it is.
    wait_for(lambda: f"node {node.name} is draining: " in ctl.log(), 20, "the drain loop counting its calls")
    assert nodes(ctl)[node.name]["admin_state"] == "draining"
    assert len(node.esl.channels()) == 2
    assert (len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))) == closed
    time.sleep(max(0.0, 3.0 - (time.monotonic() - drained)))  # enough audio after the drain to check
    hang_up(a, b)
    assert hears_last(a, TONES["1002"]) and hears_last(b, TONES["1001"])  # audio flowed after the drain

    wait_for(lambda: nodes(ctl)[node.name]["admin_state"] == "disabled", 20, "disabled once its call ended")
    assert node.esl.channels() == []
    c.hangup()


def test_a_hung_node_is_fenced_and_its_call_carries_on_on_the_spare(farm: Farm) -> None:
    ctl = farm.controller
    disabled = next(n for n in farm.nodes.values() if nodes(ctl)[n.name]["admin_state"] == "disabled")
    # After the drain the node is disabled: the operator puts it back as the spare (REST API).
    ctl.api("PATCH", f"/nodes/{disabled.name}", {"admin_state": "active", "spare": True})
    wait_for(lambda: nodes(ctl)[disabled.name]["health"] == "up", 30, "the spare up")
    node, heir = farm.active(), farm.standby()
    assert heir is disabled
    a, b = farm.phone("1001"), farm.phone("1002")
    call(a, b, node)
    legs = {ch["uuid"] for ch in node.esl.channels()}
    before = len(farm.failovers())
    watching = taps(a, b)
    time.sleep(1)
    assert node.process is not None
    stopped = time.monotonic()
    os.kill(node.process.pid, signal.SIGSTOP)  # a hang: heartbeats stop, its sockets stay open
    try:
        row = wait_failover(farm, before + 1)
        decided = time.monotonic() - stopped
    finally:
        if node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGCONT)
    assert "missed heartbeats" in row["reason"] and "Kamailio's OPTIONS pings fail too" in row["reason"]
    assert row["takeover"].startswith("address taken: fenced"), row["takeover"]
    assert node.process.wait(5) == -signal.SIGKILL  # fenced: it can never answer for that address again
    assert row["calls_recovered"] == 2, row
    wait_for(lambda: legs <= {ch["uuid"] for ch in heir.esl.channels()}, 10, f"both legs up on {heir.name}")
    time.sleep(3)
    gaps = [media_gap(tap, stopped) for tap in watching]
    hang_up(a, b)
    assert hears_last(a, TONES["1002"]) and hears_last(b, TONES["1001"])
    print(
        f"\n{node.name} SIGSTOP: failover done {decided:.2f} s later, fenced, both legs recovered on {heir.name}; "
        f"media gap {gaps[0] * 1000:.0f} / {gaps[1] * 1000:.0f} ms"
    )
    back_as_spare(farm, node)
    assert tenant_node(ctl) == heir.name


def test_a_room_on_a_killed_node_carries_on_with_its_members_without_calling_them_back(farm: Farm) -> None:
    ctl = farm.controller
    node, heir = farm.active(), farm.standby()
    a, c = farm.phone("1001"), farm.phone("1003")
    incoming = len(a.saw("CALL_INCOMING")), len(c.saw("CALL_INCOMING"))
    for p in (a, c):
        established = len(p.saw("CALL_ESTABLISHED"))
        p.dial("3000")
        p.wait_event("CALL_ESTABLISHED", 30, after=established)
    members = lambda: ctl.api("GET", "/tenants/acme.test/conferences/3000/members")  # noqa: E731
    wait_for(lambda: len(members()) == 2, 15, "both phones members of room 3000")
    before = len(farm.failovers())
    time.sleep(1)

    node.kill()
    row = wait_failover(farm, before + 1)
    assert row["calls_recovered"] == 2 and row["rooms_recreated"] == 1 and row["legs_recovered"] == 2, row
    # The recovered legs rejoined the room on the heir by themselves: nobody was called back.
    listed = heir.esl.api("conference 3000-acme.test list")
    assert len([line for line in listed.splitlines() if ";" in line]) == 2, listed
    wait_for(lambda: [m["node"] for m in members()] == [heir.name] * 2, 15, "both members on the heir")
    assert (len(a.saw("CALL_INCOMING")), len(c.saw("CALL_INCOMING"))) == incoming
    time.sleep(2)
    for p in (a, c):
        closed = len(p.saw("CALL_CLOSED"))
        p.hangup()
        p.wait_event("CALL_CLOSED", 15, after=closed)
    assert hears_last(a, TONES["1003"]) and hears_last(c, TONES["1001"])  # the room mixes on the heir
