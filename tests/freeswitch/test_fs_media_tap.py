"""The media-gap tool on a real call: ``RtpTap`` sees the node's RTP reach a phone, packet by packet.

Issue 13 measures a call's media gap across a node crash from RTP arrival times at the phone; this
module checks the measuring tool itself on one node and a steady call, before anyone trusts its figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from farm_harness import Controller, FreeSwitch, Phone, RtpTap, RtpTapUnavailable, wait_for
from rtp_gaps import largest_gap, silence_gap, sources

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
TONES = {"1001": 440, "1002": 1200}


@dataclass
class Farm:
    node: FreeSwitch
    caller: Phone
    callee: Phone


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
    node = FreeSwitch(controller, "fs1", workdir / "fs1")
    controller.cli(*node.node_add_args())
    controller.cli("tenant", "add", "acme.test")
    for ext, password in PASSWORDS.items():
        controller.cli("user", "add", "-t", "acme.test", ext, "--password", password)
    node.start()
    wait_for(lambda: all(t["node"] == "fs1" for t in controller.api("GET", "/placement")["tenants"]), 30, "acme on fs1")
    phones = [Phone(workdir, ext, "acme.test", PASSWORDS[ext], node.sip_address, TONES[ext]) for ext in PASSWORDS]
    for phone in phones:
        phone.wait_registered()
    yield Farm(node, *phones)
    for phone in phones:
        phone.stop()
    node.stop()


def tap_on(phone: Phone) -> RtpTap:
    try:
        return RtpTap(phone).start()
    except RtpTapUnavailable as e:
        pytest.skip(str(e))


def test_the_tap_sees_the_nodes_steady_rtp_reach_the_callee_and_nothing_once_stopped(farm: Farm) -> None:
    caller, callee = farm.caller, farm.callee
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
    assert runs[0].source.split(":")[0] == farm.node.sip_host, runs
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
