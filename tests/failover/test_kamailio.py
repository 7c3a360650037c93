"""Kamailio in front of the farm: each tenant's calls reach the node its tenant is placed on."""

from __future__ import annotations

import time

from controller import provisioning
from tests.failover.chain import green_wait
from tests.failover.sip_peers import SipNode, invite


def test_routes_by_domain_and_follows_placement(db, kamailio_factory):
    fs1, fs2 = SipNode("fs1"), SipNode("fs2")
    try:
        provisioning.add_node(
            db, {"name": "fs1", "sip_address": fs1.address, "esl_address": "127.0.0.1:1", "esl_password": "x"}
        )
        provisioning.add_node(
            db, {"name": "fs2", "sip_address": fs2.address, "esl_address": "127.0.0.1:1", "esl_password": "x"}
        )
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        provisioning.add_tenant(db, {"domain": "beta.example", "pinned_node": "fs2"})
        provisioning.add_child(db, "users", "beta.example", {"extension": "2001", "password": "pw-2001-x"})
        provisioning.add_child(
            db, "numbers", "beta.example", {"number": "+15550002", "target_type": "user", "target": "2001"}
        )
        kam = kamailio_factory()
        assert set(kam.control.reload()) == {"acme.example", "beta.example"}
        assert green_wait(lambda: invite(kam.address, "1001", "acme.example")[1] == "fake-fs1")
        assert invite(kam.address, "2001", "beta.example")[1] == "fake-fs2"
        assert invite(kam.address, "2001", "unknown.example")[0] == 404
        # A carrier's INVITE to the DID (domain is the proxy's address) reaches the DID's tenant.
        assert invite(kam.address, "+15550002", "127.0.0.1")[1] == "fake-fs2"
        assert invite(kam.address, "15550002", "127.0.0.1")[1] == "fake-fs2"

        # Move acme to fs2: after the reload Kamailio sends it there.
        provisioning.update_tenant(db, "acme.example", {"pinned_node": "fs2"})
        kam.control.reload()
        assert invite(kam.address, "1001", "acme.example")[1] == "fake-fs2"
    finally:
        fs1.stop()
        fs2.stop()


def test_crashed_node_calls_land_on_the_spare(db, kamailio_factory):
    """Kill a node: the next INVITE for its tenant is answered by the spare; measure how fast."""
    from controller.failover import FailoverLoop
    from controller.stores import failovers, nodes

    peers = {name: SipNode(name) for name in ("fs1", "fs2", "spare1", "spare2")}
    try:
        for name, peer in peers.items():
            provisioning.add_node(
                db,
                {
                    "name": name,
                    "sip_address": peer.address,
                    "esl_address": "127.0.0.1:1",
                    "esl_password": "x",
                    "spare": name.startswith("spare"),
                },
            )
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        provisioning.add_tenant(db, {"domain": "beta.example", "pinned_node": "fs2"})
        kam = kamailio_factory()
        kam.control.reload()
        loop = FailoverLoop(db, controller_id="test", kamailio=kam.control)
        assert green_wait(lambda: invite(kam.address, "1001", "acme.example")[1] == "fake-fs1")

        # Crash: the SIP side goes silent and the ESL watcher sees a closed socket and a refused reconnect.
        killed = time.monotonic()
        peers["fs1"].stop()
        with db.transaction() as conn:
            fs1 = nodes.get(conn, "fs1")
            assert fs1 is not None
            nodes.set_health(conn, fs1.id, "down", "ESL socket closed, reconnect refused")
        sentences = []
        answered = None
        while time.monotonic() - killed < 10:
            sentences.append(loop.run_cycle())
            code, server, _ = invite(kam.address, "1001", "acme.example", timeout=0.5)
            if code == 200 and server == "fake-spare1":
                answered = time.monotonic() - killed
                break
        assert answered is not None, sentences
        print(f"crash -> first 200 OK from the spare: {answered * 1000:.0f} ms")
        assert any("node fs1" in s and "spare spare1" in s for s in sentences)
        with db.transaction() as conn:
            [row] = failovers.for_node(conn, fs1.id)
        assert row.kamailio.startswith("reloaded")

        # A silent failure: fs2 only misses heartbeats (suspect); Kamailio's failing pings confirm it.
        peers["fs2"].stop()
        with db.transaction() as conn:
            fs2 = nodes.get(conn, "fs2")
            assert fs2 is not None
            nodes.set_health(conn, fs2.id, "suspect", "3 heartbeats missed")
        # Until Kamailio notices, the tenant has no live node: callers are told to retry.
        seen = []
        reply = green_wait(
            lambda: (
                seen.append(r := invite(kam.address, "2001", "beta.example", timeout=0.5))
                or (r if r[0] == 503 and "retry-after" in r[2] else None)
            ),
            timeout=10,
        )
        assert reply, [(c, s) for c, s, _ in seen]
        assert reply[2]["retry-after"] == "5"
        assert "Kamailio's OPTIONS pings fail too" in green_wait(
            lambda: s if "node fs2" in (s := loop.run_cycle()) else None, timeout=10
        )
        assert green_wait(lambda: invite(kam.address, "2001", "beta.example", timeout=0.5)[1] == "fake-spare2")
    finally:
        for peer in peers.values():
            if peer.running:
                peer.stop()


def test_placement_changes_reach_kamailio_without_a_manual_reload(db, dsn, kamailio_factory):
    from controller.kamailio.sync import KamailioSync

    fs1 = SipNode("fs1")
    kam = kamailio_factory()
    sync = KamailioSync(dsn, kam.control).start()
    try:
        provisioning.add_node(
            db, {"name": "fs1", "sip_address": fs1.address, "esl_address": "127.0.0.1:1", "esl_password": "x"}
        )
        provisioning.add_tenant(db, {"domain": "new.example"})
        assert green_wait(lambda: invite(kam.address, "1001", "new.example", timeout=0.5)[1] == "fake-fs1"), sync.status
        assert green_wait(lambda: sync.status == "reloaded; Kamailio routes 1 domains as placed")
        provisioning.remove_tenant(db, "new.example")
        assert green_wait(lambda: invite(kam.address, "1001", "new.example", timeout=0.5)[0] == 404)
    finally:
        sync.stop()
        fs1.stop()


def test_unreachable_kamailio_is_reported_and_retried(dsn, db):
    from controller.kamailio.control import KamailioControl
    from controller.kamailio.sync import KamailioSync

    sync = KamailioSync(dsn, KamailioControl("/nonexistent/kamailio_ctl")).start()
    try:
        provisioning.add_tenant(db, {"domain": "stored.example"})
        assert green_wait(lambda: sync.status.startswith("reload failed"))
        # The placement is stored regardless; Kamailio gets it when it is back.
        assert provisioning.placement_overview(db)["tenants"][0]["tenant"] == "stored.example"
    finally:
        sync.stop()


def test_a_call_in_flight_to_a_node_that_dies_is_sent_to_the_spare_once_its_tenant_moved(db, kamailio_factory):
    """No answer at all from the node, and meanwhile a failover: Kamailio sends the INVITE to the new node."""
    import threading

    from controller.failover import FailoverLoop
    from controller.stores import nodes

    peers = {name: SipNode(name) for name in ("fs1", "spare1")}
    try:
        for name, peer in peers.items():
            provisioning.add_node(
                db,
                {
                    "name": name,
                    "sip_address": peer.address,
                    "esl_address": "127.0.0.1:1",
                    "esl_password": "x",
                    "spare": name == "spare1",
                },
            )
        provisioning.add_tenant(db, {"domain": "acme.example"})
        kam = kamailio_factory()
        kam.control.reload()
        assert green_wait(lambda: invite(kam.address, "1001", "acme.example", timeout=0.5)[1] == "fake-fs1")

        peers["fs1"].silent = True  # it dies with the next INVITE in flight: received, never answered
        seen = len(peers["fs1"].invites())
        replies: list[tuple[int, str, dict[str, str]]] = []
        caller = threading.Thread(target=lambda: replies.append(invite(kam.address, "1001", "acme.example", 20)))
        caller.start()
        assert green_wait(lambda: len(peers["fs1"].invites()) > seen, timeout=10)
        with db.transaction() as conn:
            fs1 = nodes.get(conn, "fs1")
            assert fs1 is not None
            nodes.set_health(conn, fs1.id, "down", "ESL socket closed, reconnect refused")
        assert "spare spare1" in FailoverLoop(db, controller_id="test", kamailio=kam.control).run_cycle()
        caller.join(30)
        assert replies and replies[0][:2] == (200, "fake-spare1")  # not the 408 the dead node's timeout gave
        assert peers["spare1"].invites()
    finally:
        for peer in peers.values():
            if peer.running:
                peer.stop()


def test_kamailio_is_synced_again_after_its_listener_reconnects(db, dsn, kamailio_factory):
    """Notices sent while the sync was away are lost: it reloads once it listens again, without any new notice."""
    import psycopg

    from controller.kamailio.sync import KamailioSync

    provisioning.add_tenant(db, {"domain": "acme.example"})
    kam = kamailio_factory()
    sync = KamailioSync(f"{dsn} application_name=kamailio-sync-test", kam.control).start()
    try:
        assert green_wait(lambda: sync.reloads == 1), sync.status
        with psycopg.connect(dsn, autocommit=True) as conn:
            [(cut,)] = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'kamailio-sync-test' AND query LIKE 'LISTEN%'"
            ).fetchall()
        assert cut
        assert green_wait(lambda: sync.reloads >= 2, timeout=20), sync.status
    finally:
        sync.stop()


def test_an_unreadable_notice_makes_kamailio_reload(db, dsn, kamailio_factory):
    """It may have been a routing change: the safe reading is to reload."""
    import psycopg

    from controller.kamailio.sync import KamailioSync
    from controller.stores.changes import CHANNEL

    kam = kamailio_factory()
    sync = KamailioSync(dsn, kam.control).start()
    try:
        assert green_wait(lambda: sync.reloads == 1), sync.status
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "{garbled"))
        assert green_wait(lambda: sync.reloads >= 2), sync.status
    finally:
        sync.stop()
