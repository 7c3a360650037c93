"""Kill a node for real: the ESL watcher notices, one failover runs, Kamailio sends new calls to the spare."""

from __future__ import annotations

import time

import gevent

from controller import provisioning
from controller.failover import FailoverLoop
from controller.stores import failovers, nodes
from esl_workers.inbound import WorkerConfig, start_workers
from tests.failover.chain import EslNode, green_wait, in_thread
from tests.failover.sip_peers import SipNode, invite


def build_farm(db):  # type: ignore[no-untyped-def]
    sip = {name: SipNode(name) for name in ("fs1", "fs2", "spare1")}
    esl = {name: EslNode(name) for name in sip}
    for name in sip:
        provisioning.add_node(
            db,
            {
                "name": name,
                "sip_address": sip[name].address,
                "esl_address": esl[name].address,
                "esl_password": "ClueCon",
                "spare": name == "spare1",
            },
        )
    provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
    provisioning.add_tenant(db, {"domain": "beta.example", "pinned_node": "fs2"})
    return sip, esl


def run_failover(db, tmp_path, kamailio_factory, how: str) -> float:  # type: ignore[no-untyped-def]

    sip, esl = build_farm(db)
    workers = start_workers(
        db,
        WorkerConfig(spool_dir=tmp_path / "spool", heartbeat_interval=1.0, backoff_max=1.0, node_refresh_interval=1.0),
    )
    kam = kamailio_factory()
    kam.control.reload()
    loop = FailoverLoop(db, controller_id="chain", kamailio=kam.control)
    sentences: list[str] = []

    def failover_loop() -> None:
        while True:
            sentence = loop.run_cycle()
            if not sentences or sentences[-1] != sentence:
                sentences.append(sentence)
            gevent.sleep(0.2)

    looper = gevent.spawn(failover_loop)
    try:
        with db.transaction() as conn:
            assert green_wait(lambda: all(n.health == "up" for n in nodes.list_all(conn)), 15), [
                (n.name, n.health, n.health_reason) for n in nodes.list_all(conn)
            ]
        assert in_thread(invite, kam.address, "1001", "acme.example")[1] == "fake-fs1"

        killed = time.monotonic()
        sip["fs1"].stop()
        if how == "crash":
            esl["fs1"].crash()
        else:
            esl["fs1"].hang()

        def spare_answers() -> bool:
            code, server, _ = in_thread(invite, kam.address, "1001", "acme.example", 0.3)
            return code == 200 and server == "fake-spare1"

        assert green_wait(spare_answers, 20, step=0.05), sentences
        elapsed = time.monotonic() - killed
        # beta was never touched, and the decision was taken once.
        assert in_thread(invite, kam.address, "2001", "beta.example")[1] == "fake-fs2"
        with db.transaction() as conn:
            fs1 = nodes.get(conn, "fs1")
            assert fs1 is not None
            assert len(failovers.for_node(conn, fs1.id)) == 1
        assert sum("node fs1:" in s for s in sentences) == 1, sentences
        return elapsed
    finally:
        looper.kill()
        workers.stop()
        for peer in sip.values():
            if peer.running:
                peer.stop()
        for node in esl.values():
            node.crash()


def test_crash_new_calls_reach_the_spare(db, tmp_path, kamailio_factory):
    elapsed = run_failover(db, tmp_path, kamailio_factory, "crash")
    print(f"crash -> first call answered by the spare: {elapsed:.2f} s")


def test_silent_failure_new_calls_reach_the_spare(db, tmp_path, kamailio_factory):
    elapsed = run_failover(db, tmp_path, kamailio_factory, "hang")
    print(f"hang -> first call answered by the spare: {elapsed:.2f} s")


def test_joined_node_takes_tenants_after_its_first_heartbeat(db, tmp_path):
    from controller.app.farm import Farm
    from controller.config import EslSettings, Settings
    from controller.join import join

    provisioning.add_tenant(db, {"domain": "waiting.example"})
    assert provisioning.placement_overview(db)["tenants"][0]["node"] is None
    token, _ = provisioning.create_token(db, "node-join")
    node_esl = EslNode("fs9")
    joined, password, _ = join(
        db,
        token,
        {"name": "fs9", "switchname": "fs9", "sip_address": "127.0.0.1:5099", "esl_address": node_esl.address},
    )
    assert joined.admin_state == "pending"
    node_esl.password = password  # the node writes the password it was given into event_socket.conf
    settings = Settings(state_dir=tmp_path, esl=EslSettings(spool_dir=tmp_path / "spool", heartbeat_interval=1.0))
    workers = Farm(settings, db).esl_workers()  # as `fsfarm up` and `fsfarm workers` build them
    try:
        assert green_wait(lambda: provisioning.placement_overview(db)["tenants"][0]["node"] == "fs9", 15)
        with db.transaction() as conn:
            node = nodes.get(conn, "fs9")
            assert node is not None and node.admin_state == "active" and node.health == "up"
    finally:
        workers.stop()
        node_esl.crash()
