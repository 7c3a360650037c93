"""Two sites, each with its own PostgreSQL 15 + pglogical, replicating the fsfarm schema both ways."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from testsupport import free_port, run_on_terminal

from controller import provisioning
from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from controller.replication import PGLOGICAL_SETTINGS
from sql.migrate import migrate


@pytest.fixture
def two_sites():  # type: ignore[no-untyped-def]
    if not list(Path("/usr/lib/postgresql").glob("*/lib/pglogical.so")):
        pytest.skip("pglogical is not installed (Debian package postgresql-15-pglogical)")
    root = Path(tempfile.mkdtemp(prefix="fsfarm-bdr-"))
    servers = [EmbeddedPostgres(root / name, port=free_port(), settings=PGLOGICAL_SETTINGS) for name in ("a", "b")]
    for server in servers:
        server.start()
        migrate(server.conninfo)
    yield servers
    for server in servers:
        server.stop()


def wait_for(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def names(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT domain, name FROM tenants").fetchall())


def rows_meet_and_the_newest_write_wins(
    a: EmbeddedPostgres, b: EmbeddedPostgres, pause: str, resume: str, older_at_a: bool
) -> None:
    """Rows written at either site reach both; the same row changed at both sites while their
    subscriptions are paused (``pause``/``resume`` take the subscription name) ends as the later write."""
    db_a, db_b = Database(a.conninfo), Database(b.conninfo)
    try:
        provisioning.add_tenant(db_a, {"domain": "from-paris.example"})
        provisioning.add_tenant(db_b, {"domain": "from-lyon.example"})
        both = {"from-paris.example", "from-lyon.example"}
        assert wait_for(lambda: both <= set(names(a.conninfo)) and both <= set(names(b.conninfo)))

        subscriptions = ((a, "fsfarm_from_lyon"), (b, "fsfarm_from_paris"))
        for server, sub in subscriptions:
            with psycopg.connect(server.conninfo, autocommit=True) as conn:
                conn.execute(pause.format(sub=sub))
        first, second = (db_a, db_b) if older_at_a else (db_b, db_a)
        provisioning.update_tenant(first, "from-paris.example", {"name": "the older write"})
        time.sleep(0.05)
        provisioning.update_tenant(second, "from-paris.example", {"name": "the newer write"})
        for server, sub in subscriptions:
            with psycopg.connect(server.conninfo, autocommit=True) as conn:
                conn.execute(resume.format(sub=sub))
        assert wait_for(
            lambda: (
                names(a.conninfo)["from-paris.example"] == "the newer write" == names(b.conninfo)["from-paris.example"]
            )
        ), (names(a.conninfo), names(b.conninfo))
    finally:
        db_a.close()
        db_b.close()


def test_rows_written_at_either_site_appear_at_both_and_conflicts_resolve_to_the_newest(two_sites):
    a, b = two_sites
    env = {**os.environ, "FSFARM_DATABASE_URL": a.conninfo}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli.entry",
            "db",
            "replicate",
            "--peer",
            b.conninfo,
            "--name",
            "paris",
            "--peer-name",
            "lyon",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "paris now applies lyon's changes" in out.stdout and "lyon now applies paris's changes" in out.stdout
    assert "replicating" not in out.stdout  # stdout is a pipe: no progress bar
    # Again, as an operator runs it in a terminal: the steps' progress is drawn, and nothing is done twice.
    command = ["db", "replicate", "--peer", b.conninfo, "--name", "paris", "--peer-name", "lyon"]
    code, shown, errors = run_on_terminal([sys.executable, "-m", "controller.cli.entry", *command], env)
    assert code == 0, errors
    assert "replicating" in shown and "4/4" in shown and "already subscribes" in shown  # idempotent

    # While the sites cannot talk, lyon writes last: its write must win at both.
    rows_meet_and_the_newest_write_wins(
        a,
        b,
        "SELECT pglogical.alter_subscription_disable('{sub}', true)",
        "SELECT pglogical.alter_subscription_enable('{sub}', true)",
        older_at_a=True,
    )


@pytest.fixture
def two_pg16_sites():  # type: ignore[no-untyped-def]
    from controller.database.embedded import pgserver_bindir

    bindir = pgserver_bindir()
    if bindir is None:
        pytest.skip("pgserver (PostgreSQL 16) is not installed")
    root = Path(tempfile.mkdtemp(prefix="fsfarm-pg16-"))
    settings = (
        "wal_level = logical",
        "max_replication_slots = 10",
        "max_wal_senders = 10",
        "max_worker_processes = 16",
    )
    servers = [EmbeddedPostgres(root / name, port=free_port(), settings=settings, bindir=bindir) for name in ("a", "b")]
    for server in servers:
        server.start()
        migrate(server.conninfo)
    yield servers
    for server in servers:
        server.stop()


def test_native_pg16_sites_replicate_and_keep_the_newest_update(two_pg16_sites):
    from controller.replication import Site, replicate

    a, b = two_pg16_sites
    with psycopg.connect(a.conninfo) as conn:
        assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 160000
    said = replicate(Site("paris", a.conninfo), Site("lyon", b.conninfo))
    assert all("native logical replication" in s for s in said)
    # Here paris writes last, so the replica trigger (not arrival order) must keep paris's write.
    rows_meet_and_the_newest_write_wins(
        a, b, "ALTER SUBSCRIPTION {sub} DISABLE", "ALTER SUBSCRIPTION {sub} ENABLE", older_at_a=False
    )
