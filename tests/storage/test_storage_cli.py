"""The storage commands work on the same database and storage as the controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller import provisioning
from controller.cli import main
from controller.storage import voicemail
from controller.storage.audio import make_wav
from controller.storage.local import LocalStorage


@pytest.fixture
def cli_env(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FSFARM_DATABASE_URL", dsn)
    monkeypatch.setenv("FSFARM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FSFARM_STORAGE", f"local:{tmp_path / 'shared'}")
    return tmp_path / "shared"


def test_prompt_upload_list_get_rm(db: Any, cli_env: Path, tmp_path: Path) -> None:
    provisioning.add_tenant(db, {"domain": "acme.example"})
    wav = tmp_path / "welcome.wav"
    wav.write_bytes(make_wav(2, 8000))
    run = CliRunner().invoke
    up = run(main, ["prompt", "upload", "-t", "acme.example", str(wav), "--name", "ivr/welcome"])
    assert up.exit_code == 0, up.output
    assert "ivr/welcome.wav" in up.output
    listed = run(main, ["prompt", "list", "-t", "acme.example"])
    assert "ivr/welcome.wav" in listed.output
    out = tmp_path / "back.wav"
    assert run(main, ["prompt", "get", "-t", "acme.example", "ivr/welcome", "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == wav.read_bytes()
    assert run(main, ["prompt", "rm", "-t", "acme.example", "ivr/welcome.wav"]).exit_code == 0
    assert "(none)" in run(main, ["prompt", "list", "-t", "acme.example"]).output
    bad = tmp_path / "bad.wav"
    bad.write_bytes(make_wav(1, 44100))
    refused = run(main, ["prompt", "upload", "-t", "acme.example", str(bad)])
    assert refused.exit_code == 1 and "44100 Hz" in refused.output


def test_voicemail_list_read_get_rm(db: Any, cli_env: Path, tmp_path: Path) -> None:
    tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
    provisioning.add_child(db, "users", "acme.example", {"extension": "1001", "password": "long-secret-1"})
    audio = make_wav(1, 8000)
    box = voicemail.mailbox(db, tenant, "1001")
    message = voicemail.deposit(db, LocalStorage(cli_env), box, audio, caller_id_number="+15550001111")
    run = CliRunner().invoke
    listed = run(main, ["voicemail", "list", "-t", "acme.example", "1001", "--json"])
    assert '"+15550001111"' in listed.output and '"read_at": null' in listed.output
    assert run(main, ["voicemail", "read", "-t", "acme.example", "1001", str(message.id)]).exit_code == 0
    assert '"read_at": null' not in run(main, ["voicemail", "list", "-t", "acme.example", "1001", "--json"]).output
    out = tmp_path / "msg.wav"
    assert run(main, ["voicemail", "get", "-t", "acme.example", "1001", str(message.id), "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == audio
    assert run(main, ["voicemail", "rm", "-t", "acme.example", "1001", str(message.id)]).exit_code == 0
    assert "(none)" in run(main, ["voicemail", "list", "-t", "acme.example", "1001"]).output
    missing = run(main, ["voicemail", "list", "-t", "acme.example", "4242"])
    assert missing.exit_code == 1 and "no user" in missing.output
