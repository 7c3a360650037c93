"""Kamailio in front of the farm: each tenant's calls reach the node its tenant is placed on."""

from __future__ import annotations

import time

from controller import provisioning
from tests.failover.sip_peers import SipNode, invite


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_routes_by_domain_and_follows_placement(db, kamailio_factory):
    fs1, fs2 = SipNode("fs1"), SipNode("fs2")
    try:
        provisioning.add_node(db, {"name": "fs1", "sip_address": fs1.address, "esl_address": "127.0.0.1:1",
                                   "esl_password": "x"})
        provisioning.add_node(db, {"name": "fs2", "sip_address": fs2.address, "esl_address": "127.0.0.1:1",
                                   "esl_password": "x"})
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        provisioning.add_tenant(db, {"domain": "beta.example", "pinned_node": "fs2"})
        provisioning.add_child(db, "users", "beta.example", {"extension": "2001", "password": "pw-2001-x"})
        provisioning.add_child(db, "numbers", "beta.example", {"number": "+15550002", "target_type": "user",
                                                              "target": "2001"})
        kam = kamailio_factory()
        assert set(kam.control.reload()) == {"acme.example", "beta.example"}
        assert wait_for(lambda: invite(kam.address, "1001", "acme.example")[1] == "fake-fs1")
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
