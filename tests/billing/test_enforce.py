"""The enforcement's commands to the nodes: which leg is cut at which second, on a real PostgreSQL.

The ESL side is recorded where the Enforcer hands a command to a node connection (``send``); the
real-FreeSWITCH tests (tests/freeswitch/test_fs_calls.py) show the same commands cutting real calls.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent

from controller import billing, provisioning
from controller.database import Database
from controller.stores import legs_up
from esl_workers.enforce import Enforcer

NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}


class Recorder:
    """What the Enforcer sent, with the wall-clock time of each command."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []

        self.nodes: list[str] = []

    def __call__(self, node: Any, command: str) -> None:
        self.sent.append((time.time(), command))
        self.nodes.append(node.name)

    def commands(self) -> list[str]:
        return [c for _, c in self.sent]


def farm(db: Database, credit: str) -> tuple[Any, Any]:
    """acme billed a cent a second to 1555..., its tenant account holding ``credit``."""
    node = provisioning.add_node(db, NODE)
    tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
    billing.add_deck(db, {"name": "cents", "currency": "EUR"}, None)
    billing.import_rates(db, "cents", {"csv": "prefix,price_per_minute,connect_fee,increment\n1555,0.60,0,1/1\n"}, None)
    billing.assign_deck(db, "acme.example", {"deck": "cents", "effective_from": "2020-01-01"})
    billing.add_account(db, "acme.example", {"currency": "EUR"})
    billing.add_entry(db, "acme.example", billing.TENANT_ACCOUNT, {"kind": "top-up", "amount": credit})
    return node, tenant


def answer(db: Database, node: Any, tenant: Any, uuid: str, at: datetime) -> Any:
    marks = {billing.BILL_TENANT: str(tenant.id), billing.BILL_USER: "1001", billing.BILL_NUMBER: "15550001"}
    with db.transaction() as conn:
        return billing.leg_answered(conn, node.id, uuid, marks, at)


def settle() -> None:
    gevent.sleep(0)
    gevent.wait(timeout=5)


def test_two_legs_on_sixty_seconds_are_both_scheduled_for_the_thirtieth_second(db: Database) -> None:
    node, tenant = farm(db, "0.60")
    now = datetime.now(UTC)
    account = answer(db, node, tenant, "leg-a", now)
    answer(db, node, tenant, "leg-b", now)
    sent = Recorder()
    assert Enforcer(db, sent).retime(account) == 30
    settle()
    cut = math.floor(now.timestamp()) + 30  # FreeSWITCH bills whole epoch seconds: billsec 30 each, 0.60
    for leg in ("leg-a", "leg-b"):
        assert sent.commands().count(f"sched_del {leg}") == 1
        assert f"sched_hangup {cut} {leg} ALLOTTED_TIMEOUT" in sent.commands()


def test_a_cut_due_in_this_second_is_the_controllers_own_kill_sent_inside_it(db: Database) -> None:
    node, tenant = farm(db, "0.05")
    account = answer(db, node, tenant, "leg-a", datetime.now(UTC) - timedelta(seconds=5))  # 5 s talked: all spent
    sent = Recorder()
    before = time.time()
    assert Enforcer(db, sent).retime(account) == 0
    settle()
    assert sent.commands() == ["uuid_kill leg-a ALLOTTED_TIMEOUT"]  # no sched_hangup that could land late
    at, _ = sent.sent[0]
    # Inside the last second paid for (the one the re-timing ran in), not before its first tenth.
    assert math.floor(before) + 0.1 <= at < math.floor(time.time()) + 1, (before, at)


def test_the_newest_re_timing_is_the_one_the_node_keeps(db: Database) -> None:
    node, tenant = farm(db, "0.60")
    now = datetime.now(UTC)
    account = answer(db, node, tenant, "leg-a", now)
    sent = Recorder()
    enforcer = Enforcer(db, sent)
    assert enforcer.retime(account) == 60
    answer(db, node, tenant, "leg-b", now)  # answers before the first re-timing's commands are out
    assert enforcer.retime(account) == 30
    settle()
    last = [c for c in sent.commands() if c.startswith("sched_hangup") and "leg-a" in c][-1]
    assert last == f"sched_hangup {math.floor(now.timestamp()) + 30} leg-a ALLOTTED_TIMEOUT"


def test_a_leg_that_ended_before_its_commands_went_out_is_left_alone(db: Database) -> None:
    node, tenant = farm(db, "0.60")
    account = answer(db, node, tenant, "leg-a", datetime.now(UTC))
    sent = Recorder()
    enforcer = Enforcer(db, sent)
    enforcer.retime(account)
    enforcer.ended("leg-a")  # its hangup came in first: a kill or a schedule for it now would be noise
    settle()
    assert sent.commands() == []


def test_a_leg_recovered_on_the_spare_is_re_timed_there(db: Database) -> None:
    node, tenant = farm(db, "0.60")
    spare = provisioning.add_node(db, {**NODE, "name": "spare1", "sip_address": "10.0.0.2", "esl_address": "10.0.0.2"})
    account = answer(db, node, tenant, "leg-a", datetime.now(UTC))
    with db.transaction() as conn:  # what the failover's adopt step does once the heir has recovered the leg
        assert legs_up.move(conn, ["leg-a"], spare.id) == [account]
    sent = Recorder()
    Enforcer(db, sent, spawn=lambda fn, *args: fn(*args)).retime(account)
    assert sent.nodes == ["spare1", "spare1"] and sent.commands()[0] == "sched_del leg-a"
