"""A node's join script, rendered from the cloud_init module, against a real controller on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from controller import provisioning
from controller.domain import secret_hash
from controller.join import activate_on_first_heartbeat
from controller.stores import nodes, placements
from tests.conftest import free_port
from tests.terraform.rendering import render, terraform_output

MODULE = Path(__file__).resolve().parents[2] / "terraform" / "modules" / "cloud_init"


@pytest.fixture
def controller_url(app: Any) -> Iterator[str]:
    """The Flask app served by werkzeug on a free loopback port, stopped afterwards."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=10)


def python_rendered(controller: str, token: str, name: str, spare: bool = False, sip_address: str = "") -> str:
    return render(
        (MODULE / "templates" / "join.sh.tftpl").read_text(),
        {
            "controller_url": controller,
            "join_token": token,
            "node_name": name,
            "advertise_address": "127.0.0.1",
            "sip_address": sip_address,
            "capacity": "500",
            "spare": "true" if spare else "false",
            "conf_dir": "/etc/freeswitch",
        },
    )


def terraform_rendered(controller: str, token: str, name: str) -> str:
    """The module's own join_script output, through `terraform apply` on a provider-less root."""
    main = f'''
module "node" {{
  source            = "{MODULE}"
  role              = "freeswitch"
  hostname          = "{name}"
  controller_url    = "{controller}/"
  join_token        = "{token}"
  advertise_address = "127.0.0.1"
  capacity          = 500
}}
output "join_script" {{
  value = nonsensitive(module.node.join_script)
}}
'''
    return terraform_output({"main.tf": main}, "join_script")


def run_script(script: str, conf_dir: Path) -> subprocess.CompletedProcess[str]:
    path = conf_dir.parent / "fsfarm-join.sh"
    path.write_text(script)
    return subprocess.run(
        ["sh", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FSFARM_CONF_DIR": str(conf_dir)},
    )


def test_rendered_join_script_registers_a_node_unplaced_until_its_first_heartbeat(
    db: Any, controller_url: str, tmp_path: Path
) -> None:
    tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
    token, _ = provisioning.create_token(db, "node-join", label="fs9")
    if shutil.which("terraform"):
        script = terraform_rendered(controller_url, token, "fs9")
        assert script == python_rendered(controller_url, token, "fs9")  # both renderers agree
    else:
        script = python_rendered(controller_url, token, "fs9")
    conf = tmp_path / "freeswitch"
    (conf / "autoload_configs").mkdir(parents=True)
    (conf / "autoload_configs" / "xml_curl.conf.xml").write_text(  # what cloud-init installs before the join
        '<configuration name="xml_curl.conf"><bindings><binding name="fsfarm">'
        '<param name="gateway-credentials" value="freeswitch:shared"/></binding></bindings></configuration>'
    )
    done = run_script(script, conf)
    assert done.returncode == 0, done.stderr
    answer = json.loads((conf / "fsfarm-join.json").read_text())
    esl_conf = (conf / "autoload_configs" / "event_socket.conf.xml").read_text()
    assert f'value="{answer["esl_password"]}"' in esl_conf and 'value="127.0.0.1"' in esl_conf
    assert oct((conf / "fsfarm-join.json").stat().st_mode & 0o777) == "0o600"
    curl_conf = (conf / "autoload_configs" / "xml_curl.conf.xml").read_text()
    assert f'value="fs9:{answer["xmlcurl_password"]}"' in curl_conf  # the node's own credentials

    with db.transaction() as conn:
        node = nodes.get(conn, "fs9")
        assert node is not None and str(node.id) == answer["node_id"]
        assert (node.admin_state, node.sip_address, node.esl_address, node.capacity) == (
            "pending",
            "127.0.0.1:5060",
            "127.0.0.1:8021",
            500,
        )
        assert node.esl_password == answer["esl_password"]
        assert node.xmlcurl_secret_hash == secret_hash(answer["xmlcurl_password"])
        assert not node.placeable
        assert placements.tenants_on_node(conn, node.id) == []

    # What the ESL room does when the node's first HEARTBEAT arrives.
    with db.transaction() as conn:
        nodes.set_health(conn, node.id, "up", "first heartbeat")
        assert activate_on_first_heartbeat(conn, node.id) is True
        assert activate_on_first_heartbeat(conn, node.id) is False
    overview = provisioning.placement_overview(db)
    assert [(t["tenant"], t["node"]) for t in overview["tenants"]] == [(tenant.domain, "fs9")]

    # A re-run (reboot) does nothing: the answer is kept and the spent token is never sent again.
    again = run_script(script, conf)
    assert again.returncode == 0 and "already joined" in again.stdout


def test_a_spent_or_wrong_token_makes_the_script_fail_and_registers_nothing(
    db: Any, controller_url: str, tmp_path: Path
) -> None:
    token, _ = provisioning.create_token(db, "node-join")
    assert run_script(python_rendered(controller_url, token, "fs1"), tmp_path / "a").returncode == 0
    reused = run_script(python_rendered(controller_url, token, "fs2"), tmp_path / "b")
    assert reused.returncode != 0 and "409" in reused.stderr
    wrong = run_script(python_rendered(controller_url, "fsf_not-a-real-token", "fs3"), tmp_path / "c")
    assert wrong.returncode != 0 and "401" in wrong.stderr
    assert not (tmp_path / "b" / "fsfarm-join.json").exists()
    with db.transaction() as conn:
        assert [n.name for n in nodes.list_all(conn)] == ["fs1"]


def test_a_node_with_a_floating_address_registers_it_for_sip_and_keeps_esl_on_its_own(
    db: Any, controller_url: str, tmp_path: Path
) -> None:
    token, _ = provisioning.create_token(db, "node-join", label="fs4")
    conf = tmp_path / "freeswitch"
    done = run_script(python_rendered(controller_url, token, "fs4", sip_address="198.51.100.7"), conf)
    assert done.returncode == 0, done.stderr
    # The controller reaches ESL on the node's own address, which never moves.
    assert 'name="listen-ip" value="127.0.0.1"' in (conf / "autoload_configs" / "event_socket.conf.xml").read_text()
    with db.transaction() as conn:
        node = nodes.get(conn, "fs4")
        assert node is not None
        assert (node.sip_address, node.esl_address) == ("198.51.100.7:5060", "127.0.0.1:8021")


def test_join_endpoint_refusals(db: Any, client: Any, farm_token: str) -> None:
    def join(token: str | None, body: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post("/api/v1/join", json=body, headers=headers)

    body = {"name": "fs1", "sip_address": "10.0.0.11", "esl_address": "10.0.0.11"}
    assert join(None, body).status_code == 401
    assert join(farm_token, body).status_code == 401  # an admin token is not a join token
    token, _ = provisioning.create_token(db, "node-join")
    bad = join(token, {"name": "fs1"})
    assert bad.status_code == 400 and "sip_address" in json.dumps(bad.json)
    ok = join(token, {**body, "spare": True})
    assert ok.status_code == 201 and ok.json["admin_state"] == "pending" and len(ok.json["esl_password"]) >= 24
    assert join(token, {**body, "name": "fs2"}).status_code == 409
    with db.transaction() as conn:
        spare = nodes.get(conn, "fs1")
        assert spare is not None and spare.spare and spare.esl_address == "10.0.0.11:8021"
        nodes.set_health(conn, spare.id, "up", "first heartbeat")
        assert activate_on_first_heartbeat(conn, spare.id) is True
        active = nodes.get(conn, "fs1")
        assert active is not None and active.admin_state == "active" and not active.placeable  # a spare still
