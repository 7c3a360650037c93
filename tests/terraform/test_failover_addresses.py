"""The hcloud example's failover addresses: a floating IP per node, nodes able to answer for any of them, and
the controller's fence and address commands, run the way the controller runs them."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from controller.config import FailoverSettings
from controller.domain import Node
from controller.takeover import Takeover
from tests.conftest import free_port
from tests.terraform.rendering import render, terraform_output

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
MODULE = TERRAFORM / "modules" / "cloud_init"
EXAMPLE = TERRAFORM / "examples" / "hcloud"
FLOATING = ["198.51.100.7", "198.51.100.8", "198.51.100.9"]
SCRIPT_PATH = "/usr/local/sbin/fsfarm-failover"


def unquote(name: str) -> str:
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == '"' else name


def example_blocks(kind: str) -> dict[str, Any]:
    """Blocks of one kind in the example's main.tf: modules by name, resources by 'type.name'."""
    with (EXAMPLE / "main.tf").open() as f:
        tree = hcl2.load(f)
    out: dict[str, Any] = {}
    for block in tree.get(kind, []):
        for key, body in block.items():
            if kind == "resource":
                for name, spec in body.items():
                    out[f"{unquote(key)}.{unquote(name)}"] = spec
            else:
                out[unquote(key)] = body
    return out


def example_commands() -> tuple[str, str]:
    controller = example_blocks("module")["controller_init"]
    return unquote(controller["fence_command"]), unquote(controller["address_command"])


def failover_script(token: str = "hc-token", prefix: str = "fsfarm") -> str:
    return render((EXAMPLE / "failover.sh.tftpl").read_text(), {"hcloud_token": token, "name_prefix": prefix})


def python_user_data(role: str) -> str:
    """The module's user-data for ``role`` with the failover values computed as main.tf does; others are stand-ins."""
    fence, address = example_commands()
    values = {
        "floating_json": json.dumps("".join(f"{a}\n" for a in FLOATING)),
        "fence_command_json": json.dumps(fence),
        "address_command_json": json.dumps(address),
        "failover_script_b64": base64.b64encode(failover_script().encode()).decode(),
        "extra_packages": ", hcloud-cli",
        "sip_host": FLOATING[2],
    }
    template = (MODULE / "templates" / f"{'freeswitch' if role == 'spare' else role}.yaml.tftpl").read_text()
    keys = set(re.findall(r"(?<!\$)\$\{\s*([A-Za-z_0-9]+)\s*\}", template))
    return render(template, {k: values.get(k, f"<{k}>") for k in keys})


def terraform_user_data(role: str) -> str:
    """The module's own user_data output, through `terraform apply` on a provider-less root."""
    fence, address = example_commands()
    main = f'''
module "machine" {{
  source             = "{MODULE}"
  role               = "{role}"
  hostname           = "spare1"
  advertise_address  = "10.42.1.200"
  sip_address        = "{FLOATING[2]}"
  floating_addresses = {json.dumps(FLOATING)}
  extra_packages     = ["hcloud-cli"]
  failover_script    = file("${{path.root}}/failover.sh")
  fence_command      = {json.dumps(fence)}
  address_command    = {json.dumps(address)}
}}
output "user_data" {{
  value = nonsensitive(module.machine.user_data)
}}
'''
    return terraform_output({"failover.sh": failover_script(), "main.tf": main}, "user_data")


def user_data(role: str) -> dict[str, Any]:
    text = terraform_user_data(role) if shutil.which("terraform") else python_user_data(role)
    assert text.startswith("#cloud-config\n")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def written(cloud_config: dict[str, Any], path: str) -> dict[str, Any]:
    files = {f["path"]: f for f in cloud_config["write_files"]}
    assert path in files, sorted(files)
    return files[path]


def test_example_gives_every_node_a_floating_ip_assigned_to_its_server() -> None:
    resources = example_blocks("resource")
    floating = resources["hcloud_floating_ip.node"]
    assert (floating["for_each"], unquote(floating["type"])) == ("${local.nodes}", "ipv4")
    assignment = resources["hcloud_floating_ip_assignment.node"]
    assert assignment["for_each"] == "${local.nodes}"
    assert assignment["floating_ip_id"] == "${hcloud_floating_ip.node[each.key].id}"
    assert assignment["server_id"] == "${hcloud_server.node[each.key].id}"
    # An apply after a failover must leave the address with the heir the controller moved it to.
    assert assignment["lifecycle"][0]["ignore_changes"] == ["server_id"]
    node_init = example_blocks("module")["node_init"]
    assert node_init["sip_address"] == "${hcloud_floating_ip.node[each.key].ip_address}"
    assert "hcloud_floating_ip.node[name].ip_address" in node_init["floating_addresses"]
    with (EXAMPLE / "outputs.tf").open() as f:
        outputs = {unquote(k) for block in hcl2.load(f)["output"] for k in block}
    assert "node_floating_ips" in outputs


def test_nodes_bind_nonlocal_and_carry_every_floating_address() -> None:
    node = user_data("spare")
    assert written(node, "/etc/sysctl.d/60-fsfarm-nonlocal-bind.conf")["content"].split() == [
        "net.ipv4.ip_nonlocal_bind",
        "=",
        "1",
    ]
    assert written(node, "/etc/fsfarm/floating-addresses")["content"].split() == FLOATING
    unit = written(node, "/etc/systemd/system/fsfarm-floating-addresses.service")["content"]
    assert "ExecStart=/usr/local/sbin/fsfarm-floating-addresses" in unit and "Before=freeswitch.service" in unit
    steps = [" ".join(step) if isinstance(step, list) else step for step in node["runcmd"]]
    enable = steps.index("systemctl enable --now fsfarm-floating-addresses")
    assert steps.index("sysctl -p /etc/sysctl.d/60-fsfarm-nonlocal-bind.conf") < enable
    assert enable < steps.index("systemctl enable --now freeswitch")


NETNS_CHECK = """set -eu
# A Hetzner-like uplink: a /32 on eth0 and the gateway on-link.
ip link set lo up
ip link add eth0 type veth peer name uplink
ip link set eth0 up
ip link set uplink up
ip addr add 172.31.5.2/32 dev eth0
ip route add 172.31.1.1 dev eth0
ip route add default via 172.31.1.1 dev eth0
sh "$1"
sh "$1"
echo "rules $(ip rule show pref 50 | wc -l)"
echo "other $(ip route get "$2")"
echo "own $(ip route get "$3")"
echo "routed-here $(ip route get "$2" from 203.0.113.5 iif eth0)"
python3 -c "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind((sys.argv[1], 5060))" "$2"
echo bound
"""


def test_a_node_answers_for_every_floating_address_yet_sends_to_other_nodes_through_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = ["unshare", "-rn", "ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1"]
    if subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("no network namespace with veth links here")
    script = tmp_path / "fsfarm-floating-addresses"
    script.write_text(written(user_data("spare"), "/usr/local/sbin/fsfarm-floating-addresses")["content"])
    listed = tmp_path / "floating-addresses"
    listed.write_text("".join(f"{a}\n" for a in FLOATING))
    check = tmp_path / "check.sh"
    check.write_text(NETNS_CHECK)
    monkeypatch.setenv("FSFARM_FLOATING_ADDRESSES", str(listed))
    done = subprocess.run(
        ["unshare", "-rn", "sh", str(check), str(script), FLOATING[0], FLOATING[2]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert out["rules"] == "2"  # the other nodes' addresses, once each however often the unit runs
    assert "via 172.31.1.1 dev eth0" in out["other"]  # a room on fs1 is reached at fs1 (or its heir), not here
    assert out["own"].startswith("local ")
    assert out["routed-here"].startswith("local ")  # once the cloud routes it here, the kernel takes it
    assert done.stdout.splitlines()[-1] == "bound"


def test_controller_environment_carries_the_fence_and_address_commands() -> None:
    controller = user_data("controller")
    env = dict(
        line.split("=", 1) for line in written(controller, "/etc/fsfarm/environment")["content"].splitlines() if line
    )
    fence, address = example_commands()
    assert json.loads(env["FSFARM_FENCE_COMMAND"]) == fence == f"{SCRIPT_PATH} fence {{name}}"
    assert json.loads(env["FSFARM_ADDRESS_COMMAND"]) == address == f"{SCRIPT_PATH} address {{address}} {{heir}}"
    script = written(controller, SCRIPT_PATH)
    assert script["permissions"] == "0700"  # it holds the API token
    assert base64.b64decode(script["content"]).decode() == failover_script()
    assert "hcloud-cli" in controller["packages"]


FAKE_HCLOUD = """#!/bin/sh
# Stands in for Hetzner's API: servers in $STATE/servers ("name status"), floating IPs in $STATE/ips ("id ip server").
echo "$HCLOUD_TOKEN $*" >> "$STATE/calls"
case "$1 $2" in
"server poweroff")
    status=$(awk -v s="$3" '$1 == s {print $2}' "$STATE/servers")
    [ "$status" = running ] || { echo "hcloud: server $3 is $status" >&2; exit 1; }
    [ -e "$STATE/stuck" ] && exit 1
    sed -i "s/^$3 running$/$3 off/" "$STATE/servers";;
"server list") cat "$STATE/servers";;
"floating-ip list") awk '{print $1, $2}' "$STATE/ips";;
"floating-ip assign") awk -v i="$3" -v s="$4" '$1 == i {$3 = s} {print}' "$STATE/ips" > "$STATE/ips.new"
    mv "$STATE/ips.new" "$STATE/ips";;
*) exit 3;;
esac
"""


def node(name: str, sip_host: str, port: int) -> Node:
    return Node(
        id=uuid.uuid4(),
        name=name,
        switchname=name,
        sip_address=f"{sip_host}:{port}",
        esl_address="10.42.1.100:8021",
        esl_password="x",
        rtp_port_min=16384,
        rtp_port_max=32768,
        capacity=100,
    )


@pytest.mark.parametrize("dead_status", ["running", "off", "stuck"])
def test_the_controller_fences_then_moves_the_floating_ip_to_the_heir(
    dead_status: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, bin_dir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    (bin_dir / "hcloud").write_text(FAKE_HCLOUD)
    (bin_dir / "hcloud").chmod(0o755)
    status = "running" if dead_status == "stuck" else dead_status
    (state / "servers").write_text(f"fsfarm-fs1 {status}\nfsfarm-spare1 running\n")
    if dead_status == "stuck":
        (state / "stuck").touch()
    # The dead node's address: silent on loopback, as a powered-off server's floating IP is.
    (state / "ips").write_text("11 127.0.0.1 fsfarm-fs1\n12 198.51.100.8 fsfarm-spare1\n")
    script = tmp_path / "fsfarm-failover"
    script.write_text(failover_script(token="hc-secret"))
    script.chmod(0o700)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STATE", str(state))
    fence, address = (c.replace(SCRIPT_PATH, str(script)) for c in example_commands())

    takeover = Takeover(FailoverSettings(fence_command=fence, address_command=address), silence_wait=1.0)
    verdict = takeover.decide(node("fs1", "127.0.0.1", free_port()), node("spare1", "198.51.100.8", 5060), False)

    calls = (state / "calls").read_text().splitlines()
    assert all(call.startswith("hc-secret ") for call in calls)
    if dead_status == "stuck":
        assert not verdict.allowed and "fence command failed" in verdict.sentence
        assert "still running" in verdict.sentence
        assert not any("floating-ip assign" in call for call in calls)
        assert (state / "ips").read_text().startswith("11 127.0.0.1 fsfarm-fs1\n")
        return
    assert verdict.allowed, verdict.sentence
    assert "hc-secret server poweroff fsfarm-fs1" in calls
    assert (state / "servers").read_text() == "fsfarm-fs1 off\nfsfarm-spare1 running\n"
    assert calls[-1] == "hc-secret floating-ip assign 11 fsfarm-spare1"
    assert (state / "ips").read_text() == "11 127.0.0.1 fsfarm-spare1\n12 198.51.100.8 fsfarm-spare1\n"
