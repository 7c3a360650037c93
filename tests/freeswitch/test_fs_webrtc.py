"""Calls from the browser: the console's web phone in real headless Chromium, through Kamailio's WebSocket,
to a real FreeSWITCH configured by fsfarm, and baresip phones.

Chromium's fake microphone plays a known tone (a WAV made with sox); baresip's recording shows the phone heard
it, and the browser's ``getStats()`` shows the phone's audio arriving. DTMF from the page's keypad are RFC 2833
events in the browser's media (``RTCDTMFSender``), taken by an IVR script over outbound ESL.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from farm_harness import Controller, FreeSwitch, Kamailio, Phone, hears, stop_together, wait_for

from controller.kamailio.control import KamailioControl
from tests.console_browser import chromium

PASSWORDS = {"1001": "pw-1001-long", "1004": "pw-1004-long", "2004": "pw-2004-long"}
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
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    """``fsfarm up`` reloading the module's Kamailio, which the browsers and phones reach the node through."""
    env = {"FSFARM_KAMAILIO_CTL": str(workdir / "kamailio" / "ctl"), "FSFARM_SIP_PROXIES": "127.0.0.1"}
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

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.kamailio.ws_port}"


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
    (controller.ivr_scripts / "keys.py").write_text(SCRIPT)
    tone = workdir / "browser-tone.wav"
    subprocess.run(
        ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(tone), "synth", "60", "sine", str(BROWSER_TONE)],
        check=True,
    )
    kamailio = Kamailio(controller, workdir / "kamailio", ws=True)
    fs = FreeSwitch(controller, "fs1", workdir / "fs1")
    ws_port = str(fs.sip_port + 2)  # beside SIP (port+1 is free too: free_udp_pair)
    controller.cli(*fs.node_add_args("--ws-port", ws_port))
    for domain in ("acme.test", "beta.test"):
        controller.cli("tenant", "add", domain)
    for ext, domain in (("1001", "acme.test"), ("1004", "acme.test"), ("2004", "beta.test")):
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
            yield Farm(controller, fs, kamailio, phone, browser, controller.ivr_scripts / "keys")
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
