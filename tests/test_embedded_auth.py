"""The embedded PostgreSQL asks every client for a password, listens on loopback and its own socket
only, and an older fsfarm's ``trust`` cluster is switched over when it starts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from testsupport import free_port

from controller import runtime
from controller.config import Settings
from controller.database.embedded import EmbeddedPostgres


def refuses_without_password(server: EmbeddedPostgres) -> bool:
    for host in (server.host, str(server.datadir)):  # loopback and the unix socket
        try:
            psycopg.connect(f"host={host} port={server.port} user=postgres dbname=postgres", connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            if "password" not in str(exc):
                raise
        else:
            return False
    return True


@pytest.fixture
def state() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fsfarm-test-state-"))
    yield path
    server = EmbeddedPostgres(path / "postgres", port=1)
    if server.initialised() and (server.datadir / "postmaster.pid").exists():
        server.stop()


def test_a_new_cluster_asks_for_the_password_kept_in_the_state_dir(state: Path) -> None:
    settings = Settings(state_dir=state, embedded_pg_port=free_port())
    server = runtime.embedded(settings)
    dsn = runtime.conninfo(settings)  # starts it, as any command does
    try:
        secret = (state / "postgres-password").read_text().strip()
        assert f"password={secret}" in dsn and len(secret) >= 40
        assert (state / "postgres-password").stat().st_mode & 0o777 == 0o600
        assert state.stat().st_mode & 0o707 == 0o700  # (0710 as root: the postgres user traverses it)
        assert server.datadir.stat().st_mode & 0o777 == 0o700  # the unix socket's directory
        assert refuses_without_password(server)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
            hba = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
        assert hba == [("scram-sha-256",)]
    finally:
        server.stop()


def test_an_older_trust_cluster_keeps_its_data_and_is_switched_to_passwords(state: Path) -> None:
    port = free_port()
    old = EmbeddedPostgres(state / "postgres", port=port)
    # What an older fsfarm did: initdb -A trust, and no password anywhere.
    old.datadir.mkdir(parents=True)
    if old.user:
        import shutil

        from controller.database.embedded import _make_reachable

        _make_reachable(old.datadir.parent, old.user)
        shutil.chown(old.datadir, old.user, old.user)
    old.datadir.chmod(0o700)
    old._run("initdb", "-D", str(old.datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-instructions")
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {old.datadir}"
    old._run("pg_ctl", "-D", str(old.datadir), "-o", opts, "-l", str(old.datadir / "server.log"), "-w", "start")
    trusted = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(trusted, autocommit=True) as conn:
        conn.execute("CREATE DATABASE fsfarm")
    with psycopg.connect(trusted.replace("dbname=postgres", "dbname=fsfarm")) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('from before')")
    old._run("pg_ctl", "-D", str(old.datadir), "-m", "fast", "-w", "stop")
    assert not (state / "postgres-password").exists()

    for _ in ("stopped", "running"):  # started by the new fsfarm, then found running by the next command
        server = EmbeddedPostgres(state / "postgres", port=port)
        server.start()
        assert refuses_without_password(server)
        with psycopg.connect(server.conninfo) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("from before",)]
    assert "trust" not in (server.datadir / "pg_hba.conf").read_text()
    assert (state / "postgres-password").stat().st_mode & 0o777 == 0o600
    server.stop()


def test_a_wrong_password_file_is_said_plainly(state: Path) -> None:
    server = EmbeddedPostgres(state / "postgres", port=free_port())
    server.start()
    try:
        (state / "postgres-password").write_text("not-the-password\n")
        with pytest.raises(RuntimeError, match="refuses the password in"):
            EmbeddedPostgres(state / "postgres", port=server.port).running()
    finally:
        server.stop()


def test_the_state_dir_is_made_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    runtime.private_state_dir(Settings(state_dir=state))
    assert state.stat().st_mode & 0o707 == 0o700
