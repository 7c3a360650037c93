"""PostgreSQL that survives its own failure: Patroni + etcd, the leader killed under a write load.

The controller connects with a libpq multi-host DSN and ``target_session_attrs=read-write``; it
must ride through the leader change without a restart, and every write it saw acknowledged
must be there afterwards (Patroni's synchronous mode: a commit is acknowledged only once the
standby has it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
from testsupport import free_port

from controller import provisioning
from controller.database import Database
from controller.errors import FarmError
from sql.migrate import migrate

BIN = Path("/usr/lib/postgresql/15/bin")


def member_config(name: str, workdir: Path, pg_port: int, api_port: int, etcd_port: int) -> str:
    data = workdir / name
    return f"""
scope: fsfarm-test
name: {name}
restapi: {{listen: 127.0.0.1:{api_port}, connect_address: 127.0.0.1:{api_port}}}
etcd3: {{hosts: 127.0.0.1:{etcd_port}}}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    primary_start_timeout: 0
    synchronous_mode: true
    postgresql: {{use_pg_rewind: true, parameters: {{wal_log_hints: "on"}}}}
  initdb: [{{encoding: UTF8}}, {{auth: trust}}]
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {BIN}
  pgpass: {workdir}/pgpass-{name}
  authentication:
    superuser: {{username: postgres, password: postgres}}
    replication: {{username: replicator, password: rep}}
    rewind: {{username: rewinder, password: rew}}
  parameters: {{unix_socket_directories: "{workdir}"}}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
"""


@pytest.fixture
def patroni_cluster():  # type: ignore[no-untyped-def]
    if not (shutil.which("patroni") and shutil.which("etcd") and BIN.exists()):
        pytest.skip("patroni, etcd-server or postgresql-15 is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="fsfarm-patroni-"))
    os.chmod(workdir, 0o777)
    for parent in workdir.parents:
        os.chmod(parent, parent.stat().st_mode | 0o011)
    shutil.chown(workdir, "postgres", "postgres")
    etcd_port, peer_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    procs.append(
        subprocess.Popen(
            [
                "etcd",
                "--name",
                "e1",
                "--data-dir",
                str(workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"e1=http://127.0.0.1:{peer_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    members = {}
    for name in ("pg1", "pg2"):
        pg_port, api_port = free_port(), free_port()
        cfg = workdir / f"{name}.yml"
        cfg.write_text(member_config(name, workdir, pg_port, api_port, etcd_port))
        shutil.chown(cfg, "postgres", "postgres")
        members[name] = {"pg": pg_port, "api": api_port, "data": workdir / name}
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"http://127.0.0.1:{etcd_port}/version", timeout=1)
            break
        except requests.RequestException:
            assert time.monotonic() < deadline, "etcd did not start"
            time.sleep(0.1)
    for name in members:
        log = (workdir / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                ["runuser", "-u", "postgres", "--", "patroni", str(workdir / f"{name}.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(workdir),
            )
        )
        if name == "pg1":  # let pg1 bootstrap first, so the roles are predictable
            _wait_role(members[name]["api"], "primary", 60)
    _wait_role(members["pg2"]["api"], "replica", 60)
    _wait_sync(members["pg1"]["api"], 30)
    yield members, workdir
    for proc in reversed(procs):
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    subprocess.run(["pkill", "-9", "-f", str(workdir)], check=False)


def _role(api_port: int) -> str:
    try:
        return str(requests.get(f"http://127.0.0.1:{api_port}/patroni", timeout=1).json().get("role", ""))
    except (requests.RequestException, ValueError):
        return ""


def _wait_role(api_port: int, role: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _role(api_port) not in (role, "master" if role == "primary" else role):
        assert time.monotonic() < deadline, f"member on {api_port} never became {role}"
        time.sleep(0.2)


def _wait_sync(api_port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            members = requests.get(f"http://127.0.0.1:{api_port}/cluster", timeout=1).json()["members"]
            if any(m.get("role") == "sync_standby" and m.get("state") in ("streaming", "running") for m in members):
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "no synchronous standby"
        time.sleep(0.2)


def test_controller_rides_through_a_leader_kill_without_losing_acknowledged_writes(patroni_cluster):
    members, _workdir = patroni_cluster
    hosts = ",".join("127.0.0.1" for _ in members)
    ports = ",".join(str(m["pg"]) for m in members.values())
    dsn = f"host={hosts} port={ports} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2"
    migrate(dsn)
    db = Database(dsn, max_size=4)
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def write_load() -> None:
        i = 0
        while not stop.is_set():
            domain = f"w{i}.example"
            i += 1
            try:
                provisioning.add_tenant(db, {"domain": domain})
                acknowledged.append(domain)
            except FarmError as exc:
                errors.append(exc.message)
                time.sleep(0.05)

    writer = threading.Thread(target=write_load)
    writer.start()
    try:
        while len(acknowledged) < 20:
            time.sleep(0.05)
        leader_pid = int((members["pg1"]["data"] / "postmaster.pid").read_text().split()[0])
        before_kill = len(acknowledged)
        killed = time.monotonic()
        os.kill(leader_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(acknowledged) < before_kill + 20:
            assert time.monotonic() < deadline, f"writes never resumed: {errors[-3:]}"
            time.sleep(0.05)
        resumed = time.monotonic() - killed
    finally:
        stop.set()
        writer.join(timeout=30)
    print(
        f"leader killed -> writes resumed through the same pool in {resumed:.1f} s "
        f"({len(errors)} failed attempts meanwhile)"
    )
    assert _role(members["pg2"]["api"]) in ("primary", "master")
    with psycopg.connect(dsn) as conn:
        stored = {row[0] for row in conn.execute("SELECT domain FROM tenants")}
    missing = [d for d in acknowledged if d not in stored]
    assert not missing, f"acknowledged writes lost: {missing[:5]}"
    db.close()
