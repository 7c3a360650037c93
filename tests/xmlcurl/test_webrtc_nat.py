"""A node's WebSocket bindings and NAT settings: from its fields (API, CLI) into its sofia profile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from test_configuration import config, settings

from controller import provisioning
from controller.stores import nodes


def profile_settings(client: Any, recorded: Any) -> dict[str, str]:
    return settings(config(client, recorded, "sofia.conf").find("profiles/profile"))


def wait_for(client: Any, recorded: Any, key: str, value: str | None) -> dict[str, str]:
    """The vm's profile once the change notice reached the snapshot and ``key`` reads ``value``."""
    deadline = time.monotonic() + 10
    while (s := profile_settings(client, recorded)).get(key) != value:
        assert time.monotonic() < deadline, f"{key} stayed {s.get(key)!r}, not {value!r}"
        time.sleep(0.05)
    return s


def test_a_node_without_webrtc_fields_keeps_its_plain_profile(client: Any, farm: Any, recorded: Any) -> None:
    s = profile_settings(client, recorded)
    assert (s["ext-sip-ip"], s["ext-rtp-ip"]) == ("127.0.0.1", "127.0.0.1")
    assert not {"ws-binding", "wss-binding", "apply-candidate-acl", "apply-nat-acl"} & set(s)
    assert not [k for k in s if k.startswith("NDLB-")]


def test_websocket_bindings_and_nat_settings_reach_the_nodes_profile(
    admin: Any, client: Any, farm: Any, recorded: Any
) -> None:
    answer = admin.patch(
        "/api/v1/nodes/vm",
        json={
            "ws_port": 5066,
            "wss_port": 7443,
            "ext_sip_ip": "203.0.113.10",
            "ext_rtp_ip": "203.0.113.11",
            "nat_acl": "nat.auto",
            "ndlb": ["force-rport", "received-in-nat-reg-contact"],
        },
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["ndlb"] == ["force-rport", "received-in-nat-reg-contact"]
    s = wait_for(client, recorded, "ws-binding", "127.0.0.1:5066")
    assert s["wss-binding"] == "127.0.0.1:7443"
    # The profile still binds the node's own address; phones and browsers are told the public ones.
    assert (s["sip-ip"], s["rtp-ip"], s["ext-sip-ip"], s["ext-rtp-ip"]) == (
        "127.0.0.1",
        "127.0.0.1",
        "203.0.113.10",
        "203.0.113.11",
    )
    assert s["apply-nat-acl"] == "nat.auto" and s["apply-candidate-acl"] == "any_v4.auto"
    assert (s["NDLB-force-rport"], s["NDLB-received-in-nat-reg-contact"]) == ("true", "true")
    assert "NDLB-broken-auth-hash" not in s


def test_a_stun_server_gives_the_public_addresses_left_unset(admin: Any, client: Any, farm: Any, recorded: Any) -> None:
    answer = admin.patch("/api/v1/nodes/vm", json={"stun_server": "stun.example.net", "ext_sip_ip": "auto-nat"})
    assert answer.status_code == 200, answer.get_json()
    s = wait_for(client, recorded, "ext-rtp-ip", "stun:stun.example.net:3478")
    assert s["ext-sip-ip"] == "auto-nat"


def test_bad_webrtc_and_nat_fields_are_refused_naming_the_field(admin: Any, db: Any, farm: Any) -> None:
    with db.transaction() as conn:
        before = nodes.get(conn, "vm")
    for body, field in [
        ({"ws_port": 5060}, "ws_port"),  # the node's SIP port on the same host
        ({"ws_port": 5066, "wss_port": 5066}, "wss_port"),
        ({"ws_port": 70000}, "ws_port"),
        ({"ext_sip_ip": "my-router"}, "ext_sip_ip"),
        ({"ext_rtp_ip": "300.1.1.1"}, "ext_rtp_ip"),
        ({"stun_server": "stun.example.net:99999"}, "stun_server"),
        ({"nat_acl": "everyone"}, "nat_acl"),
        ({"ndlb": ["force-rport", "trust-everyone"]}, "ndlb"),
    ]:
        answer = admin.patch("/api/v1/nodes/vm", json=body)
        assert answer.status_code == 400, (body, answer.get_json())
        assert field in answer.get_json()["error"], (body, answer.get_json())
    refused = admin.post(
        "/api/v1/nodes",
        json={
            "name": "fs9",
            "sip_address": "10.0.0.9:5080",
            "esl_address": "10.0.0.9",
            "esl_password": "x",
            "wss_port": 5080,
        },
    )
    assert refused.status_code == 400 and "wss_port" in refused.get_json()["error"]
    with db.transaction() as conn:
        assert nodes.get(conn, "vm") == before
        assert nodes.get(conn, "fs9") is None


def fsfarm(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_sets_and_clears_a_nodes_nat_fields(db: Any, dsn: str, farm: Any) -> None:
    done = fsfarm(
        dsn, "node", "update", "vm", "--ws-port", "5066", "--ext-rtp-ip", "198.51.100.4", "--ndlb", "force-rport"
    )
    assert done.returncode == 0, done.stderr
    with db.transaction() as conn:
        vm = nodes.get(conn, "vm")
    assert vm is not None and (vm.ws_port, vm.ext_rtp_ip, vm.ndlb) == (5066, "198.51.100.4", ("force-rport",))
    assert fsfarm(dsn, "node", "update", "vm", "--ndlb", "", "--ws-port", "0").returncode == 0
    with db.transaction() as conn:
        vm = nodes.get(conn, "vm")
    assert vm is not None and (vm.ws_port, vm.ndlb) == (0, ())
    refused = fsfarm(dsn, "node", "update", "vm", "--nat-acl", "everyone")
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1 and "--nat-acl" in refused.stderr
    added = fsfarm(
        dsn, "node", "add", "fs3", "--sip", "10.0.0.3", "--esl", "10.0.0.3", "--esl-password", "x", "--wss-port", "7443"
    )
    assert added.returncode == 0, added.stderr
    assert provisioning.update_node(db, "fs3", {}).wss_port == 7443
