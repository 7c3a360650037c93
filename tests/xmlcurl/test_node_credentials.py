"""Each node's own xml_curl credentials: answered only as itself, rotatable, and guesses limited per address."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from xmlcurl_support import AUTH, is_not_found, post

from controller import provisioning
from controller.database import Database
from controller.domain import secret_hash
from controller.stores import nodes


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def directory_fetch(switchname: str = "vm") -> str:
    """The sip_auth directory question for acme.test's 1001, as the node ``switchname`` asks it."""
    return (
        f"hostname={switchname}&section=directory&tag_name=domain&key_name=name&key_value=acme.test"
        f"&FreeSWITCH-Switchname={switchname}&action=sip_auth&user=1001&domain=acme.test"
    )


@pytest.fixture
def own(db: Database, farm: Any) -> dict[str, str]:
    """Credentials of `vm` (hosting acme.test) and of a spare `fs2`, as ``user:password``."""
    vm, vm_password = provisioning.rotate_xmlcurl_credentials(db, "vm")
    fs2, fs2_password = provisioning.register_node(
        db,
        {"name": "fs2", "sip_address": "127.0.0.2:5060", "esl_address": "127.0.0.2:8021", "esl_password": "x" * 8}
        | {"spare": True},
    )
    return {"vm": f"{vm.xmlcurl_user}:{vm_password}", "fs2": f"{fs2.xmlcurl_user}:{fs2_password}"}


def test_a_node_is_answered_as_itself_with_its_own_credentials(client: Any, own: dict[str, str]) -> None:
    answer = post(client, directory_fetch("vm"), auth=basic(own["vm"]))
    assert answer.status_code == 200 and b'user id="1001"' in answer.data
    assert own["vm"].startswith("vm:") and own["fs2"].startswith("fs2:")


def test_credentials_of_one_node_asking_as_another_are_refused_and_logged(
    client: Any, own: dict[str, str], caplog: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="xmlcurl.web"):
        stolen = post(client, directory_fetch("vm"), auth=basic(own["fs2"]))
    assert stolen.status_code == 403 and is_not_found(etree.fromstring(stolen.data)) and b"a1-hash" not in stolen.data
    assert "the credentials of node fs2 asked as switch 'vm'" in caplog.text
    # The hostname field alone (some fetches carry only it) is checked the same way.
    only_hostname = directory_fetch("vm").replace("&FreeSWITCH-Switchname=vm", "")
    assert post(client, only_hostname, auth=basic(own["fs2"])).status_code == 403
    assert post(client, only_hostname, auth=basic(own["vm"])).status_code == 200


def test_wrong_user_or_password_and_rotation(db: Database, client: Any, own: dict[str, str]) -> None:
    password = own["vm"].partition(":")[2]
    for wrong in (f"fs2:{password}", "vm:guess", f"vm:{password}x", "vm:", ":" + password):
        assert post(client, directory_fetch("vm"), auth=basic(wrong)).status_code == 401, wrong
    with db.transaction() as conn:
        stored = nodes.get(conn, "vm")
    assert stored is not None and stored.xmlcurl_secret_hash == secret_hash(password)  # only the hash is kept
    _, new_password = provisioning.rotate_xmlcurl_credentials(db, "vm")
    # The new password works at once (the check falls back to SQL); the old one once the notice arrives.
    assert post(client, directory_fetch("vm"), auth=basic(f"vm:{new_password}")).status_code == 200
    deadline = time.monotonic() + 10
    while post(client, directory_fetch("vm"), auth=basic(own["vm"])).status_code != 401:
        assert time.monotonic() < deadline, "the rotated-out password is still accepted"
        time.sleep(0.05)
    assert post(client, directory_fetch("vm"), auth=basic(f"vm:{new_password}")).status_code == 200


def test_the_shared_password_answers_every_node_only_when_the_operator_set_one(
    db: Database, own: dict[str, str]
) -> None:
    from controller.app.web import create_app
    from controller.config import Settings
    from xmlcurl.web import stop

    with_shared = create_app(db, Settings(state_dir=Path("/nonexistent"), xmlcurl_password="s3cret"))
    without = create_app(db, Settings(state_dir=Path("/nonexistent"), xmlcurl_password=""))
    try:
        assert post(with_shared.test_client(), directory_fetch("vm"), auth=AUTH).status_code == 200
        assert post(without.test_client(), directory_fetch("vm"), auth=AUTH).status_code == 401
        assert post(without.test_client(), directory_fetch("vm"), auth=basic("freeswitch:")).status_code == 401
        assert post(without.test_client(), directory_fetch("vm"), auth=basic(own["vm"])).status_code == 200
    finally:
        stop(with_shared)
        stop(without)


def test_guessing_is_limited_per_client_address(app: Any, client: Any, own: dict[str, str], caplog: Any) -> None:
    from controller.bearer import FAILURE_WINDOW, FAILURES_ALLOWED, limiter

    now = [1000.0]
    limiter(app).clock = lambda: now[0]
    attacker = {"REMOTE_ADDR": "192.0.2.66"}

    def fetch(auth: str, environ: dict[str, str] | None = None) -> Any:
        return client.post(
            "/xmlcurl",
            data=directory_fetch("vm").encode(),
            headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
            environ_base=environ or {},
        )

    with caplog.at_level(logging.WARNING, logger="controller.bearer"):
        for _ in range(FAILURES_ALLOWED):
            assert fetch(basic("vm:guess"), attacker).status_code == 401
    assert "192.0.2.66" in caplog.text
    blocked = fetch(basic(own["vm"]), attacker)  # even the right password, from that address
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= FAILURE_WINDOW
    assert fetch(basic(own["vm"])).status_code == 200  # the node itself, from its own address
    now[0] += FAILURE_WINDOW
    assert fetch(basic(own["vm"]), attacker).status_code == 200


def test_node_add_join_and_rotation_show_the_password_once(admin: Any, client: Any, db: Database, farm: Any) -> None:
    node = {"name": "fs3", "sip_address": "127.0.0.3", "esl_address": "127.0.0.3", "esl_password": "ClueCon1"}
    added = admin.post("/api/v1/nodes", json=node | {"spare": True})
    assert added.status_code == 201 and added.json["xmlcurl_user"] == "fs3" and added.json["xmlcurl_secret_hash_set"]
    shown = admin.get("/api/v1/nodes/fs3").json
    assert "xmlcurl_password" not in shown and "xmlcurl_secret_hash" not in shown
    first = f"fs3:{added.json['xmlcurl_password']}"
    assert post(client, directory_fetch("fs3"), auth=basic(first)).status_code == 200
    rotated = admin.post("/api/v1/nodes/fs3/xmlcurl-credentials")
    assert rotated.status_code == 200 and rotated.json["xmlcurl_user"] == "fs3"
    assert rotated.json["xmlcurl_password"] != added.json["xmlcurl_password"]
    second = f"fs3:{rotated.json['xmlcurl_password']}"
    assert post(client, directory_fetch("fs3"), auth=basic(second)).status_code == 200
    assert admin.post("/api/v1/nodes/nope/xmlcurl-credentials").status_code == 404

    token, _ = provisioning.create_token(db, "node-join")
    joined = client.post(
        "/api/v1/join",
        json={"name": "fs4", "sip_address": "127.0.0.4", "esl_address": "127.0.0.4"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert joined.status_code == 201 and joined.json["xmlcurl_user"] == "fs4"
    assert post(client, directory_fetch("fs4"), auth=basic(f"fs4:{joined.json['xmlcurl_password']}")).status_code == 200


def test_rotate_command(dsn: str, farm: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    def fsfarm(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FSFARM_DATABASE_URL": dsn}
        command = [sys.executable, "-m", "controller.cli.entry", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    rotated = fsfarm("node", "rotate-xmlcurl", "vm")
    assert rotated.returncode == 0 and rotated.stdout.startswith("xml_curl credentials (shown once): vm:")
    again = json.loads(fsfarm("node", "rotate-xmlcurl", "vm", "--json").stdout)
    assert again["xmlcurl_user"] == "vm" and again["xmlcurl_password"] not in rotated.stdout
    missing = fsfarm("node", "rotate-xmlcurl", "nope")
    assert missing.returncode == 1 and missing.stderr == "error: no node 'nope'\n"


@pytest.mark.parametrize("snapshot", [True, False], ids=["from the snapshot", "from SQL"])
def test_both_answer_paths_check_the_caller(db: Database, own: dict[str, str], snapshot: bool) -> None:
    from controller.app.web import create_app
    from controller.config import Settings, XmlCurlSettings
    from xmlcurl.web import service, start, stop

    app = create_app(db, Settings(state_dir=Path("/nonexistent"), xmlcurl=XmlCurlSettings(snapshot=snapshot)))
    start(app)
    try:
        if snapshot:
            deadline = time.monotonic() + 10
            while not service(app).snapshot.ready:
                assert time.monotonic() < deadline, "the snapshot never loaded"
                time.sleep(0.05)
        client = app.test_client()
        assert post(client, directory_fetch("vm"), auth=basic(own["vm"])).status_code == 200
        assert post(client, directory_fetch("vm"), auth=basic(own["fs2"])).status_code == 403
        assert post(client, directory_fetch("fs2"), auth=basic(own["vm"])).status_code == 403
        assert post(client, directory_fetch("vm"), auth=basic("vm:guess")).status_code == 401
        assert service(app).snapshot.ready is snapshot
    finally:
        stop(app)
