"""Deciding a node is dead once, and moving its tenants and rooms to the spare."""

from __future__ import annotations

import json
import threading
import uuid

from controller import provisioning
from controller.failover import FailoverLoop, choose_spare, dead_nodes, execute, incident_of
from controller.stores import changes, failovers, nodes, placements


def farm(db, *, spares: int = 1) -> None:  # type: ignore[no-untyped-def]
    for name in ("fs1", "fs2"):
        provisioning.add_node(
            db, {"name": name, "sip_address": f"{name}.farm:5060", "esl_address": f"{name}.farm", "esl_password": "x"}
        )
    for i in range(spares):
        provisioning.add_node(
            db,
            {
                "name": f"spare{i + 1}",
                "sip_address": f"spare{i + 1}.farm",
                "esl_address": f"spare{i + 1}.farm",
                "esl_password": "x",
                "spare": True,
            },
        )
    provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
    provisioning.add_tenant(db, {"domain": "beta.example", "pinned_node": "fs2"})
    provisioning.add_tenant(db, {"domain": "gamma.example"})
    provisioning.add_child(db, "conferences", "acme.example", {"number": "3000"})


def where(db) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {t["tenant"]: t["node"] for t in provisioning.placement_overview(db)["tenants"]}


def mark(db, name: str, health: str, reason: str = "test") -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as conn:
        node = nodes.get(conn, name)
        assert node is not None
        nodes.set_health(conn, node.id, health, reason)


def test_dead_node_moves_to_the_spare_once(db):
    farm(db)
    before = where(db)
    loop = FailoverLoop(db, controller_id="c1")
    assert loop.run_cycle() == "all 3 node(s) are alive or spare; nothing to do"

    mark(db, "fs1", "down", "3 heartbeats missed, reconnect refused")
    sentence = loop.run_cycle()
    assert sentence.startswith("node fs1: the ESL watcher declared it down (3 heartbeats missed")
    assert "spare spare1" in sentence

    after = where(db)
    for tenant, node in before.items():
        assert after[tenant] == ("spare1" if node == "fs1" else node)  # only fs1's tenants moved
    rooms = provisioning.placement_overview(db)["conferences"]
    assert rooms[0]["node"] == "spare1"
    with db.transaction() as conn:
        fs1 = nodes.get(conn, "fs1")
        assert fs1 is not None
        [row] = failovers.for_node(conn, fs1.id)
        assert placements.tenants_on_node(conn, fs1.id) == []
    assert row.state == "done" and row.tenants_moved == sum(1 for n in before.values() if n == "fs1")
    assert row.rooms_total == 1

    # The next cycles see the same death and do nothing more.
    generation = provisioning.placement_overview(db)["generation"]
    assert "nothing to do" in loop.run_cycle()
    assert provisioning.placement_overview(db)["generation"] == generation


def test_two_controllers_decide_once(db):
    farm(db)
    mark(db, "fs1", "down")
    loops = [FailoverLoop(db, controller_id=f"c{i}") for i in range(4)]
    sentences: list[str] = []
    barrier = threading.Barrier(len(loops))

    def run(loop: FailoverLoop) -> None:
        barrier.wait()
        sentences.append(loop.run_cycle())

    threads = [threading.Thread(target=run, args=(loop,)) for loop in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.transaction() as conn:
        fs1 = nodes.get(conn, "fs1")
        assert fs1 is not None
        assert len(failovers.for_node(conn, fs1.id)) == 1
    assert sum("moving its work" in s for s in sentences) == 1


def test_execute_again_moves_nothing_twice(db):
    farm(db)
    mark(db, "fs1", "down")
    queued: list = []
    FailoverLoop(db, dispatch=queued.append).run_cycle()
    assert len(queued) == 1
    first = execute(db, queued[0])
    generation = provisioning.placement_overview(db)["generation"]
    again = execute(db, queued[0])
    assert again.state == first.state == "done"
    assert provisioning.placement_overview(db)["generation"] == generation


def test_without_a_spare_tenants_spread_over_survivors(db):
    farm(db, spares=0)
    mark(db, "fs1", "down")
    sentence = FailoverLoop(db).run_cycle()
    assert "no spare is free" in sentence
    assert set(where(db).values()) == {"fs2"}


def test_recovered_node_rejoins_as_spare_without_ping_pong(db):
    farm(db)
    mark(db, "fs1", "down")
    loop = FailoverLoop(db)
    loop.run_cycle()
    placed = where(db)
    mark(db, "fs1", "up", "heartbeats again")
    assert "rejoins as a spare" in loop.run_cycle()
    assert where(db) == placed
    with db.transaction() as conn:
        fs1 = nodes.get(conn, "fs1")
        assert fs1 is not None and fs1.spare
    # It flaps down again: it hosts nothing, so nothing moves.
    mark(db, "fs1", "down")
    assert "nothing to do" in loop.run_cycle()
    assert where(db) == placed


def test_pure_rules():
    from controller.domain import Node

    def node(name: str, **kw):  # type: ignore[no-untyped-def]
        import uuid

        base = {
            "name": name,
            "switchname": name,
            "sip_address": f"{name}:5060",
            "esl_address": f"{name}:8021",
            "esl_password": "x",
            "rtp_port_min": 16384,
            "rtp_port_max": 32768,
            "capacity": 10,
        }
        return Node(id=uuid.uuid4(), **{**base, **kw})

    farm_nodes = [
        node("a", health="down"),
        node("b", health="suspect"),
        node("c", health="suspect"),
        node("s1", spare=True, health="unknown"),
        node("s2", spare=True, health="up", capacity=5),
    ]
    dead = dead_nodes(farm_nodes, unreachable_sip={"b:5060"})
    assert [v.node.name for v in dead] == ["a", "b"]  # c is suspect but Kamailio still reaches it
    assert choose_spare(farm_nodes).name == "s2"  # healthy beats bigger-but-unknown


def test_an_idle_survivor_does_not_grab_the_dead_nodes_tenants(db):
    """fs2 hosts nothing; fs1 dies: its tenants go to the spare, not to idle fs2."""
    for name in ("fs1", "fs2"):
        provisioning.add_node(
            db, {"name": name, "sip_address": f"{name}.farm", "esl_address": f"{name}.farm", "esl_password": "x"}
        )
    provisioning.add_node(
        db, {"name": "spare1", "sip_address": "s.farm", "esl_address": "s.farm", "esl_password": "x", "spare": True}
    )
    for i in range(8):
        provisioning.add_tenant(db, {"domain": f"t{i}.example", "pinned_node": "fs1"})
    mark(db, "fs1", "down")
    FailoverLoop(db).run_cycle()
    assert set(where(db).values()) == {"spare1"}


def test_a_node_never_seen_alive_takes_tenants_and_is_never_failed_over(db):
    provisioning.add_node(
        db, {"name": "fs1", "sip_address": "fs1.farm", "esl_address": "fs1.farm", "esl_password": "x"}
    )
    provisioning.add_node(
        db,
        {
            "name": "spare1",
            "sip_address": "spare1.farm",
            "esl_address": "spare1.farm",
            "esl_password": "x",
            "spare": True,
        },
    )
    provisioning.add_tenant(db, {"domain": "acme.example"})
    mark(db, "fs1", "unknown", "never seen alive yet: ESL connection refused")
    loop = FailoverLoop(db)
    assert "nothing to do" in loop.run_cycle()
    assert where(db) == {"acme.example": "fs1"}
    with db.transaction() as conn:
        assert failovers.for_node(conn, nodes.get(conn, "fs1").id) == []


def test_tenants_left_on_no_node_are_placed_when_a_node_comes_back_and_it_stays_active(db):
    provisioning.add_node(
        db, {"name": "fs1", "sip_address": "fs1.farm", "esl_address": "fs1.farm", "esl_password": "x"}
    )
    provisioning.add_tenant(db, {"domain": "acme.example"})
    mark(db, "fs1", "down")
    loop = FailoverLoop(db)
    loop.run_cycle()  # the only node died: nowhere to move its tenant
    provisioning.add_tenant(db, {"domain": "beta.example"})  # a write while it is down places nothing
    assert where(db) == {"acme.example": None, "beta.example": None}
    mark(db, "fs1", "up", "heartbeats again")
    sentence = loop.run_cycle()
    assert "were on no node; placed them" in sentence and "spare" not in sentence
    assert where(db) == {"acme.example": "fs1", "beta.example": "fs1"}
    with db.transaction() as conn:
        assert not nodes.get(conn, "fs1").spare  # the farm's only node did not become a spare


def test_a_failover_left_decided_by_a_crash_or_database_blip_is_finished_by_the_next_cycle(db):
    farm(db)
    mark(db, "fs1", "down")
    with db.transaction() as conn:
        fs1, spare = nodes.get(conn, "fs1"), nodes.get(conn, "spare1")
        # What a controller that died between deciding and moving leaves behind.
        failovers.decide(
            conn, uuid.uuid4(), fs1.id, incident_of(fs1), spare.id, "test", "dead-controller", fs1.health_at
        )
    sentence = FailoverLoop(db).run_cycle()
    assert "resumed the unfinished failover of node fs1 (it was left decided)" in sentence, sentence
    assert where(db)["acme.example"] == "spare1"
    with db.transaction() as conn:
        assert [f.state for f in failovers.for_node(conn, fs1.id)] == ["done"]
        assert failovers.unfinished(conn) == []


def test_adding_or_removing_a_mixer_is_announced(db):
    import psycopg

    with psycopg.connect(db.conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        provisioning.add_mixer(
            db,
            {
                "name": "m1",
                "sip_address": "127.0.0.1:5090",
                "control_url": "http://127.0.0.1:5091",
                "control_token": "mixer-token-0123456789",
            },
        )
        provisioning.remove_mixer(db, "m1")
        heard = [json.loads(n.payload)["what"] for n in listener.notifies(timeout=2, stop_after=2)]
    assert heard.count("mixer") == 2, heard


def test_a_dead_node_that_hosts_nothing_is_not_said_to_have_been_handled(db):
    provisioning.add_node(
        db, {"name": "fs1", "sip_address": "fs1.farm", "esl_address": "fs1.farm", "esl_password": "x"}
    )
    provisioning.add_node(
        db, {"name": "fs2", "sip_address": "fs2.farm", "esl_address": "fs2.farm", "esl_password": "x"}
    )
    mark(db, "fs1", "up")
    mark(db, "fs2", "down")  # no tenant was ever placed: nothing was failed over, nothing to claim
    sentence = FailoverLoop(db).run_cycle()
    assert sentence == "node(s) fs2 are down and host no tenant or room; nothing to do"
    with db.transaction() as conn:
        assert failovers.recent(conn) == []
