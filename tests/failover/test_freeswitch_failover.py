"""The kill test with a real FreeSWITCH as the tenant's node (skipped where no binary exists).

FreeSWITCH runs from fsfarm's bootstrap config behind a real Kamailio; the ESL watcher watches it.
It is killed with SIGKILL: the next INVITE for its tenant must be answered by the spare.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import gevent
import pytest
from freeswitch_harness import FREESWITCH, free_port, running_freeswitch
from werkzeug.serving import make_server

from controller import provisioning
from controller.config import Settings
from controller.failover import FailoverLoop
from esl_workers.inbound import WorkerConfig, start_workers
from esl_workers.recovery import AFTER_MOVE
from tests.failover.chain import EslNode, green_wait, in_thread
from tests.failover.sip_peers import SipNode, invite

pytestmark = pytest.mark.freeswitch


@pytest.mark.skipif(not FREESWITCH, reason="no freeswitch binary (PATH or FREESWITCH_BIN)")
def test_killed_freeswitch_new_calls_reach_the_spare(db: Any, tmp_path: Path, kamailio_factory: Any,
                                                      monkeypatch: Any) -> None:
    from controller.api import create_app

    settings = Settings(database_url=None, state_dir=tmp_path, embedded_pg_port=0, xmlcurl_user="freeswitch",
                        xmlcurl_password="s3cret", controller_address="127.0.0.1")
    kam = kamailio_factory()
    monkeypatch.setenv("FSFARM_SIP_PROXIES", "127.0.0.1")
    app = create_app(db, settings)
    http_port = free_port()
    server = make_server("127.0.0.1", http_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    sip_port, esl_port = free_port(2), free_port()
    fs_node = provisioning.add_node(db, {"name": "fs1", "switchname": f"fsfarm-kill-{sip_port}",
                                         "sip_address": f"127.0.0.1:{sip_port}",
                                         "esl_address": f"127.0.0.1:{esl_port}", "esl_password": "ClueCon",
                                         "rtp_port_min": 32000, "rtp_port_max": 32999})
    spare_sip, spare_esl = SipNode("spare1"), EslNode("spare1")
    provisioning.add_node(db, {"name": "spare1", "sip_address": spare_sip.address,
                               "esl_address": spare_esl.address, "esl_password": "ClueCon", "spare": True})
    provisioning.add_tenant(db, {"domain": "acme.test"})
    workers = start_workers(db, settings, WorkerConfig(spool_dir=tmp_path / "spool", heartbeat_interval=1.0,
                                                        backoff_max=1.0))
    loop = FailoverLoop(db, kamailio=kam.control, after_move=AFTER_MOVE)
    looper = gevent.spawn(lambda: [(in_thread(loop.run_cycle), gevent.sleep(0.2)) for _ in iter(int, 1)])
    try:
        with running_freeswitch(fs_node, f"http://127.0.0.1:{http_port}/xmlcurl", tmp_path) as esl:
            kam.control.reload()
            first = green_wait(lambda: in_thread(invite, kam.address, "1001", "acme.test", 1.0), 20)
            assert first and first[0] >= 200 and "fake" not in first[1]  # a real FreeSWITCH answered
            killed = time.monotonic()
            assert esl.process is not None
            esl.process.send_signal(signal.SIGKILL)

            def spare_answers() -> bool:
                code, server_name, _ = in_thread(invite, kam.address, "1001", "acme.test", 0.3)
                return code == 200 and server_name == "fake-spare1"

            assert green_wait(spare_answers, 20, step=0.05)
            print(f"FreeSWITCH killed -> first call answered by the spare: {time.monotonic() - killed:.2f} s")
    finally:
        looper.kill()
        workers.stop()
        spare_sip.stop()
        spare_esl.crash()
        server.shutdown()
