"""On a real FreeSWITCH node: fsfarm refuses bad addresses, watches a node named by host name, says what a
drain did, refuses a second ``fsfarm up`` and stops cleanly while a node is connected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from farm_harness import Controller, FreeSwitch, wait_for


@pytest.fixture(scope="module")
def node(controller: Controller, workdir: Path) -> Iterator[FreeSwitch]:
    fs = FreeSwitch(controller, "fs1", workdir / "fs1")
    args = fs.node_add_args()
    args[args.index("--esl") + 1] = f"localhost:{fs.esl_port}"  # a host name, not an IP literal
    controller.cli(*args)
    controller.cli("tenant", "add", "acme.test")
    fs.start()
    yield fs
    fs.stop()


def health(controller: Controller, name: str) -> str:
    return {n["name"]: n["health"] for n in controller.api("GET", "/nodes")}[name]


def test_bad_addresses_are_refused_in_one_line_and_store_nothing(controller: Controller, node: FreeSwitch) -> None:
    base = ["node", "add", "bad", "--esl-password", "ClueCon"]
    for args, expected in [
        (["--sip", "10.0.0.300", "--esl", "127.0.0.1"], "error: --sip: 10.0.0.300 is not an IPv4 address"),
        (["--sip", "127.0.0.1", "--esl", "127.0.0.1:65536"], "error: --esl: the port must be a number from 1"),
        (["--sip", "fe80::1", "--esl", "127.0.0.1"], "error: --sip: an IPv6 address goes in brackets"),
    ]:
        done = controller.cli(*base, *args, check=False)
        assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done
        assert done.stderr.startswith(expected), done.stderr
    refused = controller.api(
        "POST",
        "/nodes",
        {"name": "bad", "sip_address": "10.0.0.300", "esl_address": "127.0.0.1", "esl_password": "x"},
        expect=400,
    )
    assert refused["detail"]["field"] == "sip_address" and "10.0.0.300" in refused["error"]
    assert [n["name"] for n in controller.api("GET", "/nodes")] == ["fs1"]


def test_a_node_named_by_host_name_is_watched_and_takes_its_tenant(controller: Controller, node: FreeSwitch) -> None:
    assert controller.api("GET", "/nodes/fs1")["esl_address"] == f"localhost:{node.esl_port}"
    wait_for(lambda: health(controller, "fs1") == "up", 30, "fs1 up over ESL reached as localhost")
    placed = wait_for(lambda: controller.api("GET", "/placement")["tenants"][0]["node"], 20, "acme.test placed")
    assert placed == "fs1"
    assert controller.cli("placement", "show").stdout.splitlines()[0].endswith(": 1 tenant(s) on 1 node(s)")


def test_drain_of_the_only_node_says_its_tenant_is_on_no_node(controller: Controller, node: FreeSwitch) -> None:
    out = controller.cli("node", "drain", "fs1").stdout.strip()
    assert out == (
        "node fs1 is draining; 0 of its 1 tenant(s) moved to other nodes, 1 are on no node "
        "(no other node can take them)"
    )
    first = controller.cli("placement", "show").stdout.splitlines()[0]
    assert first.endswith(": 0 tenant(s) on 0 node(s), 1 on no node"), first
    controller.api("PATCH", "/nodes/fs1", {"admin_state": "active"})
    wait_for(lambda: controller.api("GET", "/placement")["tenants"][0]["node"] == "fs1", 20, "acme.test back on fs1")


def test_a_second_up_is_refused_and_the_first_stops_cleanly(controller: Controller, node: FreeSwitch) -> None:
    wait_for(lambda: health(controller, "fs1") == "up", 30, "fs1 up")
    second = controller.cli("up", "--host", "127.0.0.1", "--port", str(controller.port), check=False)
    assert second.returncode == 1 and second.stderr.strip() == (
        f"error: port {controller.port} (the API and xml_curl) on 127.0.0.1 is already in use: "
        "is another fsfarm up running?"
    ), second
    controller.stop()  # SIGTERM with fs1's ESL connection open
    log = controller.log()
    assert "fsfarm: stopped" in log
    for noise in ("Traceback", "TypeError", "lost PostgreSQL", "Exception ignored"):
        assert noise not in log, log[-3000:]
