"""The farm's secret key: where it comes from, what a wrong one does, and that ciphertexts stay where they were put."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller import provisioning, runtime, secrets
from controller.config import Settings, describe
from controller.errors import Invalid
from controller.stores import mixers, nodes

NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "ClueCon"}


def other_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def fsfarm(dsn: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args],
        env={**os.environ, "FSFARM_DATABASE_URL": dsn, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_configured_key_one_is_made_in_the_state_dir_once_0600(dsn: str, tmp_path: Path) -> None:
    settings = Settings(database_url=dsn, state_dir=tmp_path / "state")
    db = runtime.open_database(settings)
    try:
        provisioning.add_node(db, NODE)
    finally:
        db.close()
    key_file = tmp_path / "state" / "secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = key_file.read_text()
    assert len(base64.b64decode(first)) == 32
    key_file.chmod(0o644)
    db = runtime.open_database(settings)  # the next start reads the same key (and tightens the file again)
    try:
        with db.reads() as conn:
            assert nodes.get(conn, "fs1").esl_password == "ClueCon"
    finally:
        db.close()
    assert key_file.read_text() == first and key_file.stat().st_mode & 0o777 == 0o600


def test_a_configured_key_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    key = other_key()
    settings = Settings.from_env({"FSFARM_SECRET_KEY": key, "FSFARM_STATE_DIR": str(tmp_path)})
    assert secrets.load_key(settings.secret_key, tmp_path) == base64.b64decode(key)
    assert not (tmp_path / "secret-key").exists()
    assert ("FSFARM_SECRET_KEY", "(set)") in [(name, value) for name, value, _ in describe(settings)]
    assert key not in repr(settings)


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_configured_key_is_one_error_naming_the_variable(bad: str) -> None:
    with pytest.raises(Invalid) as caught:
        Settings.from_env({"FSFARM_SECRET_KEY": bad})
    assert caught.value.message.startswith("FSFARM_SECRET_KEY: must be 32 bytes in base64")


def test_a_wrong_key_is_one_clear_error_never_garbage(dsn: str, db: Any, client: Any, admin: Any) -> None:
    provisioning.add_node(db, NODE)
    done = fsfarm(dsn, "node", "list", FSFARM_SECRET_KEY=other_key())
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot decrypt nodes.esl_password:")
    assert "is not the one it was sealed with" in line
    assert fsfarm(dsn, "node", "list").returncode == 0  # the session's key still opens it

    secrets.use(base64.b64decode(other_key()))  # this process now holds another key
    response = admin.get("/api/v1/nodes")
    assert response.status_code == 500 and "secret key" in response.json["error"]


def test_a_ciphertext_copied_to_another_row_does_not_open(db: Any) -> None:
    provisioning.add_node(db, NODE)
    provisioning.add_node(db, {**NODE, "name": "fs2", "esl_password": "other"})
    with db.transaction() as conn:
        conn.execute("UPDATE nodes SET esl_password = (SELECT esl_password FROM nodes WHERE name = 'fs1')")
    with db.reads() as conn, pytest.raises(secrets.SecretKeyError, match=r"cannot decrypt nodes\.esl_password"):
        nodes.get(conn, "fs2")


def test_a_mixers_control_token_is_sealed_and_still_sent(db: Any) -> None:
    token = "mixer-token-" + "x" * 20
    provisioning.add_mixer(
        db,
        {"name": "mix1", "sip_address": "10.0.0.9:5090", "control_url": "http://10.0.0.9:8090", "control_token": token},
    )
    with db.reads() as conn:
        dump = str(conn.execute("SELECT row_to_json(m) FROM mixers m").fetchall())
        [mixer] = mixers.list_all(conn)
    assert token not in dump and secrets.PREFIX in dump
    assert mixer.control_token == token  # what the controller sends as its bearer token
