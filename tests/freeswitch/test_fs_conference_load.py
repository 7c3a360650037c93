"""The load generator of ``bench/mixer.py --freeswitch`` against a real FreeSWITCH: what it relies on still holds.

Its legs come from their own 127.0.x.y addresses (no ACL trusts them), answer the node's digest challenge
as a tenant user and dial the tenant's room; the operator's ``FSFARM_SIP_CODECS`` decides what the node
accepts (here L16 at 16 kHz, which fsfarm's default list lacks, and no G.722, which it has).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from farm_harness import Controller, FreeSwitch, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench import conference_load as load
from mixer_ext.sdp import RtpMap

TENANT, USER, PASSWORD = "load.test", "1001", "load-secret-1001"
L16 = RtpMap(97, "L16", 16000)
G722 = RtpMap(9, "G722", 8000)


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    ctl = Controller(farm_dsn, workdir, env={"FSFARM_SIP_CODECS": "PCMU,L16@16000h"}).start()
    yield ctl
    ctl.stop()


@pytest.fixture(scope="module")
def node(controller: Controller, workdir: Path) -> Iterator[FreeSwitch]:
    fs = FreeSwitch(controller, "fs1", workdir / "fs1")
    # The README's order: node, tenant, user and room first, FreeSWITCH started afterwards.
    controller.cli(*fs.node_add_args())
    controller.cli("tenant", "add", TENANT)
    controller.cli("user", "add", "-t", TENANT, USER, "--password", PASSWORD)
    controller.cli("conference", "add", "-t", TENANT, "3100", "--profile", "wideband")
    fs.start()
    wait_for(lambda: all(n["health"] == "up" for n in controller.api("GET", "/nodes")), 30, "fs1 up")
    yield fs
    fs.stop()


def test_authenticated_legs_from_untrusted_addresses_hear_their_room_and_not_themselves(node: FreeSwitch) -> None:
    host, port = node.sip_address.rsplit(":", 1)
    legs = [
        load.Leg(addr, freq, 0, "L16/16000", L16, load.encoded_tone("L16/16000", freq), keep=True)
        for addr, freq in zip(load.loopback_hosts(3, first=180), (500, 1100, 1700), strict=True)
    ]
    try:
        for leg in legs:
            leg.call((host, int(port)), f"sip:3100@{TENANT}", USER, TENANT, PASSWORD)
        assert {leg.answered for leg in legs} == {"L16/16000"}
        window = load.drive(legs, node.process.pid, warmup=1.0, seconds=2.0)
        assert window.received > 0
        for leg in legs:
            heard = load.hearing(leg, legs)
            assert heard.ok, f"leg {leg.freq} Hz heard {heard}"
    finally:
        for leg in legs:
            leg.hangup()
            leg.close()


def test_an_offer_without_the_operators_codecs_is_refused(node: FreeSwitch) -> None:
    host, port = node.sip_address.rsplit(":", 1)
    leg = load.Leg(load.loopback_hosts(1, first=190)[0], 700, 0, "G722", G722, load.encoded_tone("G722", 700))
    try:
        with pytest.raises(load.SipRefused) as refused:
            leg.call((host, int(port)), f"sip:3100@{TENANT}", USER, TENANT, PASSWORD)
        assert refused.value.status == 488
    finally:
        leg.close()
