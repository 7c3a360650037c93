"""Calls to phones come back through Kamailio, the address they registered with (RFC 3327 Path).

One real FreeSWITCH node behind a real Kamailio (``fsfarm kamailio config``); baresip phones register
through Kamailio, which adds a Path. The node stores it with the contact (``fs_path``) and sends the
INVITE for a phone to Kamailio, which relays it from its own address and stays in the dialog.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest
from farm_harness import Controller, FreeSwitch, Kamailio, Phone, hears, wait_for

from controller.kamailio.control import KamailioControl

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
TONES = {"1001": 440, "1002": 1200}


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    """``fsfarm up`` reloading the module's Kamailio, which the node trusts as its SIP proxy."""
    env = {"FSFARM_KAMAILIO_CTL": str(workdir / "kamailio" / "ctl"), "FSFARM_SIP_PROXIES": "127.0.0.1"}
    ctl = Controller(farm_dsn, workdir, env=env).start()
    yield ctl
    ctl.stop()


@dataclass
class Farm:
    controller: Controller
    kamailio: Kamailio
    fs1: FreeSwitch
    workdir: Path
    phones: dict[str, Phone] = field(default_factory=dict)

    def phone(self, user: str) -> Phone:
        """A phone for ``user@acme.test`` registered through Kamailio, tracing its SIP (kept for the module)."""
        if user not in self.phones:
            p = Phone(
                self.workdir, user, "acme.test", PASSWORDS[user], self.kamailio.address, TONES[user], sip_trace=True
            )
            p.wait_registered()
            self.phones[user] = p
        return self.phones[user]


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
    kamailio = Kamailio(controller, workdir / "kamailio")
    # Its own address (harness): on Kamailio's 127.0.0.1 the node's ACL would trust every proxied call.
    fs1 = FreeSwitch(controller, "fs1", workdir / "fs1")
    controller.cli(*fs1.node_add_args())
    controller.cli("tenant", "add", "acme.test")
    for ext in PASSWORDS:
        controller.cli("user", "add", "-t", "acme.test", ext, "--password", PASSWORDS[ext])
    f = Farm(controller, kamailio, fs1, workdir)
    try:
        fs1.start()
        control = KamailioControl(kamailio.ctl)
        wait_for(lambda: "acme.test" in control.domains(), 30, "Kamailio to route acme.test (fsfarm up reloads it)")
        node_uri = f"sip:{fs1.sip_address}"
        wait_for(
            lambda: control.destinations().get(node_uri, "").startswith("A"), 30, "Kamailio's pings to fs1 answered"
        )
        yield f
    finally:
        for p in f.phones.values():  # killed: a clean quit waits for un-REGISTERs nobody needs here
            p.process.kill()
            p.process.wait()
            p.ctrl.close()
        fs1.stop()
        kamailio.stop()


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
    contact = unquote(stored_contact(farm.fs1, "1002"))
    # The node keeps the Path Kamailio added: Kamailio's address, and where the phone registered from.
    assert "fs_path=" in contact and farm.kamailio.address in contact and b.address in contact, contact

    a.dial("1002")
    a.wait_event("CALL_ESTABLISHED", 30)
    b.wait_event("CALL_ESTABLISHED", 30)
    wait_for(lambda: len(farm.fs1.esl.channels()) == 2, 10, "the call's two legs on fs1")
    # The INVITE came to the phone from Kamailio's address, not from the node's.
    assert traced(b, "INVITE") == [(farm.kamailio.address, b.address)]
    time.sleep(2)  # let some audio flow before checking what each side decoded

    b.hangup()  # the called phone hangs up: its BYE goes to Kamailio (Record-Route), which passes it on
    a.wait_event("CALL_CLOSED", 15)
    wait_for(lambda: farm.fs1.esl.channels() == [], 10, "both legs gone from fs1")
    assert traced(b, "BYE") == [(b.address, farm.kamailio.address)]
    assert traced(a, "BYE") == [(farm.kamailio.address, a.address)]  # the node's BYE to the caller, relayed
    assert hears(a, TONES["1002"]) and hears(b, TONES["1001"])


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
    wait_for(lambda: farm.fs1.esl.channels() == [], 10, "both legs gone from fs1")
    assert len(a.saw("CALL_CLOSED")) == closed_a + 1
