"""An IVR over outbound ESL on a real FreeSWITCH: 1001's phone dials it, presses keys, reaches 1002.

The farm is the operator's: ``fsfarm up`` serving the scripts in ``FSFARM_IVR_SCRIPTS``, the IVR
registered with ``fsfarm ivr add``, one node from ``fsfarm freeswitch bootstrap``. The caller's keys
are RFC 2833 events sent by baresip (``Phone.send_digit``), never injected on the node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from farm_harness import Controller, FreeSwitch, Phone, hears, stop_together, wait_for

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
TONES = {"1001": 440, "1002": 1200}
IVR_EXTENSION = "5000"
STAYS_UP = 4.0  # seconds a transferred call must outlive its script

# The script leaves a marker when it returns, so the test knows the call outlived the script.
SCRIPT = """
from pathlib import Path

from esl_workers.ivr import ivr

DONE = Path(__file__).parent / "returned"
DONE.mkdir(exist_ok=True)


@ivr("menu")
def menu(session):
    keys = []
    session.on_dtmf(keys.append)
    try:
        session.answer()
        choice = session.play_and_get_digits("tone_stream://%(200,100,600)", max_digits=1, tries=1,
                                             timeout_ms=20000, regex="[12]", var="fsfarm_menu_choice")
        session.set_var("fsfarm_ivr_digits", choice)
        if choice == "1":
            session.transfer("1002")
            return
        if choice == "2":
            session.bridge("user/1002@" + session.tenant)
            session.set_var("fsfarm_ivr_after_bridge", "yes")
            (DONE / ("bridged-" + session.uuid)).write_text(session.get_var("fsfarm_ivr_after_bridge"))
    finally:
        (DONE / session.uuid).write_text("".join(keys))
"""


@dataclass
class Farm:
    controller: Controller
    fs: FreeSwitch
    caller: Phone
    callee: Phone
    returned: Path


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
    (controller.ivr_scripts / "menu.py").write_text(SCRIPT)
    fs = FreeSwitch(controller, "fs1", workdir / "fs1")
    # The README's order: node, tenant, users and the IVR first, FreeSWITCH started last.
    controller.cli(*fs.node_add_args())
    controller.cli("tenant", "add", "acme.test")
    for ext in ("1001", "1002"):
        controller.cli("user", "add", "-t", "acme.test", ext, "--password", PASSWORDS[ext])
    controller.cli("ivr", "add", "-t", "acme.test", "menu", "--extension", IVR_EXTENSION)
    fs.start()
    phones = []
    try:
        for ext in ("1001", "1002"):
            phone = Phone(workdir, ext, "acme.test", PASSWORDS[ext], fs.sip_address, TONES[ext])
            phones.append(phone)
            phone.wait_registered()
        yield Farm(controller, fs, phones[0], phones[1], controller.ivr_scripts / "returned")
    finally:
        stop_together(*phones, fs)


def live_calls(farm: Farm) -> list[dict[str, Any]]:
    return list(farm.controller.api("GET", "/tenants/acme.test/calls"))


def cdrs(farm: Farm) -> list[dict[str, Any]]:
    return list(farm.controller.api("GET", "/tenants/acme.test/cdrs"))


def ivr_leg(farm: Farm) -> str:
    """The uuid of 1001's channel once the script is waiting for a key."""

    def waiting() -> str | None:
        rows = farm.fs.esl.channels()
        return next(
            (
                r["uuid"]
                for r in rows
                if r.get("dest") == IVR_EXTENSION and r.get("application") == "play_and_get_digits"
            ),
            None,
        )

    return str(wait_for(waiting, 20, "the IVR to prompt for a key"))


def press(phone: Phone, digit: str, farm: Farm, uuid: str) -> None:
    """Send ``digit`` from the phone's keypad (RFC 2833) and wait until the script has taken it."""
    phone.send_digit(digit)
    wait_for(
        lambda: farm.fs.esl.api(f"uuid_getvar {uuid} fsfarm_ivr_digits").strip() not in ("", "_undef_"),
        15,
        f"the script to get key {digit}",
    )


def hang_up_and_check_gone(farm: Farm, phone: Phone, closed_before: int) -> None:
    phone.hangup()
    farm.caller.wait_event("CALL_CLOSED", after=closed_before)
    wait_for(lambda: not farm.fs.esl.channels(), 10, "no channel left on the node")
    wait_for(lambda: not live_calls(farm), 10, "the API to list no live call")


def cdr_variables(row: dict[str, Any]) -> dict[str, str]:
    variables = row.get("variables") or {}
    return json.loads(variables) if isinstance(variables, str) else dict(variables)


def test_transfer_hands_the_call_to_1002_and_it_outlives_the_script(farm: Farm) -> None:
    caller, callee = farm.caller, farm.callee
    closed = len(caller.saw("CALL_CLOSED"))
    answered = len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(IVR_EXTENSION)
    uuid = ivr_leg(farm)
    press(caller, "1", farm, uuid)
    callee.wait_event("CALL_ESTABLISHED", after=answered)
    marker = wait_for(lambda: (farm.returned / uuid).exists() and farm.returned / uuid, 15, "the script to return")
    assert marker.read_text() == "1"  # the key the phone sent is the key the script saw
    time.sleep(STAYS_UP)  # the bug: the server hung up 20 ms after the transfer
    assert len(caller.saw("CALL_CLOSED")) == closed
    rows = farm.fs.esl.channels()
    assert {r["uuid"] for r in rows} >= {uuid} and len(rows) == 2, rows
    assert farm.fs.esl.api("show calls count").strip().startswith("1 total")  # 1001's leg bridged to 1002's
    assert len(live_calls(farm)) == 2

    hang_up_and_check_gone(farm, caller, closed)
    assert hears(caller, TONES["1002"]) and hears(callee, TONES["1001"])
    legs = wait_for(
        lambda: (lambda r: r if len(r) == 2 else None)(
            [
                c
                for c in cdrs(farm)
                if c.get("call_uuid") == uuid or c.get("channel_uuid") == uuid or c.get("other_leg_uuid") == uuid
            ]
        ),
        15,
        "a CDR for each leg",
    )
    a_leg = next(c for c in legs if c["channel_uuid"] == uuid)
    assert cdr_variables(a_leg)["fsfarm_ivr_digits"] == "1"


def test_bridge_inside_the_script_connects_1002_and_returns_when_it_ends(farm: Farm) -> None:
    caller, callee = farm.caller, farm.callee
    closed = len(caller.saw("CALL_CLOSED"))
    answered = len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(IVR_EXTENSION)
    uuid = ivr_leg(farm)
    press(caller, "2", farm, uuid)
    callee.wait_event("CALL_ESTABLISHED", after=answered)
    time.sleep(STAYS_UP)  # talk for a while: audio both ways is checked on the recordings
    assert not (farm.returned / uuid).exists()  # the script is still inside bridge()
    assert farm.fs.esl.api("show calls count").strip().startswith("1 total")

    callee.hangup()  # the bridge ends: the script goes on after bridge() and then returns
    wait_for(lambda: (farm.returned / uuid).exists(), 15, "the script to return after the bridge")
    assert (farm.returned / f"bridged-{uuid}").read_text() == "yes"
    assert (farm.returned / uuid).read_text() == "2"
    caller.wait_event("CALL_CLOSED", after=closed)  # the script's return hangs the caller up
    wait_for(lambda: not farm.fs.esl.channels(), 10, "no channel left on the node")
    wait_for(lambda: not live_calls(farm), 10, "the API to list no live call")
    assert hears(caller, TONES["1002"]) and hears(callee, TONES["1001"])

    legs = wait_for(
        lambda: (lambda r: r if len(r) >= 2 else None)(
            [c for c in cdrs(farm) if c["channel_uuid"] == uuid or c.get("other_leg_uuid") == uuid]
        ),
        15,
        "a CDR for each leg",
    )
    assert len(legs) == 2 and len({c["channel_uuid"] for c in legs}) == 2  # once per leg
    a_leg = next(c for c in legs if c["channel_uuid"] == uuid)
    b_leg = next(c for c in legs if c["channel_uuid"] != uuid)
    assert b_leg["other_leg_uuid"] == uuid and b_leg["caller_number"] == "1001"
    assert cdr_variables(a_leg)["fsfarm_ivr_digits"] == "2"


def test_operator_transfer_takes_the_call_out_of_a_running_script(farm: Farm) -> None:
    caller, callee = farm.caller, farm.callee
    closed = len(caller.saw("CALL_CLOSED"))
    answered = len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(IVR_EXTENSION)
    uuid = ivr_leg(farm)
    # uuid_transfer from the API while the script waits for a key: the socket app ends under it.
    farm.controller.api("POST", f"/tenants/acme.test/calls/{uuid}/transfer", {"to": "1002"})
    callee.wait_event("CALL_ESTABLISHED", after=answered)
    marker = wait_for(lambda: (farm.returned / uuid).exists() and farm.returned / uuid, 15, "the script to stop")
    assert marker.read_text() == ""  # no key was pressed
    time.sleep(STAYS_UP)
    assert len(caller.saw("CALL_CLOSED")) == closed
    assert farm.fs.esl.api("show calls count").strip().startswith("1 total")
    hang_up_and_check_gone(farm, caller, closed)


def test_caller_transferred_out_of_a_bridge_leaves_the_script(farm: Farm) -> None:
    caller, callee = farm.caller, farm.callee
    closed = len(caller.saw("CALL_CLOSED"))
    answered = len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(IVR_EXTENSION)
    uuid = ivr_leg(farm)
    press(caller, "2", farm, uuid)
    callee.wait_event("CALL_ESTABLISHED", after=answered)
    # The caller leaves the script's bridge() for the dialplan: 1002's first call ends, a second rings.
    farm.controller.api("POST", f"/tenants/acme.test/calls/{uuid}/transfer", {"to": "1002"})
    callee.wait_event("CALL_ESTABLISHED", after=answered + 1)
    wait_for(lambda: (farm.returned / uuid).exists(), 15, "the script to stop")
    assert not (farm.returned / f"bridged-{uuid}").exists()  # nothing after bridge() ran
    time.sleep(STAYS_UP)
    assert len(caller.saw("CALL_CLOSED")) == closed
    assert farm.fs.esl.api("show calls count").strip().startswith("1 total")
    hang_up_and_check_gone(farm, caller, closed)
    assert hears(caller, TONES["1002"]) and hears(callee, TONES["1001"])
