"""Calls from the browser: the console's web phone in real headless Chromium, through Kamailio's WebSocket,
to a real FreeSWITCH configured by fsfarm, and baresip phones.

Chromium's fake microphone plays a known tone (a WAV made with sox); baresip's recording shows the phone heard
it, and the browser's ``getStats()`` shows the phone's audio arriving. DTMF from the page's keypad are RFC 2833
events in the browser's media (``RTCDTMFSender``), taken by an IVR script over outbound ESL.

Phones behind NAT: when the machine lets the test build network namespaces (root, ``ip netns``, iptables),
the node and Kamailio also sit on the public side of a ``nat_lab.NatLab`` and a baresip phone runs behind its
masquerading router, registering and calling through Kamailio.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from farm_harness import Controller, FreeSwitch, Kamailio, Phone, hears, stop_together, wait_for
from nat_lab import NatLab, NatUnavailable

from controller.kamailio.control import KamailioControl
from tests.console_browser import chromium

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long", "1004": "pw-1004-long", "2004": "pw-2004-long"}
NATTED_TONE = 1200  # baresip 1002's sine, behind the NAT
PHONE_TONE = 440  # baresip 1001's sine
BROWSER_TONE = 900  # Chromium's fake microphone
IVR_EXTENSION = "5000"

SCRIPT = """
from pathlib import Path

from esl_workers.ivr import ivr

DONE = Path(__file__).parent / "keys"
DONE.mkdir(exist_ok=True)


@ivr("keys")
def keys(session):
    session.answer()
    got = session.play_and_get_digits("tone_stream://%(200,100,600)", min_digits=3, max_digits=3, tries=1,
                                      timeout_ms=30000, regex="[0-9*#]+", var="fsfarm_keys")
    (DONE / session.uuid).write_text(got)
"""


@pytest.fixture(scope="module")
def nat() -> Iterator[NatLab | None]:
    """The NAT lab, or None where this machine cannot build one (the NAT test then says why)."""
    try:
        lab: NatLab | None = NatLab().up()
    except NatUnavailable as exc:
        lab = None
        print(f"\nno NAT lab: {exc}")
    try:
        yield lab
    finally:
        if lab:
            lab.down()


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path, nat: NatLab | None) -> Iterator[Controller]:
    """``fsfarm up`` reloading the module's Kamailio, which the browsers and phones reach the node through."""
    proxies = "127.0.0.1" + (f",{nat.kamailio_ip}" if nat else "")
    env = {"FSFARM_KAMAILIO_CTL": str(workdir / "kamailio" / "ctl"), "FSFARM_SIP_PROXIES": proxies}
    ctl = Controller(farm_dsn, workdir, env=env).start()
    yield ctl
    ctl.stop()


@dataclass
class Farm:
    controller: Controller
    fs: FreeSwitch
    kamailio: Kamailio
    phone: Phone
    browser: Any
    keys: Path
    workdir: Path
    nat: NatLab | None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.kamailio.ws_port}"


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path, nat: NatLab | None) -> Iterator[Farm]:
    (controller.ivr_scripts / "keys.py").write_text(SCRIPT)
    tone = workdir / "browser-tone.wav"
    subprocess.run(
        ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(tone), "synth", "60", "sine", str(BROWSER_TONE)],
        check=True,
    )
    # With a NAT lab the farm is on its public side (NATed phones reach only that); loopback stays for the rest.
    kamailio = Kamailio(controller, workdir / "kamailio", ws=True, also_on=nat.kamailio_ip if nat else "")
    fs = FreeSwitch(controller, "fs1", workdir / "fs1", sip_host=nat.node_ip if nat else None)
    ws_port = str(fs.sip_port + 2)  # beside SIP (port+1 is free too: free_udp_pair)
    controller.cli(*fs.node_add_args("--ws-port", ws_port))
    for domain in ("acme.test", "beta.test"):
        controller.cli("tenant", "add", domain)
    for ext, domain in (("1001", "acme.test"), ("1002", "acme.test"), ("1004", "acme.test"), ("2004", "beta.test")):
        controller.cli("user", "add", "-t", domain, ext, "--password", PASSWORDS[ext])
    controller.cli("ivr", "add", "-t", "acme.test", "keys", "--extension", IVR_EXTENSION)
    fs.start()
    phone = None
    try:
        control = KamailioControl(kamailio.ctl)
        wait_for(lambda: "acme.test" in control.domains(), 30, "Kamailio to route acme.test (fsfarm up reloads it)")
        uri = f"sip:{fs.sip_address}"
        wait_for(lambda: control.destinations().get(uri, "").startswith("A"), 30, "Kamailio's pings to fs1")
        phone = Phone(workdir, "1001", "acme.test", PASSWORDS["1001"], kamailio.address, PHONE_TONE)
        phone.wait_registered()
        args = (
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={tone}",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
        )
        with chromium(args) as browser:
            yield Farm(controller, fs, kamailio, phone, browser, controller.ivr_scripts / "keys", workdir, nat)
    finally:
        stop_together(*([phone] if phone else []), fs, kamailio)


def open_phone(farm: Farm, login: str) -> Any:
    """A new browser page with the web phone registered as ``login``."""
    page = farm.browser.new_context().new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{farm.controller.url}/console/phone?ws={farm.ws_url}&user={login}")
    page.fill("#phone-password", PASSWORDS[login.split("@")[0]])
    page.click("#phone-register")
    try:
        page.wait_for_selector("#phone-status[data-state=registered]", timeout=20_000)
    except Exception as exc:
        raise AssertionError(f"not registered: {page.text_content('#phone-status')}; console: {console[-10:]}") from exc
    return page


def inbound_audio(page: Any) -> dict[str, float]:
    return dict(page.evaluate("window.fsfarmPhone.inboundAudio()"))


def wait_for_audio(page: Any) -> None:
    wait_for(lambda: inbound_audio(page)["energy"] > 0, 20, "the phone's audio in the browser (getStats)")


def call_state(page: Any) -> str:
    return str(page.get_attribute("#call-state", "data-state"))


def hang_up(farm: Farm, page: Any) -> None:
    closed = len(farm.phone.saw("CALL_CLOSED"))
    page.click("#phone-hangup")
    page.wait_for_selector("#call-state[data-state=terminated]", timeout=15_000)
    farm.phone.wait_event("CALL_CLOSED", after=closed)


def test_the_browser_calls_a_phone_and_both_hear_each_other(farm: Farm) -> None:
    page = open_phone(farm, "1004@acme.test")
    try:
        answered = len(farm.phone.saw("CALL_ESTABLISHED"))
        page.fill("#phone-target", "1001")
        clicked = time.monotonic()
        page.click("#phone-call")
        wait_for_audio(page)
        setup = time.monotonic() - clicked
        print(f"\nweb phone: call set-up from click to audio in the browser {setup:.2f} s")
        farm.phone.wait_event("CALL_ESTABLISHED", after=answered)
        assert call_state(page) == "established"
        time.sleep(3)  # let the tone reach the phone's recording
        assert inbound_audio(page)["packets"] > 50
        hang_up(farm, page)
        assert hears(farm.phone, BROWSER_TONE) and not hears(farm.phone, PHONE_TONE, threshold=-30)
    finally:
        page.context.close()


def test_a_phone_calls_the_browser_which_answers_and_hears_it(farm: Farm) -> None:
    page = open_phone(farm, "1004@acme.test")
    try:
        farm.phone.dial("1004")
        page.wait_for_selector("#call-state[data-state=ringing]", timeout=20_000)
        page.click("#phone-answer")
        wait_for_audio(page)
        assert call_state(page) == "established"
        time.sleep(3)
        hang_up(farm, page)
        assert hears(farm.phone, BROWSER_TONE)
    finally:
        page.context.close()


def test_keys_pressed_in_the_browser_reach_an_ivr(farm: Farm) -> None:
    page = open_phone(farm, "1004@acme.test")
    try:
        page.fill("#phone-target", IVR_EXTENSION)
        page.click("#phone-call")
        page.wait_for_selector("#call-state[data-state=established]", timeout=20_000)
        wait_for(
            lambda: any(r.get("application") == "play_and_get_digits" for r in farm.fs.esl.channels()),
            20,
            "the IVR to prompt for keys",
        )
        for digit in "427":
            page.click(f"#phone-keypad button[data-digit='{digit}']")
            time.sleep(0.3)  # RFC 2833 events of one key must end before the next
        got = wait_for(lambda: next((p.read_text() for p in farm.keys.glob("*")), None), 20, "the IVR's keys")
        assert got == "427"
        page.wait_for_selector("#call-state[data-state=terminated]", timeout=15_000)  # the script hangs up
    finally:
        page.context.close()


def test_a_browser_user_of_beta_cannot_reach_acmes_extensions(farm: Farm) -> None:
    page = open_phone(farm, "2004@beta.test")
    try:
        incoming = len(farm.phone.saw("CALL_INCOMING"))
        for target in ("1001", "1001@acme.test"):
            page.fill("#phone-target", target)
            page.click("#phone-call")
            wait_for(lambda: call_state(page) in ("terminated", "rejected"), 20, f"the call to {target} to end")
        assert len(farm.phone.saw("CALL_INCOMING")) == incoming, "acme's phone rang for a beta user"
    finally:
        page.context.close()


def test_the_node_serves_sip_over_websocket_itself(farm: Farm) -> None:
    status = farm.fs.esl.api("sofia status profile internal")
    assert f"{farm.fs.sip_host}:{farm.fs.sip_port + 2};transport=ws" in status, status


def talk(caller: Phone, callee: Phone) -> None:
    """``caller`` dials ``callee``, both are in the call for 3 s, ``caller`` hangs up; both heard the other."""
    before = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(callee.user)
    caller.wait_event("CALL_ESTABLISHED", after=before[0])
    callee.wait_event("CALL_ESTABLISHED", after=before[1])
    time.sleep(3)
    closed = len(caller.saw("CALL_CLOSED")), len(callee.saw("CALL_CLOSED"))
    caller.hangup()
    caller.wait_event("CALL_CLOSED", after=closed[0])
    callee.wait_event("CALL_CLOSED", after=closed[1])
    assert hears(callee, caller.tone), f"{callee.user} did not hear {caller.user}"
    assert hears(caller, callee.tone), f"{caller.user} did not hear {callee.user}"


def test_a_phone_behind_nat_registers_through_kamailio_and_calls_both_ways_with_media(farm: Farm) -> None:
    lab = farm.nat
    if lab is None:
        missing = "this machine cannot build network namespaces (needs root, ip netns, iptables)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} but CI=true: run .ci/install --test as root")
        pytest.skip(missing)
    natted = Phone(
        farm.workdir,
        "1002",
        "acme.test",
        PASSWORDS["1002"],
        f"{lab.kamailio_ip}:{farm.kamailio.port}",
        NATTED_TONE,
        nat=lab,
    )
    try:
        natted.wait_registered()
        contact = farm.fs.esl.api("sofia_contact 1002@acme.test")
        # The node keeps the phone's private Contact, and reaches it through Kamailio at the router's public address.
        assert lab.phone_ip in contact and f"received%3Dsip%3A{lab.router_ip}" in contact, contact
        talk(natted, farm.phone)  # out from behind the NAT
        talk(farm.phone, natted)  # in, through the pinhole its registration keeps open
    finally:
        natted.stop()
