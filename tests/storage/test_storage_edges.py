"""Storage at its edges: symlinks a node's mount could plant, a file over a folder, WAV headers that lie."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest

from controller import provisioning
from controller.errors import Conflict, Invalid, NotFound
from controller.storage import TenantFiles
from controller.storage.audio import check_wav, make_wav
from tests.conftest import AuthedClient

WAV = make_wav(0.5, 8000)


def plant_symlink(backend: Any, target: str, link: str) -> None:
    """What a compromised node could do on its mount: a link, below a tenant's folder, to elsewhere."""
    if backend.name == "local":
        path = backend.storage.root / link
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(backend.storage.root / target)
    else:
        vol = backend.storage._vol()
        vol.makedirs(link.rpartition("/")[0], 0o755)
        vol.symlink(f"/{target}", link)


def test_symlinks_under_a_tenants_folder_reach_nothing(backend: Any) -> None:
    a, b = TenantFiles(backend.storage, uuid.uuid4()), TenantFiles(backend.storage, uuid.uuid4())
    a.put("voicemail", "1001/msg.wav", b"secret")
    plant_symlink(backend, f"{a.tenant_id}/voicemail/1001", f"{b.tenant_id}/voicemail/1001")
    plant_symlink(backend, f"{a.tenant_id}/voicemail/1001/msg.wav", f"{b.tenant_id}/prompts/stolen.wav")
    for area, path in [("voicemail", "1001/msg.wav"), ("prompts", "stolen.wav")]:
        with pytest.raises(NotFound):
            b.get(area, path)
        assert not b.exists(area, path)
    with pytest.raises(NotFound):
        b.put("voicemail", "1001/new.wav", b"through the link")
    assert [f.path for f in b.list("prompts")] == []
    assert backend.read_directly(f"{a.tenant_id}/voicemail/1001/msg.wav") == b"secret"
    assert backend.read_directly(f"{a.tenant_id}/voicemail/1001/new.wav") is None


def test_a_file_over_a_folder_is_the_callers_conflict(backend: Any) -> None:
    files = TenantFiles(backend.storage, uuid.uuid4())
    files.put("prompts", "ivr/welcome.wav", b"x")
    with pytest.raises(Conflict):
        files.put("prompts", "ivr", b"y")
    with pytest.raises(Conflict):
        files.put("prompts", "ivr/welcome.wav/deeper.wav", b"z")
    assert files.get("prompts", "ivr/welcome.wav") == b"x"


def _lying(offset: int, size: int) -> bytes:
    data = bytearray(WAV)
    data[offset : offset + 4] = struct.pack("<I", size)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        _lying(16, 0xFFFFFFFF),  # the fmt chunk says 4 GB
        _lying(16, 0x7FFFFFFF),
        WAV[:12] + b"JUNK" + struct.pack("<I", 0xFFFFFFF0) + WAV[12:],  # a chunk to skip, past the end
        _lying(40, 0xFFFFFFFF),  # the data chunk says 4 GB
    ],
)
def test_wav_headers_with_huge_chunk_sizes_are_invalid(data: bytes) -> None:
    with pytest.raises(Invalid):
        check_wav(data)


def test_put_over_a_folder_and_a_lying_wav_answer_4xx_through_the_api(app: Any, client: Any, db: Any) -> None:
    provisioning.add_tenant(db, {"domain": "acme.example"})
    admin = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "acme.example")[0])
    wav = {"Content-Type": "audio/wav"}
    base = "/api/v1/tenants/acme.example/prompts"
    assert admin.put(f"{base}/menu.wav/welcome.wav", data=WAV, headers=wav).status_code == 201
    for name in ("menu.wav", "menu.wav/welcome.wav/deeper.wav"):  # over a folder, under a file
        over = admin.put(f"{base}/{name}", data=WAV, headers=wav)
        assert over.status_code == 409 and over.json["detail"]["field"] == "name", over.json
    lying = admin.put("/api/v1/tenants/acme.example/prompts/x.wav", data=_lying(16, 0xFFFFFFFF), headers=wav)
    assert lying.status_code == 400, lying.json
    assert [p["name"] for p in admin.get("/api/v1/tenants/acme.example/prompts").json] == ["menu.wav/welcome.wav"]


def test_a_linked_folder_lists_nothing(backend: Any) -> None:
    a, b = TenantFiles(backend.storage, uuid.uuid4()), TenantFiles(backend.storage, uuid.uuid4())
    a.put("recordings", "conferences/3000/a.wav", b"theirs")
    plant_symlink(backend, f"{a.tenant_id}/recordings/conferences", f"{b.tenant_id}/recordings/conferences")
    assert b.list("recordings") == []
    assert b.list("recordings", "conferences") == []
