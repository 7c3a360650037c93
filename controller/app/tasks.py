"""Background work as Celery tasks: failover, drain, config pushes, rebalancing, health sweeps.

Production sets ``FSFARM_CELERY_BROKER`` (e.g. ``redis://10.0.0.5:6379/0``) and runs
``celery -A controller.app.tasks worker`` (plus ``beat`` for the sweeps). Every task is idempotent
and acknowledged late, so a worker killed mid-task leaves the message to another worker, which
finishes the job without redoing what was committed. Without a broker (the embedded default)
tasks run inline in the caller: same code, no extra process.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any
from uuid import UUID

import kombu.exceptions
from celery import Celery

from controller import provisioning, runtime
from controller.app.farm import Farm
from controller.assignment import reassign
from controller.database import Database
from controller.domain import AdminState, NodeHealth
from controller.failover import execute
from controller.storage.sweep import sweep
from controller.stores.live_calls import count_on_node
from esl_workers import commands

log = logging.getLogger(__name__)

app = Celery("fsfarm")


def configure(broker: str | None) -> None:
    """Point the task app at a broker, or make it run tasks inline when there is none."""
    # Connections and producer pools made for a previous broker must not be reused.
    app.close()
    app.__dict__.pop("amqp", None)
    if broker:
        app.conf.update(
            broker_url=broker,
            task_always_eager=False,
            task_acks_late=True,
            # A worker process that dies mid-task hands the message back at once.
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            broker_transport_options={"visibility_timeout": runtime.settings().tasks.visibility_timeout},
            broker_connection_retry_on_startup=True,
            # Publishing gives up quickly: a dead broker must not delay a failover.
            task_publish_retry=False,
            task_ignore_result=True,
            beat_schedule={
                "health-sweep": {"task": "fsfarm.health_sweep", "schedule": 1.0},
                "rebalance": {"task": "fsfarm.rebalance", "schedule": 3600.0},
                "storage-sweep": {"task": "fsfarm.storage_sweep", "schedule": 60.0},
            },
        )
    else:
        app.conf.update(task_always_eager=True, task_eager_propagates=True, task_ignore_result=True)


configure(runtime.settings().tasks.broker)

_farm: Farm | None = None


def farm() -> Farm:
    """The worker's farm, opened on first use (workers fork: never share a pool across a fork)."""
    global _farm
    if _farm is None:
        _farm = Farm.open(runtime.settings(), apply_migrations=False)
        _farm.controller_id = f"worker-{os.getpid()}"
    return _farm


def database() -> Database:
    """The worker's pool."""
    return farm().db


@app.task(name="fsfarm.failover", bind=True, acks_late=True, max_retries=20, default_retry_delay=1)
def failover(self: Any, failover_id: str) -> str:
    """Carry out a decided failover (idempotent: safe after a crash at any point)."""
    try:
        row = execute(database(), UUID(failover_id), farm().kamailio_control(), farm().after_move(), farm().takeover())
    except Exception as exc:
        # PostgreSQL away mid-failover: the decision waits, nothing is half written; try again.
        raise self.retry(exc=exc) from exc
    return f"failover {failover_id}: {row.state}, {row.tenants_moved} tenant(s) moved"


@app.task(name="fsfarm.drain", acks_late=True)
def drain(node: str, deadline_seconds: float = 600.0) -> str:
    """Stop new calls on a node (its tenants move now; calls in progress stay), then disable it.

    New INVITEs follow the tenant to its new node while in-dialog requests keep following the
    Record-Route to the old one, so calls in progress end naturally on the node being drained.
    """
    db = database()
    provisioning.drain_node(db, node)
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline and _live_calls(db, node) > 0:
        time.sleep(1.0)
    left = _live_calls(db, node)
    provisioning.update_node(db, node, {"admin_state": AdminState.DISABLED})
    return f"node {node} drained and disabled ({left} call(s) still up at the deadline)"


def _live_calls(db: Database, node: str) -> int:
    """Calls still up on a node, counted by the ESL watcher's live-call store (none once it is down)."""
    with db.transaction() as conn:
        target = provisioning.get_node(conn, node)
        return 0 if target.health == NodeHealth.DOWN else count_on_node(conn, target.id)


@app.task(name="fsfarm.push_config", acks_late=True, bind=True, max_retries=10, default_retry_delay=2)
def push_config(self: Any, node: str) -> str:
    """Make a node fetch its configuration again: flush xml_curl's cache, reload XML, rescan SIP."""
    db = database()
    with db.transaction() as conn:
        target = provisioning.get_node(conn, node)
    results = []
    try:
        for command in ("xml_flush_cache", "reloadxml", f"sofia profile {farm().settings.sip.profile} rescan"):
            results.append(commands.run_api(target, command, timeout=5.0, check=False).result.strip())
    except Exception as exc:
        raise self.retry(exc=exc) from exc
    return f"node {target.name}: " + "; ".join(results)


@app.task(name="fsfarm.storage_sweep", acks_late=True)
def storage_sweep() -> str:
    """Remove shared-storage files of deleted tenants and users (idempotent)."""
    return sweep(database(), farm().storage)


@app.task(name="fsfarm.rebalance", acks_late=True)
def rebalance() -> str:
    """Re-run placement (fixes anything above the load bound after capacity changes)."""
    with database().transaction() as conn:
        generation = reassign(conn, "scheduled rebalance")
    return f"rebalanced: generation {generation.generation}" if generation else "rebalance: nothing to move"


@app.task(name="fsfarm.health_sweep", acks_late=True)
def health_sweep() -> str:
    """One failover cycle; the sentence it returns says what it did and why."""
    sentence = farm().failover_loop(dispatch=lambda fid: failover.delay(str(fid))).run_cycle()
    log.info("%s", sentence)
    return sentence


def dispatch_failover(failover_id: UUID) -> None:
    """Queue a failover (or run it now, when there is no broker or the broker is down).

    A failover must not wait for Redis: when the broker cannot take the task, this controller
    runs it inline; the task is idempotent, so a copy queued meanwhile finds nothing left to do.
    """
    try:
        failover.delay(str(failover_id))
    except kombu.exceptions.OperationalError as exc:
        log.warning("broker unreachable (%s); running failover %s inline", exc, failover_id)
        execute(database(), failover_id, farm().kamailio_control(), farm().after_move(), farm().takeover())
