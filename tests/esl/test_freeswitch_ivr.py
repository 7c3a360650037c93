"""End to end with a real FreeSWITCH: a baresip phone calls an IVR, a digit is pressed, the IVR
transfers the call to another phone, the call hangs up and its CDR is stored once.

Needs `freeswitch` (on PATH or FREESWITCH_BIN) and `baresip`; skipped otherwise. The digit is
injected on the caller's channel with `uuid_recv_dtmf`, which FreeSWITCH delivers to the IVR
exactly as an RFC 2833 digit from the phone.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from freeswitch_harness import BARESIP, FREESWITCH, free_port, phone, running_freeswitch, wait_for
from werkzeug.serving import make_server

from controller import provisioning
from controller.config import Settings

pytestmark = pytest.mark.freeswitch

SCRIPT = '''
from esl_workers.ivr import ivr


@ivr("test-menu")
def menu(session):
    session.answer()
    choice = session.play_and_get_digits("tone_stream://%(200,100,440)", max_digits=1, tries=3,
                                         timeout_ms=8000, regex="\\\\d", var="fsfarm_test_choice")
    if choice == "2":
        session.transfer("1002")
    else:
        session.hangup()
'''


@pytest.mark.skipif(not FREESWITCH, reason="no freeswitch binary (PATH or FREESWITCH_BIN)")
@pytest.mark.skipif(not BARESIP, reason="no baresip (Debian baresip-core)")
def test_baresip_call_into_an_ivr_digit_transfer_and_cdr(db: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from controller.api import create_app
    from esl_workers.inbound import WorkerConfig, start_workers
    from esl_workers.ivr import serve_ivr

    ivr_port = free_port()
    monkeypatch.setenv("FSFARM_IVR_PORT", str(ivr_port))
    settings = Settings(database_url=None, state_dir=tmp_path, embedded_pg_port=0, xmlcurl_user="freeswitch",
                        xmlcurl_password="s3cret", controller_address="127.0.0.1")
    app = create_app(db, settings)
    http_port = free_port()
    server = make_server("127.0.0.1", http_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    sip_port, esl_port = free_port(2), free_port()
    node = provisioning.add_node(db, {"name": "fstest", "switchname": f"fsfarm-test-{sip_port}",
                                      "sip_address": f"127.0.0.1:{sip_port}", "esl_address": f"127.0.0.1:{esl_port}",
                                      "esl_password": "ClueCon", "rtp_port_min": 31000, "rtp_port_max": 31999})
    provisioning.add_tenant(db, {"domain": "acme.test"})
    passwords = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
    for ext, password in passwords.items():
        provisioning.add_child(db, "users", "acme.test", {"extension": ext, "password": password, "voicemail": False})
    provisioning.add_child(db, "ivrs", "acme.test", {"name": "test-menu", "extension": "5000"})
    scripts = tmp_path / "ivr"
    scripts.mkdir()
    (scripts / "test_menu.py").write_text(SCRIPT)
    ivr_server = serve_ivr(db, settings, scripts, host="127.0.0.1", port=ivr_port)
    workers = start_workers(db, settings, WorkerConfig(spool_dir=tmp_path / "spool", heartbeat_interval=1.0))
    phones: list[subprocess.Popen[bytes]] = []
    try:
        with running_freeswitch(node, f"http://127.0.0.1:{http_port}/xmlcurl", tmp_path) as esl:
            phones.append(phone(tmp_path, "1002", passwords["1002"], sip_port, []))
            phones.append(phone(tmp_path, "1001", passwords["1001"], sip_port, []))
            wait_for(lambda: esl.api("sofia status profile internal reg").count("acme.test") >= 2, 30,
                       "both phones registered")
            # 1001's phone answers, and its call runs the tenant's dialplan for 5000: the IVR socket.
            esl.api("originate {origination_caller_id_number=1001}user/1001@acme.test 5000 XML acme.test")
            channel = wait_for(lambda: next((row["uuid"] for row in json.loads(
                esl.api("show channels as json") or "{}").get("rows", []) if row.get("dest") == "5000"), None),
                20, "the call to reach the IVR")
            wait_for(lambda: "fsfarm_ivr" in esl.api(f"uuid_dump {channel}"), 10, "the IVR to take the call")
            esl.api(f"uuid_recv_dtmf {channel} 2")
            wait_for(lambda: "1 total" in esl.api("show calls count"), 20, "the transfer to 1002 to be bridged")
            esl.api("hupall NORMAL_CLEARING")
            cdrs = wait_for(lambda: [r for r in _rows(db, "SELECT * FROM esl_cdrs")
                                       if r["destination"] in ("5000", "1002")], 20, "the CDRs")
            assert all(r["tenant_id"] is not None for r in cdrs)
            assert len({r["channel_uuid"] for r in cdrs}) == len(cdrs)  # exactly once per leg
    finally:
        for p in phones:
            p.terminate()
        workers.stop()
        ivr_server.stop()
        server.shutdown()


def _rows(db: Any, query: str) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        return conn.execute(query).fetchall()
