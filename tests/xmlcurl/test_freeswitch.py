"""End to end with a real FreeSWITCH: bootstrap it, let it take everything from a test controller, then
register two baresip phones, complete a call between them and put both into a conference.

Needs `freeswitch` (on PATH or FREESWITCH_BIN) and `baresip` (Debian baresip-core); skipped otherwise.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freeswitch_harness import BARESIP, FREESWITCH, free_port, phone, running_freeswitch, wait_for
from werkzeug.serving import make_server

from controller import provisioning
from controller.domain import a1_hash
from controller.stores import users

pytestmark = pytest.mark.freeswitch


@pytest.fixture
def controller_url(app: Any) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/xmlcurl"
    server.shutdown()


@pytest.mark.skipif(not FREESWITCH, reason="no freeswitch binary (PATH or FREESWITCH_BIN)")
@pytest.mark.skipif(not BARESIP, reason="no baresip (Debian baresip-core)")
def test_phones_register_call_each_other_and_meet_in_a_conference(db: Any, controller_url: str,
                                                                   tmp_path: Path) -> None:
    sip_port, esl_port = free_port(2), free_port()
    switchname = f"fsfarm-test-{sip_port}"
    node = provisioning.add_node(db, {"name": "fstest", "switchname": switchname,
                                      "sip_address": f"127.0.0.1:{sip_port}", "esl_address": f"127.0.0.1:{esl_port}",
                                      "esl_password": "ClueCon", "rtp_port_min": 30000, "rtp_port_max": 30999})
    provisioning.add_tenant(db, {"domain": "acme.test"})
    passwords = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
    for ext, password in passwords.items():
        provisioning.add_child(db, "users", "acme.test", {"extension": ext, "password": password, "voicemail": False})
    with db.transaction() as conn:
        assert users.store.get(conn, provisioning.get_tenant(conn, "acme.test").id, "1001").a1_hash == \
            a1_hash("1001", "acme.test", passwords["1001"])
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3000", "profile": "narrowband"})

    phones: list[subprocess.Popen[bytes]] = []
    with running_freeswitch(node, controller_url, tmp_path) as esl:
        try:
            phones.append(phone(tmp_path, "1002", passwords["1002"], sip_port, []))
            phones.append(phone(tmp_path, "1001", passwords["1001"], sip_port, []))
            wait_for(lambda: esl.api("sofia status profile internal reg").count("acme.test") >= 2, 30,
                     "both phones registered with their a1-hash")

            # 1001 calls 1002, which answers automatically: the call is bridged inside acme.test
            esl.api("originate {origination_caller_id_number=1001}user/1001@acme.test &bridge(user/1002@acme.test)")
            wait_for(lambda: "1 total" in esl.api("show calls count") or "2 total" in esl.api("show calls count"), 20,
                     "a bridged call between 1001 and 1002")
            esl.api("hupall NORMAL_CLEARING")
            wait_for(lambda: "0 total" in esl.api("show channels count"), 20, "the call to hang up")

            # both phones dial the room through the dialplan the controller serves
            for ext in ("1001", "1002"):
                esl.api(f"originate user/{ext}@acme.test 3000 XML acme.test")
            wait_for(lambda: esl.api("conference 3000-acme.test list count").strip() == "2", 20,
                     "two members in conference 3000-acme.test")
            esl.api("hupall NORMAL_CLEARING")
        finally:
            for p in phones:
                p.terminate()


