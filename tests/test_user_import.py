"""Bulk import of users from CSV (how admins migrate from FusionPBX): API, CLI and the progress they show."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_admin_cli import fsfarm
from testsupport import AuthedClient, run_on_terminal

from controller import provisioning
from controller.database import Database
from controller.domain import a1_hash
from controller.storage import open_storage
from controller.user_import import MAX_ROWS

NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "ClueCon"}
# What FusionPBX's extension export writes (Accounts > Extensions > Export), voicemail columns added.
FUSIONPBX_HEADER = (
    "extension_uuid,domain_uuid,extension,number_alias,password,accountcode,effective_caller_id_name,"
    "effective_caller_id_number,outbound_caller_id_number,user_context,toll_allow,call_timeout,"
    "voicemail_password,enabled,description"
)
FUSIONPBX_CSV = (
    "\ufeff"  # as spreadsheets save it
    + FUSIONPBX_HEADER
    + "\r\n"
    + "e1,d1,1001,,Secret-1001-x,acme,Alice Smith,1001,+15550001001,acme.example,"
    + '"local, domestic",30,4321,true,Reception\r\n'
    + "e2,d1,1002,,short,acme,Bob,1002,+15550001002,acme.example,local,30,1234,true,Bob's phone\r\n"
    + "e3,d1,1003,,Secret-1003-x,acme,Carol,,+15550001003,acme.example,local,45,,false,Carol\r\n"
)


def snapshot(db: Database, *, but: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every table's row count and a digest of its rows (tokens' last use left out), except ``but``."""
    with db.transaction() as conn:
        tables = [r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {
            table: conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(j::text, '|' ORDER BY j::text), '')) "
                f"FROM (SELECT to_jsonb(t) - 'last_used_at' AS j FROM {table} t) s"
            ).fetchone()
            for table in sorted(tables)
            if table not in but
        }


@pytest.fixture
def farm(admin: Any) -> Any:
    """A node and two tenants, acme.example (with user 2000) and beta.example; the farm admin's client."""
    assert admin.post("/api/v1/nodes", json=NODE).status_code == 201
    for domain in ("acme.example", "beta.example"):
        assert admin.post("/api/v1/tenants", json={"domain": domain}).status_code == 201
    user = {"extension": "2000", "password": "pw-2000-long"}
    assert admin.post("/api/v1/tenants/acme.example/users", json=user).status_code == 201
    return admin


def users(client: Any, domain: str = "acme.example") -> dict[str, dict[str, Any]]:
    return {u["extension"]: u for u in client.get(f"/api/v1/tenants/{domain}/users").json}


def send(client: Any, csv: str, domain: str = "acme.example", **options: Any) -> Any:
    return client.post(f"/api/v1/tenants/{domain}/users/import", json={"csv": csv, **options})


def test_a_fusionpbx_export_with_a_bad_row_creates_the_good_rows_and_names_the_bad_field(farm, db) -> None:
    before = snapshot(db, but=("users",))
    resp = send(farm, FUSIONPBX_CSV)
    assert resp.status_code == 200, resp.json
    report = resp.json
    assert (report["created"], report["updated"], report["skipped"], report["errors"]) == (2, 0, 0, 1)
    assert "changed nothing" in report["note"]
    assert report["ignored_columns"] == ["extension_uuid", "domain_uuid", "number_alias", "user_context"]
    assert report["columns"]["effective_caller_id_name"] == "caller_id_name"
    bad = report["rows"][1]
    assert bad == {
        "row": 3,
        "extension": "1002",
        "outcome": "error",
        "field": "password",
        "column": "password",
        "error": "password: must be at least 8 characters",
    }
    assert [(r["row"], r["outcome"]) for r in report["rows"]] == [(2, "created"), (3, "error"), (4, "created")]

    found = users(farm)
    assert sorted(found) == ["1001", "1003", "2000"]
    alice, carol = found["1001"], found["1003"]
    assert (alice["caller_id_name"], alice["caller_id_number"], alice["display_name"]) == (
        "Alice Smith",
        "1001",
        "Reception",
    )
    assert (alice["toll_allow"], alice["ring_timeout"], alice["accountcode"]) == (["local", "domestic"], 30, "acme")
    assert alice["vm_a1_hash_set"] and alice["enabled"]
    # The phone registers with the password from the file; the mailbox opens with its PIN.
    stored = provisioning.get_child(db, "users", "acme.example", "1001")
    assert stored.a1_hash == a1_hash("1001", "acme.example", "Secret-1001-x")
    assert stored.vm_a1_hash == a1_hash("1001", "acme.example", "4321")
    # No effective caller id number: FusionPBX's outbound one is the user's caller id.
    assert (carol["caller_id_number"], carol["ring_timeout"], carol["enabled"]) == ("+15550001003", 45, False)
    assert not carol["vm_a1_hash_set"]
    assert snapshot(db, but=("users",)) == before  # nothing but the two users


def test_reimport_fails_skips_or_updates_existing_extensions(farm, db) -> None:
    first = "extension,password,display_name\n1001,Secret-1001-x,Alice\n1002,Secret-1002-x,Bob\n"
    assert send(farm, first).json["created"] == 2
    again = "extension,display_name\n1001,Alice Renamed\n2001,\n"  # 2001 is new but has no password

    failed = send(farm, again).json
    assert failed["errors"] == 2 and failed["created"] == 0
    assert failed["rows"][0]["field"] == "extension" and "on_conflict skip" in failed["rows"][0]["error"]
    assert failed["rows"][1]["field"] == "password"

    before = snapshot(db)
    skipped = send(farm, again, on_conflict="skip").json
    assert (skipped["skipped"], skipped["errors"]) == (1, 1)
    assert snapshot(db) == before

    updated = send(farm, again, on_conflict="update").json
    assert (updated["updated"], updated["errors"]) == (1, 1)
    found = users(farm)
    assert found["1001"]["display_name"] == "Alice Renamed"
    assert found["1002"]["display_name"] == "Bob"
    assert "2001" not in found


def test_a_dry_run_reports_what_an_import_would_do_and_stores_nothing(farm, db) -> None:
    before = snapshot(db)
    report = send(farm, FUSIONPBX_CSV, dry_run=True).json
    assert report["dry_run"] and (report["created"], report["errors"]) == (2, 1)
    assert report["note"].startswith("dry run: nothing was stored")
    assert snapshot(db) == before


def test_an_extension_twice_in_the_file_or_none_is_an_error_row(farm) -> None:
    report = send(farm, "extension,password\n1001,Secret-1001-x\n1001,Secret-1001-y\n,Secret-none-x\n").json
    assert [r["outcome"] for r in report["rows"]] == ["created", "error", "error"]
    assert report["rows"][1]["error"] == "extension: 1001 is also on row 2 of this file"
    blank = report["rows"][2]
    assert (blank["field"], blank["column"], blank["extension"]) == ("extension", "extension", None)


def test_a_tenant_admin_imports_into_its_own_tenant_only(farm, client, db) -> None:
    acme = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "acme.example")[0])
    csv = "extension,password\n1001,Secret-1001-x\n"
    before = snapshot(db)
    theirs = send(acme, csv, domain="beta.example")
    missing = send(acme, csv, domain="nobody.example")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json["error"].replace("beta", "X") == missing.json["error"].replace("nobody", "X")
    assert snapshot(db) == before
    assert send(acme, csv).json["created"] == 1
    assert "1001" in users(farm) and "1001" not in users(farm, "beta.example")


@pytest.mark.parametrize(
    "csv, says",
    [
        ("", "missing field(s): csv"),
        ("\r\n\r\n", "the file is empty"),
        ("1001,Secret-1001-x\n1002,Secret-1002-x\n", "the first line must name the columns"),
        ("extension,password,shoe_size\n1001,Secret-1001-x,44\n", "unknown column(s): shoe_size"),
        ("password,display_name\nSecret-1001-x,Alice\n", "no extension column"),
        ("extension,caller_id_name,effective_caller_id_name\n1001,a,b\n", "both give caller_id_name"),
        ('extension,password\n1001,"Secret\n', "not valid CSV"),
        ("extension,password\n1001,Secret\x00-1001\n", "NUL"),
        ("extension,password\n" + "".join(f"{1000 + i},Secret-{i}-xx\n" for i in range(MAX_ROWS + 1)), "rows"),
    ],
    ids=lambda value: value if len(value) < 40 else f"{len(value)} characters",  # the ids land in the environment
)
def test_a_file_that_is_not_one_is_one_400_and_stores_nothing(farm, db, csv: str, says: str) -> None:
    before = snapshot(db)
    resp = send(farm, csv)
    detail = resp.json["detail"]
    assert resp.status_code == 400 and (detail.get("field") == "csv" or detail.get("missing") == ["csv"]), resp.json
    assert says in resp.json["error"], resp.json["error"]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "body, field, status",
    [
        ({"on_conflict": "overwrite", "csv": "extension\n1001\n"}, "on_conflict", 400),
        ({"dry_run": "maybe", "csv": "extension\n1001\n"}, "dry_run", 400),
        ({"csv": 1001}, "csv", 400),
        ({"csv": "extension\n" + "1001\n" * 300_000}, "body", 413),
    ],
    ids=["on_conflict", "dry_run", "csv", "too-large"],
)
def test_bad_options_and_bodies_name_their_field(farm, db, body: dict[str, Any], field: str, status: int) -> None:
    before = snapshot(db)
    resp = farm.post("/api/v1/tenants/acme.example/users/import", json=body)
    assert resp.status_code == status and resp.json["detail"]["field"] == field, resp.json
    assert snapshot(db) == before


def test_a_raw_csv_body_is_told_to_come_as_json(farm) -> None:
    resp = farm.post(
        "/api/v1/tenants/acme.example/users/import",
        data="extension,password\n1001,Secret-1001-x\n",
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status_code == 400 and '{"csv"' in resp.json["error"]


def test_the_import_is_in_the_openapi_document(client) -> None:
    op = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/tenants/{ref}/users/import"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["csv"]
    assert schema["properties"]["on_conflict"]["enum"] == ["fail", "skip", "update"]
    assert "per-row report" in op["summary"] and "ignored_columns" in op["description"]


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli_farm(dsn: str, tmp_path: Path) -> tuple[str, Path]:
    """A farm with tenant acme.example, and FusionPBX's export of three extensions (one bad) in a file."""
    node = ("node", "add", "fs1", "--sip", "10.0.0.1", "--esl", "10.0.0.1", "--esl-password", "x")
    assert fsfarm(dsn, *node).returncode == 0
    assert fsfarm(dsn, "tenant", "add", "acme.example").returncode == 0
    exported = tmp_path / "extension_export.csv"
    exported.write_text(FUSIONPBX_CSV, encoding="utf-8")
    return dsn, exported


def cli_users(dsn: str) -> list[str]:
    return [u["extension"] for u in json.loads(fsfarm(dsn, "user", "list", "-t", "acme.example", "--json").stdout)]


def test_cli_import_reports_the_bad_row_and_exits_nonzero(cli_farm) -> None:
    dsn, exported = cli_farm
    out = fsfarm(dsn, "user", "import", "acme.example", str(exported))
    assert out.returncode == 1, out
    assert out.stdout.splitlines()[0].startswith("acme.example: 2 created, 0 updated, 0 skipped, 1 failed")
    assert "ignored columns" in out.stdout and "extension_uuid" in out.stdout
    assert out.stderr.strip() == "error: row 3 (1002): password: must be at least 8 characters"
    assert "importing" not in out.stdout  # stdout is a pipe: no progress bar
    assert cli_users(dsn) == ["1001", "1003"]

    skipped = fsfarm(dsn, "user", "import", "acme.example", str(exported), "--on-conflict", "skip", "--json")
    assert skipped.returncode == 1 and skipped.stderr == ""
    report = json.loads(skipped.stdout)  # with --json stdout is the report and nothing else
    assert (report["skipped"], report["errors"]) == (2, 1)

    good = exported.with_name("good.csv")
    good.write_text("extension,password\n1004,Secret-1004-x\n")
    dry = fsfarm(dsn, "user", "import", "acme.example", str(good), "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout and cli_users(dsn) == ["1001", "1003"]
    assert fsfarm(dsn, "user", "import", "acme.example", str(good)).returncode == 0
    assert cli_users(dsn) == ["1001", "1003", "1004"]


@pytest.mark.parametrize(
    "content, says",
    [
        (b"extension,shoe_size\n1001,44\n", "FILE: unknown column(s): shoe_size"),
        (b"\xff\xfeextension\n", "not UTF-8 text"),
        (b"extension\n" + b"1001\n" * 300_000, "over the 1048576 byte limit"),
    ],
    ids=["unknown-column", "not-utf8", "too-large"],
)
def test_cli_a_file_that_is_not_one_is_one_line_and_exit_1(cli_farm, content: bytes, says: str) -> None:
    dsn, exported = cli_farm
    exported.write_bytes(content)
    out = fsfarm(dsn, "user", "import", "acme.example", str(exported))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: ") and says in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    assert cli_users(dsn) == []


def test_cli_import_draws_progress_on_a_terminal_only(cli_farm) -> None:
    dsn, exported = cli_farm
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn}
    argv = [sys.executable, "-m", "controller.cli.entry", "user", "import", "acme.example", str(exported)]
    code, shown, errors = run_on_terminal([*argv, "--dry-run"], env)
    assert code == 1 and "importing" in shown and "3/3" in shown, shown
    assert "error: row 3 (1002)" in errors
    code, shown, _ = run_on_terminal([*argv, "--dry-run", "--json"], env)
    assert code == 1 and "importing" not in shown
    assert json.loads(shown)["created"] == 2  # --json on a terminal: the report and nothing else


def test_storage_sweep_removes_a_deleted_users_files_with_progress_on_a_terminal(cli_farm, db, tmp_path) -> None:
    dsn, _ = cli_farm
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn, "FSFARM_STATE_DIR": str(tmp_path / "state")}
    tenant_ref = "acme.example"
    for ext in ("1001", "1002"):
        provisioning.add_child(db, "users", tenant_ref, {"extension": ext, "password": f"Secret-{ext}-x"})
    with db.transaction() as conn:
        tenant_id = provisioning.get_tenant(conn, tenant_ref).id
    storage = open_storage(None, tmp_path / "state")
    for ext in ("1001", "1002"):
        storage.put(f"{tenant_id}/voicemail/{ext}/msg.wav", b"RIFF")
        provisioning.remove_child(db, "users", tenant_ref, ext)
    argv = [sys.executable, "-m", "controller.cli.entry", "storage", "sweep"]
    code, shown, _ = run_on_terminal(argv, env)
    assert code == 0 and "sweeping" in shown and "2/2" in shown, shown
    assert "removed 2 file(s) of 2 deleted owner(s)" in shown
    assert storage.list(str(tenant_id)) == []
    again = fsfarm(dsn, "storage", "sweep", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == {
        "owners": 0,
        "result": "no deleted owners left files behind",
    }


def test_an_import_is_one_change_notice_for_the_tenant_not_one_per_row(farm, dsn) -> None:
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN fsfarm_config")
        csv = "extension,password\n" + "".join(f"{3000 + i},Secret-{i}-xyz\n" for i in range(20)) + "1,bad\n"
        assert send(farm, csv).json["created"] == 20
        heard = list(listener.notifies(timeout=1.0))  # everything a commit sends arrives together
    assert [json.loads(n.payload)["what"] for n in heard] == ["user"]
