"""Failover on real FreeSWITCH nodes behind a real Kamailio: a SIGKILLed node's tenant moves to the spare.

fs1 (active) and spare1 (``--spare``) run from bootstrap files only; Kamailio is rendered by
``fsfarm kamailio config`` and ``fsfarm up`` reloads it (``FSFARM_KAMAILIO_CTL``). Phones register
through Kamailio, so after the crash their next REGISTER reaches the spare.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from farm_harness import Controller, FreeSwitch, Kamailio, Phone, hears, level_db, wait_for

from controller.kamailio.control import KamailioControl

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long", "1003": "pw-1003-long"}
TONES = {"1001": 440, "1002": 1200, "1003": 700}
REGINT = 10  # seconds: short, so phones find the spare soon after the crash


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    """``fsfarm up`` reloading the module's Kamailio (its ctl socket path is known before it starts)."""
    env = {"FSFARM_KAMAILIO_CTL": str(workdir / "kamailio" / "ctl"), "FSFARM_SIP_PROXIES": "127.0.0.1"}
    ctl = Controller(farm_dsn, workdir, env=env).start()
    yield ctl
    ctl.stop()


@dataclass
class Farm:
    controller: Controller
    kamailio: Kamailio
    fs1: FreeSwitch
    spare: FreeSwitch
    workdir: Path
    phones: dict[str, Phone] = field(default_factory=dict)

    def phone(self, user: str) -> Phone:
        """A phone for ``user@acme.test`` registered through Kamailio (kept for the module)."""
        if user not in self.phones:
            p = Phone(
                self.workdir, user, "acme.test", PASSWORDS[user], self.kamailio.address, TONES[user], regint=REGINT
            )
            p.wait_registered()
            self.phones[user] = p
        return self.phones[user]


def tenant_node(controller: Controller, domain: str = "acme.test") -> str | None:
    return {t["tenant"]: t["node"] for t in controller.api("GET", "/placement")["tenants"]}.get(domain)


def nodes(controller: Controller) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in controller.api("GET", "/nodes")}


def hears_at_end(phone: Phone, tone: float, seconds: float = 1.5) -> bool:
    """Did the last ``seconds`` of ``phone``'s latest call still carry ``tone`` from the far end?"""
    pcm, rate = phone.heard(skip=0)
    return level_db(pcm[-int(rate * seconds) :], rate, tone) > -40.0


def registered_on(node: FreeSwitch, user: str) -> bool:
    """Does the node itself hold a registration for ``user@acme.test``?"""
    try:
        body = node.esl.api("sofia status profile internal reg")
    except OSError:
        return False
    return f"{user}@acme.test" in body


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
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
    f = Farm(controller, kamailio, fs1, spare, workdir)
    try:
        for node in (fs1, spare):  # both boot at once, then both must be ready
            node.start(wait=False)
        fs1.wait_ready()
        spare.wait_ready()
        wait_for(lambda: all(n["health"] == "up" for n in controller.api("GET", "/nodes")), 30, "both nodes up")
        control = KamailioControl(kamailio.ctl)
        wait_for(lambda: "acme.test" in control.domains(), 30, "Kamailio to route acme.test (fsfarm up reloads it)")
        yield f
    finally:
        for p in f.phones.values():  # killed: a clean quit waits for un-REGISTERs nobody needs here
            p.process.kill()
            p.process.wait()
            p.ctrl.close()
        fs1.stop()
        spare.stop()
        kamailio.stop()


def call(caller: Phone, callee: Phone, node: FreeSwitch, timeout: float = 30) -> None:
    """``caller`` dials ``callee`` through Kamailio; both ends up and the channels on ``node``."""
    before_a, before_b = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(callee.user)
    caller.wait_event("CALL_ESTABLISHED", timeout, after=before_a)
    callee.wait_event("CALL_ESTABLISHED", timeout, after=before_b)
    wait_for(lambda: len(node.esl.channels()) >= 2, 10, f"the call's two legs on {node.name}")


def hang_up(caller: Phone, callee: Phone) -> None:
    before = len(callee.saw("CALL_CLOSED"))
    caller.hangup()
    callee.wait_event("CALL_CLOSED", 15, after=before)


def test_killed_node_tenant_moves_to_the_spare_and_new_calls_complete_there(farm: Farm) -> None:
    ctl = farm.controller
    assert tenant_node(ctl) == "fs1"
    a, b = farm.phone("1001"), farm.phone("1002")
    assert registered_on(farm.fs1, "1002") and not registered_on(farm.spare, "1002")

    call(a, b, farm.fs1)
    time.sleep(2)  # let some audio flow before checking what each side decoded
    hang_up(a, b)
    assert hears(a, TONES["1002"]) and hears(b, TONES["1001"])

    control = KamailioControl(farm.kamailio.ctl)
    fs1_set = control.domains()["acme.test"]
    killed = time.monotonic()
    farm.fs1.kill()
    wait_for(lambda: tenant_node(ctl) == "spare1", 30, "acme.test placed on spare1 after fs1's crash")
    moved = time.monotonic() - killed
    wait_for(lambda: control.domains().get("acme.test") != fs1_set, 10, "Kamailio routing acme.test elsewhere")
    # Generous: a refresh that fell in the dead window is retried after baresip's own 30-60 s, not regint.
    wait_for(
        lambda: registered_on(farm.spare, "1001") and registered_on(farm.spare, "1002"),
        REGINT + 90,
        "both phones registered again, on spare1",
    )
    reregistered = time.monotonic() - killed
    call(a, b, farm.spare)
    answered = time.monotonic() - killed
    time.sleep(2)
    hang_up(a, b)
    assert hears(a, TONES["1002"]) and hears(b, TONES["1001"])
    print(
        f"\nfs1 SIGKILL -> acme.test on spare1 {moved:.2f} s, both phones registered on spare1 "
        f"{reregistered:.2f} s, call answered on spare1 {answered:.2f} s (regint {REGINT} s)"
    )

    rows: list[dict[str, Any]] = ctl.cli_json("failover", "list")
    assert len(rows) == 1
    row = rows[0]
    assert row["state"] == "done" and row["tenants_moved"] == 1
    assert row["reason"].startswith("the ESL watcher declared it down")
    assert row["kamailio"].startswith("reloaded")
    listed = ctl.cli("failover", "list").stdout
    assert "the ESL watcher declared it down" in listed


def test_drain_keeps_the_call_up_sends_new_calls_elsewhere_and_disables_the_node_after_it(farm: Farm) -> None:
    ctl = farm.controller
    # After the failover spare1 hosts acme.test; fs1 comes back and rejoins as the spare.
    farm.fs1.start()
    wait_for(lambda: nodes(ctl)["fs1"]["health"] == "up" and nodes(ctl)["fs1"]["spare"], 60, "fs1 back as a spare")
    assert tenant_node(ctl) == "spare1"
    a, b = farm.phone("1001"), farm.phone("1002")
    call(a, b, farm.spare)
    closed = len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))
    control = KamailioControl(farm.kamailio.ctl)
    spare_set = control.domains()["acme.test"]

    out = ctl.cli("node", "drain", "spare1").stdout
    drained = time.monotonic()
    assert "draining" in out
    # spare1 was the only active node: the spare (fs1) takes its tenants instead of leaving them on no node.
    assert tenant_node(ctl) == "fs1" and nodes(ctl)["fs1"]["spare"] is False
    wait_for(lambda: control.domains().get("acme.test") != spare_set, 15, "Kamailio routing acme.test to fs1")

    # New calls for the tenant go to fs1: a phone registering now lands there, and its call is answered there.
    c = farm.phone("1003")
    assert registered_on(farm.fs1, "1003") and not registered_on(farm.spare, "1003")
    c.dial("3000")
    c.wait_event("CALL_ESTABLISHED", 30)
    wait_for(lambda: any(ch.get("cid_num") == "1003" for ch in farm.fs1.esl.channels()), 10, "1003's call on fs1")

    # The call on spare1 is still up, and spare1 stays draining while it is.
    wait_for(lambda: "node spare1 is draining: " in ctl.log(), 20, "the drain loop counting spare1's calls")
    assert nodes(ctl)["spare1"]["admin_state"] == "draining"
    assert len(farm.spare.esl.channels()) == 2
    assert (len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))) == closed
    time.sleep(max(0.0, 3.0 - (time.monotonic() - drained)))  # enough audio after the drain to check
    hang_up(a, b)
    assert hears_at_end(a, TONES["1002"]) and hears_at_end(b, TONES["1001"])  # audio flowed after the drain

    wait_for(lambda: nodes(ctl)["spare1"]["admin_state"] == "disabled", 20, "spare1 disabled once its call ended")
    assert farm.spare.esl.channels() == []
    c.hangup()


def test_hung_node_confirmed_by_kamailio_fails_over_and_rejoins_as_the_spare(farm: Farm) -> None:
    ctl = farm.controller
    # After the drain spare1 is disabled: the operator puts it back as the spare (REST API).
    ctl.api("PATCH", "/nodes/spare1", {"admin_state": "active", "spare": True})
    wait_for(lambda: nodes(ctl)["spare1"]["health"] == "up", 30, "spare1 up")
    assert tenant_node(ctl) == "fs1"
    c = farm.phone("1003")
    assert farm.fs1.process is not None
    before = len(ctl.cli_json("failover", "list"))
    control = KamailioControl(farm.kamailio.ctl)
    fs1_set = control.domains()["acme.test"]
    os.kill(farm.fs1.process.pid, signal.SIGSTOP)  # a hang: heartbeats stop, the ESL socket stays open
    try:
        wait_for(lambda: tenant_node(ctl) == "spare1", 60, "acme.test moved to spare1 off the hung fs1")
        wait_for(lambda: control.domains().get("acme.test") != fs1_set, 15, "Kamailio routing acme.test elsewhere")
        established = len(c.saw("CALL_ESTABLISHED"))
        c.dial("3000")
        c.wait_event("CALL_ESTABLISHED", 30, after=established)
        wait_for(
            lambda: any(ch.get("cid_num") == "1003" for ch in farm.spare.esl.channels()), 10, "1003's call on spare1"
        )
        c.hangup()
    finally:
        os.kill(farm.fs1.process.pid, signal.SIGCONT)
    rows = ctl.cli_json("failover", "list")
    assert len(rows) == before + 1
    assert "missed heartbeats" in rows[0]["reason"] and "Kamailio's OPTIONS pings fail too" in rows[0]["reason"]
    # Back from the hang, fs1 holds nothing and becomes the spare: nothing moves back.
    wait_for(lambda: nodes(ctl)["fs1"]["health"] == "up" and nodes(ctl)["fs1"]["spare"], 60, "fs1 back as the spare")
    assert tenant_node(ctl) == "spare1"
