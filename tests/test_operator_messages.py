"""fsfarm says what is wrong when it is: addresses, one-line errors, clean starts and stops, kept history.

CLI cases run the real ``fsfarm`` command as an operator types it, on real PostgreSQL servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import requests
from testsupport import free_port

from controller import provisioning
from controller.database.embedded import EmbeddedPostgres
from controller.stores import failovers

NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "ClueCon"}


def fsfarm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``fsfarm ARGS`` in its own process (what happens at start and exit matters here)."""
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``fsfarm ARGS`` on ``dsn`` through the same entry point, in this process (much faster on a busy machine)."""
    from click.testing import CliRunner

    from controller.cli import main

    result = CliRunner().invoke(main, list(args), env={"FSFARM_DATABASE_URL": dsn}, prog_name="fsfarm")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line a failed command printed (and nothing else on stderr)."""
    lines = result.stderr.splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), result
    return lines[0]


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", "10.0.0.1:5060"),
        ("10.0.0.1:5080", "10.0.0.1:5080"),
        ("[2001:db8::1]:5080", "[2001:db8::1]:5080"),
        ("[::1]", "[::1]:5060"),
        ("fs1.Example.com:65535", "fs1.example.com:65535"),
        ("localhost", "localhost:5060"),
    ],
)
def test_host_port_accepts_addresses(text, expected):
    from controller.validation import HostPort

    assert str(HostPort.parse(text, 5060)) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.300", "not an IPv4 address"),
        ("10.0.0", "not an IPv4 address"),
        ("10.0.0.1:0", "from 1 to 65535"),
        ("10.0.0.1:65536", "from 1 to 65535"),
        ("10.0.0.1:80a", "from 1 to 65535"),
        ("2001:db8::1", "in brackets"),
        ("[2001:db8::zz]:5060", "not an IPv6 address"),
        ("-fs1.example", "not a host name"),
        ("fs_1.example", "not a host name"),
        ("a" * 64 + ".example", "not a host name"),
        (":5060", "host is missing"),
    ],
)
def test_host_port_refuses_what_is_not_an_address(text, reason):
    from controller.validation import HostPort

    with pytest.raises(ValueError, match=reason):
        HostPort.parse(text, 5060)


def test_every_api_entry_point_refuses_a_bad_address_naming_the_field(admin, client, db):
    assert admin.post("/api/v1/nodes", json=NODE).status_code == 201
    assert admin.post("/api/v1/tenants", json={"domain": "acme.example"}).status_code == 201
    join_token, _ = provisioning.create_token(db, "node-join")
    cases = [
        (admin.post, "/api/v1/nodes", {**NODE, "name": "fs2", "sip_address": "10.0.0.300"}, "sip_address"),
        (admin.post, "/api/v1/nodes", {**NODE, "name": "fs2", "esl_address": "10.0.0.2:70000"}, "esl_address"),
        (admin.patch, "/api/v1/nodes/fs1", {"sip_address": "10.0.0.300:5060"}, "sip_address"),
        (
            admin.post,
            "/api/v1/mixers",
            {
                "name": "m1",
                "sip_address": "10.0.0.256:5090",
                "control_url": "http://10.0.0.5:5091",
                "control_token": "mixer-token-0123456789",
            },
            "sip_address",
        ),
        (
            admin.post,
            "/api/v1/mixers",
            {
                "name": "m1",
                "sip_address": "10.0.0.5:5090",
                "control_url": "http://10.0.0.300:5091",
                "control_token": "mixer-token-0123456789",
            },
            "control_url",
        ),
        (
            admin.post,
            "/api/v1/tenants/acme.example/gateways",
            {"name": "carrier", "proxy": "sip..carrier.example"},
            "proxy",
        ),
        (
            lambda path, json: client.post(path, json=json, headers={"Authorization": f"Bearer {join_token}"}),
            "/api/v1/join",
            {"name": "fs3", "sip_address": "10.0.0.3", "esl_address": "fe80::1"},
            "esl_address",
        ),
    ]
    for send, path, body, field in cases:
        r = send(path, json=body)
        assert r.status_code == 400, (path, body, r.get_data(as_text=True))
        assert r.json["error"].startswith(f"{field}: ") and r.json["detail"]["field"] == field, r.json
    assert [n["name"] for n in admin.get("/api/v1/nodes").json] == ["fs1"]
    assert admin.get("/api/v1/nodes/fs1").json["sip_address"] == "10.0.0.1:5060"
    assert admin.get("/api/v1/mixers").json == []
    # The join token was not spent on the refused request.
    r = client.post(
        "/api/v1/join",
        json={"name": "fs3", "sip_address": "[2001:db8::3]", "esl_address": "fs3.example"},
        headers={"Authorization": f"Bearer {join_token}"},
    )
    assert r.status_code == 201 and r.json["esl_address"] == "fs3.example:8021"


# ---------------------------------------------------------------- one-line CLI errors


def test_cli_errors_are_one_line_and_name_the_flag(dsn):
    assert (
        cli(dsn, "node", "add", "fs1", "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon").returncode
        == 0
    )
    assert cli(dsn, "tenant", "add", "acme.example").returncode == 0
    cases = [
        (
            ("node", "add", "fs2", "--sip", "10.0.0.300", "--esl", "10.0.0.2", "--esl-password", "x"),
            "error: --sip: 10.0.0.300 is not an IPv4 address (four numbers from 0 to 255)",
        ),
        (
            ("node", "add", "fs2", "--sip", "10.0.0.2", "--esl", "10.0.0.2:99999", "--esl-password", "x"),
            "error: --esl: the port must be a number from 1 to 65535, not '99999'",
        ),
        (("user", "add", "-t", "acme.example", "1001"), "error: missing --password"),
        (
            ("mixers", "add", "m1", "--sip", "10.0.0.9:5090", "--control", "ftp://10.0.0.9", "--token-file", __file__),
            "error: --control: must be an http(s) URL",
        ),
        (
            ("mixers", "add", "m1", "--sip", "10.0.0.9:5090", "--control", "http://10.0.0.9"),
            "error: missing --token-file",
        ),
        (
            ("gateway", "add", "-t", "acme.example", "carrier", "--proxy", "[::1"),
            "error: --proxy: an IPv6 address is written [address]:port",
        ),
        (("tenant", "add", "bad_domain!"), "error: DOMAIN: must be a DNS name"),
        (
            ("user", "add", "-t", "acme.example", "1002", "--password", "long-secret", "--set", "colour=red"),
            "error: unknown field(s): colour",
        ),
        (("node", "add", "fs2", "--esl", "10.0.0.2"), "error: Missing option '--sip'"),
        (("node", "frobnicate"), "error: No such command 'frobnicate'"),
        (("up", "--port", "0"), "error: Invalid value for '--port': 0 is not in the range 1<=x<=65535."),
    ]
    for args, expected in cases:
        assert one_error_line(cli(dsn, *args)).startswith(expected), args
    listing = json.loads(cli(dsn, "node", "list", "--json").stdout)
    assert [n["name"] for n in listing] == ["fs1"]


def test_a_group_without_a_command_shows_its_help_not_an_error(dsn):
    for args in ((), ("node",)):
        shown = cli(dsn, *args)
        page = shown.stdout + shown.stderr
        assert "Commands:" in page and "error:" not in page, page


def test_a_database_without_schema_or_out_of_reach_is_one_line(pg_server):
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        empty = pg_server.conninfo.replace("dbname=postgres", f"dbname={name}")
        assert one_error_line(cli(empty, "node-cmd", "fs9", "reloadxml")) == (
            "error: the farm database has no fsfarm schema yet: run `fsfarm db migrate` (`fsfarm up` does it too)"
        )
    finally:
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    nowhere = f"host=127.0.0.1 port={free_port()} dbname=fsfarm user=postgres connect_timeout=5"
    assert one_error_line(cli(nowhere, "node", "list")).startswith("error: cannot reach the farm database: ")


# ---------------------------------------------------------------- fsfarm up: ports, stopping


@pytest.fixture
def state() -> Iterator[Path]:
    """A state dir of its own (the embedded PostgreSQL's data lives there), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="fsfarm-msg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_healthy(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # refused, or bound and still starting up
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
        time.sleep(0.2)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_second_up_says_the_port_is_taken_and_stopping_is_clean(stop_signal, state):
    http, ivr = free_port(), free_port()
    env = {
        "FSFARM_STATE_DIR": str(state),
        "FSFARM_EMBEDDED_PG_PORT": str(free_port()),
        "FSFARM_IVR_PORT": str(ivr),
        "FSFARM_DATABASE_URL": "",
    }
    first = subprocess.Popen(
        [sys.executable, "-m", "controller.cli.entry", "up", "--port", str(http)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(first, http)
        second = fsfarm(env, "up", "--port", str(http))
        assert one_error_line(second) == (
            f"error: port {http} (the API and xml_curl) on 127.0.0.1 is already in use: is another fsfarm up running?"
        )
        third = fsfarm(env, "up", "--port", str(free_port()))
        assert one_error_line(third) == (
            f"error: port {ivr} (the IVR server) on 127.0.0.1 is already in use: is another fsfarm up running?"
        )
        bad_ivr = fsfarm({**env, "FSFARM_IVR_PORT": "80a"}, "up", "--port", str(free_port()))
        assert one_error_line(bad_ivr) == "error: FSFARM_IVR_PORT: the port must be a number from 1 to 65535, not '80a'"
        assert requests.get(f"http://127.0.0.1:{http}/healthz", timeout=5).status_code == 200
    finally:
        first.send_signal(stop_signal)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    for noise in ("Traceback", "TypeError", "lost PostgreSQL", "Exception ignored"):
        assert noise not in err and noise not in out, err
    assert "fsfarm: stopped" in err
    assert not EmbeddedPostgres(state / "postgres", port=int(env["FSFARM_EMBEDDED_PG_PORT"])).running()


# ---------------------------------------------------------------- the embedded PostgreSQL after a CLI command


def test_cli_commands_stop_the_embedded_postgres_they_started_and_only_that(state):
    env = {"FSFARM_STATE_DIR": str(state), "FSFARM_EMBEDDED_PG_PORT": str(free_port()), "FSFARM_DATABASE_URL": ""}
    server = EmbeddedPostgres(state / "postgres", port=int(env["FSFARM_EMBEDDED_PG_PORT"]))
    assert (
        fsfarm(
            env, "node", "add", "fs1", "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon"
        ).returncode
        == 0
    )
    assert not server.running()
    assert fsfarm(env, "db", "migrate").stdout.strip() == "schema is up to date"
    assert not server.running()
    bootstrap = fsfarm({**env, "FSFARM_XMLCURL_PASSWORD": "pw"}, "freeswitch", "bootstrap", "--node", "fs9")
    assert "no node 'fs9'" in one_error_line(bootstrap)
    assert not server.running()
    # Beside a running server (as `fsfarm up` keeps one) a command uses it and leaves it running.
    server.start()
    try:
        listing = fsfarm(env, "node", "list", "--json")
        assert [n["name"] for n in json.loads(listing.stdout)] == ["fs1"]
        assert server.running()
    finally:
        server.stop()


# ---------------------------------------------------------------- history and honest messages


def test_node_rm_keeps_its_failover_records(dsn, db):
    for name, extra in (("fs1", ()), ("spare1", ("--spare",))):
        assert (
            cli(
                dsn, "node", "add", name, "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon", *extra
            ).returncode
            == 0
        )
    with db.transaction() as conn:
        ids = {row["name"]: row["id"] for row in conn.execute("SELECT name, id FROM nodes").fetchall()}
        decided = failovers.decide(
            conn, uuid.uuid4(), ids["fs1"], "incident-1", ids["spare1"], "fs1 missed its heartbeats", "test", None
        )
        assert decided is not None and decided.node_name == "fs1" and decided.spare_name == "spare1"
    assert cli(dsn, "node", "rm", "fs1", "--force").returncode == 0
    assert cli(dsn, "node", "rm", "spare1").returncode == 0
    history = json.loads(cli(dsn, "failover", "list", "--json").stdout)
    assert [(f["node_name"], f["spare_name"], f["reason"]) for f in history] == [
        ("fs1", "spare1", "fs1 missed its heartbeats")
    ]
    assert history[0]["node_id"] is None and history[0]["spare_id"] is None
    assert "fs1" in cli(dsn, "failover", "list").stdout


def test_node_drain_says_what_happened_to_its_tenants(dsn):
    for name in ("fs1", "fs2"):
        assert (
            cli(
                dsn, "node", "add", name, "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon"
            ).returncode
            == 0
        )
    assert cli(dsn, "tenant", "add", "acme.example", "--pin-node", "fs1").returncode == 0
    assert cli(dsn, "node", "drain", "fs2").stdout.strip() == "node fs2 is draining; it hosted no tenants"
    out = cli(dsn, "node", "drain", "fs1").stdout.strip()
    assert out == (
        "node fs1 is draining; 0 of its 1 tenant(s) moved to other nodes, 1 are on no node "
        "(no other node can take them)"
    )


def test_node_drain_moves_tenants_and_says_so(dsn):
    for name in ("fs1", "fs2"):
        assert (
            cli(
                dsn, "node", "add", name, "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon"
            ).returncode
            == 0
        )
    for i in range(4):
        assert cli(dsn, "tenant", "add", f"t{i}.example").returncode == 0
    placed = json.loads(cli(dsn, "placement", "show", "--json").stdout)["tenants"]
    on_fs1 = sum(1 for t in placed if t["node"] == "fs1")
    assert cli(dsn, "node", "drain", "fs1").stdout.strip() == (
        f"node fs1 is draining; its {on_fs1} tenant(s) were moved to other nodes"
        if on_fs1
        else "node fs1 is draining; it hosted no tenants"
    )
    placed = json.loads(cli(dsn, "placement", "show", "--json").stdout)["tenants"]
    assert {t["node"] for t in placed} == {"fs2"}


def test_placement_show_heads_with_the_current_state(dsn):
    assert (
        cli(dsn, "node", "add", "fs1", "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "ClueCon").returncode
        == 0
    )
    assert cli(dsn, "tenant", "add", "acme.example").returncode == 0
    assert cli(dsn, "tenant", "add", "beta.example").returncode == 0
    assert cli(dsn, "tenant", "rm", "beta.example").returncode == 0
    lines = cli(dsn, "placement", "show").stdout.splitlines()
    assert lines[0] == "generation 2: 1 tenant(s) on 1 node(s)"
    assert "beta.example" not in "\n".join(lines[:3])
    assert lines[-1].startswith("generation 2 was decided at ") and lines[-1].endswith(": tenant beta.example added")


# ---------------------------------------------------------------- the --help tree and shell completion


def _commands(command: click.Command, path: tuple[str, ...]):  # type: ignore[no-untyped-def]
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from _commands(sub, (*path, name))


def test_every_help_page_reads_well_at_80_columns():
    from click.testing import CliRunner

    from controller.cli import main

    pages = 0
    for path, command in _commands(main, ("fsfarm",)):
        if command.hidden:
            continue
        assert command.help, f"{' '.join(path)} has no help"
        options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
        assert all(o.help for o in options), (path, [o.opts for o in options if not o.help])
        result = CliRunner().invoke(main, [*path[1:], "--help"], prog_name="fsfarm", terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        page = result.output
        # Listed subcommands keep their whole one-line help; nothing runs past 80 columns; no reST markup.
        listing = page.partition("\nCommands:\n")[2]
        assert not any(line.endswith("...") for line in listing.splitlines()) and "``" not in page, (path, page)
        assert all(len(line) <= 80 for line in page.splitlines()), (path, page)
        pages += 1
    assert pages > 60


def test_shell_completion_is_what_click_provides():
    # The console script as installed: click names the completion variable after the program.
    launcher = Path(sys.executable).parent / "fsfarm"
    script = subprocess.run(
        [launcher], env={**os.environ, "_FSFARM_COMPLETE": "bash_source"}, capture_output=True, text=True, timeout=60
    )
    assert script.returncode == 0 and "_fsfarm_completion()" in script.stdout and "complete " in script.stdout
    env = {**os.environ, "_FSFARM_COMPLETE": "bash_complete", "COMP_WORDS": "fsfarm no", "COMP_CWORD": "1"}
    words = subprocess.run([launcher], env=env, capture_output=True, text=True, timeout=60)
    assert words.stdout.split() == ["plain,node", "plain,node-cmd"]
