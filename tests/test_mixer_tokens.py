"""A mixer's control token: given at registration (API and CLI), sent by the controller, never shown again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from controller.stores import mixers

TOKEN = "m1-control-token-0123456789"
MIXER = {"name": "m1", "sip_address": "10.0.0.30:5090", "control_url": "http://10.0.0.30:5091"}


def test_the_api_takes_the_token_checks_it_and_never_returns_it(admin: Any, db: Any) -> None:
    missing = admin.post("/api/v1/mixers", json=MIXER)
    assert missing.status_code == 400 and missing.json["detail"]["missing"] == ["control_token"], missing.json
    for bad in ("short", "has spaces in the middle of it", "x" * 201, 12345678901234567):
        r = admin.post("/api/v1/mixers", json={**MIXER, "control_token": bad})
        assert r.status_code == 400 and r.json["detail"]["field"] == "control_token", (bad, r.json)
    assert admin.get("/api/v1/mixers").json == []

    created = admin.post("/api/v1/mixers", json={**MIXER, "control_token": TOKEN})
    assert created.status_code == 201 and created.json["control_token_set"] is True, created.json
    listed = admin.get("/api/v1/mixers")
    assert TOKEN not in created.get_data(as_text=True) + listed.get_data(as_text=True)
    with db.transaction() as conn:
        assert mixers.get(conn, "m1").control_token == TOKEN  # what the controller sends the mixer

    replaced = admin.put("/api/v1/mixers/m1/control-token", json={"control_token": TOKEN + "-new"})
    assert replaced.status_code == 200 and TOKEN not in replaced.get_data(as_text=True), replaced.json
    with db.transaction() as conn:
        assert mixers.get(conn, "m1").control_token == TOKEN + "-new"
    assert admin.put("/api/v1/mixers/m9/control-token", json={"control_token": TOKEN}).status_code == 404
    refused = admin.put("/api/v1/mixers/m1/control-token", json={"control_token": "short"})
    assert refused.status_code == 400 and refused.json["detail"]["field"] == "control_token"


def fsfarm(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_reads_the_token_from_a_copy_of_the_mixers_token_file(dsn: str, db: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "m1.token"
    token_file.write_text(TOKEN + "\n")
    where = ["--sip", "10.0.0.30:5090", "--control", "http://10.0.0.30:5091"]
    without = fsfarm(dsn, "mixers", "add", "m1", *where)
    assert without.returncode == 1 and without.stderr.strip() == "error: missing --token-file", without.stderr
    added = fsfarm(dsn, "mixers", "add", "m1", *where, "--token-file", str(token_file), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["control_token_set"] is True and TOKEN not in added.stdout
    listed = fsfarm(dsn, "mixers", "list", "--json")
    assert listed.returncode == 0 and TOKEN not in listed.stdout
    with db.transaction() as conn:
        assert mixers.get(conn, "m1").control_token == TOKEN

    token_file.write_text("rotated-token-0123456789\n")
    assert fsfarm(dsn, "mixers", "token", "m1", "--token-file", str(token_file)).returncode == 0
    with db.transaction() as conn:
        assert mixers.get(conn, "m1").control_token == "rotated-token-0123456789"
    gone = fsfarm(dsn, "mixers", "token", "m1", "--token-file", str(tmp_path / "nope"))
    assert gone.returncode == 2 and "cannot read" in gone.stderr, gone.stderr
