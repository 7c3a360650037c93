"""Draining a node: its tenants move now, its calls in progress stay, and it is disabled after the last one."""

from __future__ import annotations

from typing import Any

import pytest

from controller import provisioning
from controller.app import tasks
from controller.app.farm import Farm
from controller.config import Settings
from controller.database import Database
from controller.drain import DrainLoop
from controller.stores import live_calls, nodes
from tests.failover.test_failover import farm, mark, where


def call_on(db: Database, node: str, channel: str) -> None:
    with db.transaction() as conn:
        found = nodes.get(conn, node)
        assert found is not None
        live_calls.upsert(conn, found.id, live_calls.LiveCall(channel_uuid=channel, state="answered"), None)


def hang_up(db: Database, node: str, channel: str) -> None:
    with db.transaction() as conn:
        found = nodes.get(conn, node)
        assert found is not None
        live_calls.remove(conn, found.id, channel)


def admin_state(db: Database, node: str) -> str:
    with db.transaction() as conn:
        found = nodes.get(conn, node)
        assert found is not None
        return found.admin_state


def test_drain_loop_disables_the_node_only_after_its_last_call(db: Database) -> None:
    farm(db)
    mark(db, "fs1", "up")
    call_on(db, "fs1", "leg-a")
    call_on(db, "fs1", "leg-b")
    provisioning.drain_node(db, "fs1")
    assert "fs1" not in where(db).values()  # its tenants moved at once
    loop = DrainLoop(db, live_calls=live_calls.count_on_node)
    assert loop.run_cycle() == "node fs1 is draining: 2 call leg(s) still up on it"
    hang_up(db, "fs1", "leg-a")
    hang_up(db, "fs1", "leg-b")
    assert loop.run_cycle() == "node fs1 is drained (its last call ended); disabled"
    assert admin_state(db, "fs1") == "disabled"
    assert loop.run_cycle() == "no node is draining"


def test_a_draining_node_that_died_is_disabled_whatever_calls_it_had(db: Database) -> None:
    farm(db)
    call_on(db, "fs1", "leg-a")
    provisioning.drain_node(db, "fs1")
    mark(db, "fs1", "down")
    loop = DrainLoop(db, live_calls=live_calls.count_on_node)
    assert loop.run_cycle() == "node fs1 is drained (it is down); disabled"


def test_drain_task_waits_for_the_calls_counted_in_esl_live_calls(db: Database, monkeypatch: Any) -> None:
    farm(db)
    monkeypatch.setattr(tasks, "_farm", Farm(Settings.from_env(), db))
    call_on(db, "fs1", "leg-a")
    done = tasks.drain("fs1", deadline_seconds=1.0)
    assert done == "node fs1 drained and disabled (1 call(s) still up at the deadline)"


@pytest.mark.parametrize("with_spare", [True, False])
def test_draining_the_only_active_node_hands_its_tenants_to_a_spare(db: Database, with_spare: bool) -> None:
    provisioning.add_node(
        db, {"name": "fs1", "sip_address": "fs1.farm", "esl_address": "fs1.farm", "esl_password": "x"}
    )
    if with_spare:
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
    provisioning.drain_node(db, "fs1")
    with db.transaction() as conn:
        spare = nodes.get(conn, "spare1")
    if with_spare:
        assert where(db) == {"acme.example": "spare1"}
        assert spare is not None and not spare.spare
    else:
        assert where(db) == {"acme.example": None}  # nowhere to go: the operator asked for it
