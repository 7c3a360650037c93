"""Celery tasks with a real Redis broker and a real worker process, killed mid-failover."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from testsupport import free_port

from controller.app import tasks
from controller.app.farm import Farm
from controller.config import Settings
from controller.failover import FailoverLoop
from controller.stores import failovers, nodes
from tests.failover.test_failover import farm, mark, where


@pytest.fixture
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    tasks.configure(redis_url)
    yield redis_url
    tasks.configure(None)


def start_worker(dsn: str, broker_url: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FSFARM_DATABASE_URL": dsn,
        "FSFARM_CELERY_BROKER": broker_url,
        "FSFARM_TASK_VISIBILITY": "5",
        **(extra_env or {}),
    }
    log = Path(tempfile.mkdtemp()) / "worker.log"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "controller.app.tasks",
            "worker",
            "-c",
            "1",
            "--pool",
            "prefork",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_state(db, state: str, timeout: float = 30.0) -> failovers.Failover:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.transaction() as conn:
            fs1 = nodes.get(conn, "fs1")
            assert fs1 is not None
            rows = failovers.for_node(conn, fs1.id)
        if rows and rows[0].state == state:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"failover never reached {state}: {rows}")


def test_without_a_broker_tasks_run_inline(db, monkeypatch):
    monkeypatch.setattr(tasks, "_farm", Farm(Settings.from_env(), db))
    tasks.configure(None)
    farm(db)
    mark(db, "fs1", "down")
    sentence = FailoverLoop(db, dispatch=tasks.dispatch_failover).run_cycle()
    assert "(queued)" in sentence
    assert where(db)["acme.example"] == "spare1"


def test_worker_runs_a_queued_failover(db, dsn, broker):
    farm(db)
    worker = start_worker(dsn, broker)
    try:
        mark(db, "fs1", "down")
        FailoverLoop(db, dispatch=tasks.dispatch_failover).run_cycle()
        row = wait_state(db, "done")
        assert row.tenants_moved >= 1 and where(db)["acme.example"] == "spare1"
    finally:
        worker.terminate()
        worker.wait(timeout=20)


def test_worker_killed_mid_failover_the_retry_finishes_without_moving_twice(db, dsn, broker):
    farm(db)
    generation_before = None
    # A Kamailio ctl socket that accepts and never answers: the worker hangs in the reload step,
    # after the move committed. That is where we kill it.
    ctl = Path(tempfile.mkdtemp()) / "ctl"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(ctl))
    listener.listen(8)
    held: list[socket.socket] = []
    hang = threading.Event()
    hang.set()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if hang.is_set():
                held.append(conn)  # never answer
            else:
                conn.close()  # later reloads fail fast: reported, not fatal

    threading.Thread(target=accept, daemon=True).start()
    worker = start_worker(dsn, broker, {"FSFARM_KAMAILIO_CTL": str(ctl)})
    try:
        from controller import provisioning

        generation_before = provisioning.placement_overview(db)["generation"]
        mark(db, "fs1", "down")
        FailoverLoop(db, dispatch=tasks.dispatch_failover).run_cycle()
        moved = wait_state(db, "moved")
        assert moved.tenants_moved >= 1
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held, "the worker never reached the Kamailio reload"
        children = psutil.Process(worker.pid).children(recursive=True)
        assert children
        for child in children:
            child.send_signal(signal.SIGKILL)
        hang.clear()
        done = wait_state(db, "done", timeout=60)
        assert done.tenants_moved == moved.tenants_moved
        assert done.kamailio.startswith("reload failed")
        overview = provisioning.placement_overview(db)
        assert overview["generation"] == generation_before + 1  # the move happened exactly once
        assert where(db)["acme.example"] == "spare1"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        listener.close()
        for conn in held:
            conn.close()


def test_broker_down_the_failover_runs_inline(db, dsn, monkeypatch):
    """Redis unreachable: the controller does the failover itself instead of losing it."""
    monkeypatch.setenv("FSFARM_DATABASE_URL", dsn)
    monkeypatch.setattr(tasks, "_farm", Farm(Settings.from_env(), db))
    tasks.configure(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        farm(db)
        mark(db, "fs1", "down")
        FailoverLoop(db, dispatch=tasks.dispatch_failover).run_cycle()
        row = wait_state(db, "done", timeout=30)
        assert row.tenants_moved >= 1 and where(db)["acme.example"] == "spare1"
    finally:
        tasks.configure(None)


def test_database_down_the_loop_waits_and_writes_nothing(db, pg_server):
    """PostgreSQL unreachable: the cycle says so and decides nothing; the next cycle after it is back acts."""
    from controller.database import Database

    farm(db)
    mark(db, "fs1", "down")
    dead = Database(f"host=127.0.0.1 port={free_port()} user=postgres dbname=x connect_timeout=1")
    dead.pool.timeout = 2.0
    try:
        assert FailoverLoop(dead).run_cycle().startswith("did nothing this cycle: the database cannot be reached")
    finally:
        dead.close()
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) AS n FROM failovers").fetchone()["n"] == 0
    assert "moving its work to spare spare1" in FailoverLoop(db).run_cycle()
