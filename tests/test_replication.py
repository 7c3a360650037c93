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
from testsupport import free_port

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


def test_rows_written_at_either_site_appear_at_both_and_conflicts_resolve_to_the_newest(two_sites):
    a, b = two_sites
    env = {**os.environ, "FSFARM_DATABASE_URL": a.conninfo}
    out = subprocess.run([sys.executable, "-m", "controller.cli.entry", "db", "replicate", "--peer", b.conninfo,
                          "--name", "paris", "--peer-name", "lyon"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "paris now applies lyon's changes" in out.stdout and "lyon now applies paris's changes" in out.stdout
    again = subprocess.run([sys.executable, "-m", "controller.cli.entry", "db", "replicate", "--peer", b.conninfo,
                            "--name", "paris", "--peer-name", "lyon"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "already subscribes" in again.stdout  # idempotent

    db_a, db_b = Database(a.conninfo), Database(b.conninfo)
    try:
        provisioning.add_tenant(db_a, {"domain": "from-paris.example"})
        provisioning.add_tenant(db_b, {"domain": "from-lyon.example"})
        both = {"from-paris.example", "from-lyon.example"}
        assert wait_for(lambda: both <= set(names(a.conninfo)) and both <= set(names(b.conninfo)))

        # The same row changed at both sites while they cannot talk: the later write wins everywhere.
        for server, sub in ((a, "fsfarm_from_lyon"), (b, "fsfarm_from_paris")):
            with psycopg.connect(server.conninfo, autocommit=True) as conn:
                conn.execute("SELECT pglogical.alter_subscription_disable(%s, true)", [sub])
        provisioning.update_tenant(db_a, "from-paris.example", {"name": "written in paris"})
        time.sleep(0.05)
        provisioning.update_tenant(db_b, "from-paris.example", {"name": "written in lyon, later"})
        for server, sub in ((a, "fsfarm_from_lyon"), (b, "fsfarm_from_paris")):
            with psycopg.connect(server.conninfo, autocommit=True) as conn:
                conn.execute("SELECT pglogical.alter_subscription_enable(%s, true)", [sub])
        assert wait_for(lambda: names(a.conninfo)["from-paris.example"] == "written in lyon, later"
                        == names(b.conninfo)["from-paris.example"]), (names(a.conninfo), names(b.conninfo))
    finally:
        db_a.close()
        db_b.close()
