"""The fsfarm command as an operator types it: real processes, real exit codes, real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from testsupport import free_port

from controller.database.embedded import EmbeddedPostgres


def fsfarm(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_tour(dsn):
    assert fsfarm(dsn, "db", "migrate").stdout.strip() == "schema is up to date"
    assert (
        fsfarm(
            dsn, "node", "add", "fs1", "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon"
        ).returncode
        == 0
    )
    assert (
        fsfarm(
            dsn, "node", "add", "spare1", "--sip", "10.0.0.9", "--esl", "10.0.0.9", "--esl-password", "x", "--spare"
        ).returncode
        == 0
    )
    out = fsfarm(dsn, "tenant", "add", "acme.example")
    assert out.returncode == 0 and "fs1" in out.stdout
    assert (
        fsfarm(
            dsn, "user", "add", "-t", "acme.example", "1001", "--password", "pw-1001-x", "--set", "ring_timeout=30"
        ).returncode
        == 0
    )
    assert fsfarm(dsn, "number", "add", "-t", "acme.example", "+15550001", "--to", "user:1001").returncode == 0
    assert fsfarm(dsn, "conference", "add", "-t", "acme.example", "3000", "--profile", "hd").returncode == 0

    users = json.loads(fsfarm(dsn, "user", "list", "-t", "acme.example", "--json").stdout)
    assert [(u["extension"], u["ring_timeout"]) for u in users] == [("1001", 30)]
    nodes = fsfarm(dsn, "node", "list").stdout.splitlines()
    assert nodes[0].split()[:2] == ["NAME", "SWITCHNAME"]
    assert any(line.split()[0] == "fs1" and line.split()[-1] == "1" for line in nodes[1:])
    assert any(line.split()[0] == "spare1" and line.split()[-1] == "0" for line in nodes[1:])
    placement = json.loads(fsfarm(dsn, "placement", "show", "--json").stdout)
    assert placement["tenants"][0]["node"] == "fs1" and placement["conferences"][0]["conference"] == "3000"
    token = fsfarm(dsn, "token", "create", "--scope", "tenant-admin", "--tenant", "acme.example").stdout.strip()
    assert token.startswith("fsf_")


def test_cli_errors_are_messages_with_nonzero_exit(dsn):
    fsfarm(dsn, "node", "add", "fs1", "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "x")
    fsfarm(dsn, "tenant", "add", "acme.example")
    fsfarm(dsn, "user", "add", "-t", "acme.example", "1001", "--password", "pw-1001-x")
    for args, message in [
        (("tenant", "add", "acme.example"), "already exists"),
        (("tenant", "add", "bad_domain!"), "must be a DNS name"),
        (("user", "add", "-t", "acme.example", "1001", "--password", "pw-1001-x"), "already reaches a user"),
        (("user", "add", "-t", "nobody.example", "1002", "--password", "pw-1001-x"), "no tenant"),
        (("node", "rm", "fs1"), "still hosts 1 tenant"),
        (("node", "drain", "fs9"), "no node"),
        (("number", "add", "-t", "acme.example", "+15550001", "--to", "1001"), "TYPE:TARGET"),
    ]:
        result = fsfarm(dsn, *args)
        assert result.returncode == 1, (args, result)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    listing = json.loads(fsfarm(dsn, "tenant", "list", "--json").stdout)
    assert [t["domain"] for t in listing] == ["acme.example"]


def test_fsfarm_up_runs_on_the_embedded_database():
    """The README's first command: a controller on its own PostgreSQL, reachable and stoppable."""
    state = Path(tempfile.mkdtemp(prefix="fsfarm-up-"))
    port = free_port()
    env = {
        **os.environ,
        "FSFARM_STATE_DIR": str(state),
        "FSFARM_EMBEDDED_PG_PORT": str(free_port()),
        "FSFARM_IVR_PORT": str(free_port()),
    }
    env.pop("FSFARM_DATABASE_URL", None)
    env.pop("FSFARM_XMLCURL_PASSWORD", None)
    (state / "xmlcurl-password").write_text("kept-by-an-older-fsfarm\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli.entry", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        token = (state / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}/api/v1"
        r = requests.post(f"{base}/tenants", json={"domain": "acme.example"}, headers=headers, timeout=5)
        assert r.status_code == 201
        assert requests.get(f"{base}/tenants", headers={"Authorization": "Bearer fsf_x"}, timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        said, _ = proc.communicate(timeout=30)
    # The shared password an older fsfarm generated is no longer accepted: up says what to do.
    assert f"send the password in {state / 'xmlcurl-password'}, no longer accepted" in said
    assert (state / "postgres" / "PG_VERSION").exists()
    # up stopped the database it started; the data is still there for the next start.
    server = EmbeddedPostgres(state / "postgres", port=int(env["FSFARM_EMBEDDED_PG_PORT"]))
    assert not server.running()
    server.start()
    try:
        import psycopg

        with psycopg.connect(server.conninfo) as conn:
            assert conn.execute("SELECT domain FROM tenants").fetchall() == [("acme.example",)]
    finally:
        server.stop()


def test_ivr_commands_of_both_rooms_are_reachable(dsn):
    out = fsfarm(dsn, "ivr", "--help").stdout
    for sub in ("add", "list", "rm", "serve", "check"):
        assert f"  {sub} " in out, out
