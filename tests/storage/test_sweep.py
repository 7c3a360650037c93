"""Deleting a user or a tenant removes its files from shared storage (after the delete commits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller import provisioning
from controller.storage.audio import make_wav
from controller.storage.local import LocalStorage
from controller.storage.paths import TenantFiles
from controller.storage.sweep import sweep


def test_deleted_owners_lose_their_files_and_nobody_else_does(db: Any, tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "shared"))
    acme = provisioning.add_tenant(db, {"domain": "acme.example"})
    beta = provisioning.add_tenant(db, {"domain": "beta.example"})
    for tenant in ("acme.example", "beta.example"):
        for ext in ("1001", "1002"):
            provisioning.add_child(db, "users", tenant, {"extension": ext, "password": f"pw-{ext}-long"})
    files = {t.id: TenantFiles(storage, t.id) for t in (acme, beta)}
    for tf in files.values():
        for ext in ("1001", "1002"):
            tf.put("voicemail", f"{ext}/msg.wav", make_wav(0.5))
        tf.put("prompts", "hello.wav", make_wav(0.5))
    assert sweep(db, storage) == "no deleted owners left files behind"

    provisioning.remove_child(db, "users", "acme.example", "1001")
    # The extension is given to someone new, who gets a message before the sweep runs: it stays.
    provisioning.add_child(db, "users", "acme.example", {"extension": "1001", "password": "pw-new-1001"})
    files[acme.id].put("voicemail", "1001/new.wav", make_wav(0.5))
    assert sweep(db, storage) == "removed 1 file(s) of 1 deleted owner(s)"
    assert not files[acme.id].exists("voicemail", "1001/msg.wav")
    assert files[acme.id].exists("voicemail", "1001/new.wav")
    assert files[acme.id].exists("voicemail", "1002/msg.wav") and files[acme.id].exists("prompts", "hello.wav")

    provisioning.remove_tenant(db, "beta.example", force=True)
    assert sweep(db, storage) == "removed 3 file(s) of 1 deleted owner(s)"
    assert storage.list(str(beta.id)) == []
    assert files[acme.id].exists("voicemail", "1002/msg.wav")  # the other tenant keeps everything
    assert sweep(db, storage) == "no deleted owners left files behind"
