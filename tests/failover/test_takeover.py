"""May a spare take a dead node's address? Fence first when told how, never while something answers there."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.config import FailoverSettings
from controller.domain import Node, NodeHealth
from controller.takeover import Takeover, answers_sip


def node(name: str, sip: str) -> Node:
    return Node(
        id=uuid.uuid4(),
        name=name,
        switchname=f"fs-{name}",
        sip_address=sip,
        esl_address="127.0.0.1:8021",
        esl_password="x",
        rtp_port_min=10000,
        rtp_port_max=10100,
        capacity=10,
        health=NodeHealth.DOWN,
    )


@pytest.fixture
def sip_answerer() -> Iterator[str]:
    """Something still answering SIP OPTIONS at an address (a node that is not really gone)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            if data.startswith(b"OPTIONS"):
                sock.sendto(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", peer)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join()
    sock.close()


def silent_address() -> str:
    """An address nothing listens on (bound, then closed: the port is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_the_probe_tells_a_live_address_from_a_dead_one(sip_answerer: str) -> None:
    assert answers_sip(sip_answerer)
    assert not answers_sip(silent_address())


def test_a_crashed_node_s_silent_address_is_taken_and_moved_by_the_operator_s_command(tmp_path: Path) -> None:
    log = tmp_path / "moved"
    move = FailoverSettings(address_command=f"echo {{address}} {{heir}} {{dead}} > {log}")
    verdict = Takeover(move).decide(node("fs1", silent_address()), node("spare1", "127.0.0.1:5999"), crashed=True)
    assert verdict.allowed, verdict.sentence
    assert log.read_text().split() == ["127.0.0.1", "spare1", "fs1"]


def test_a_hung_node_keeps_its_address_without_a_fence_command() -> None:
    verdict = Takeover().decide(node("fs1", silent_address()), node("spare1", "127.0.0.1:5999"), crashed=False)
    assert not verdict.allowed and "FSFARM_FENCE_COMMAND" in verdict.sentence


def test_a_hung_node_is_fenced_first_and_the_command_gets_its_name_quoted(tmp_path: Path) -> None:
    log = tmp_path / "fenced"
    fence = FailoverSettings(fence_command=f"echo {{name}} {{sip_host}} >> {log}")
    dead = node("fs1; rm -rf /", silent_address())  # a name is data, never shell
    verdict = Takeover(fence).decide(dead, node("spare1", "127.0.0.1:5999"), crashed=False)
    assert verdict.allowed and verdict.sentence.startswith("fenced")
    assert log.read_text().strip() == "fs1; rm -rf / 127.0.0.1"


def test_a_failed_fence_keeps_the_address() -> None:
    verdict = Takeover(FailoverSettings(fence_command="exit 3")).decide(
        node("fs1", silent_address()), node("spare1", "127.0.0.1:5999"), crashed=True
    )
    assert not verdict.allowed and "exited 3" in verdict.sentence


def test_an_address_that_still_answers_is_never_taken(sip_answerer: str) -> None:
    verdict = Takeover(silence_wait=0.5).decide(node("fs1", sip_answerer), node("spare1", "127.0.0.1:5999"), True)
    assert not verdict.allowed and "still answers SIP" in verdict.sentence
