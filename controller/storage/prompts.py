"""IVR and conference prompts uploaded by tenant admins: validated WAVs under ``<tenant>/prompts/``."""

from __future__ import annotations

from uuid import UUID

from controller.errors import Invalid, NotFound
from controller.storage import audio
from controller.storage.base import FileInfo, Storage
from controller.storage.paths import TenantFiles, check_relative


def prompt_name(name: str) -> str:
    """A prompt's path inside the tenant's prompts folder; ``.wav`` is added when missing."""
    check_relative(name, "name")
    if not name.lower().endswith(".wav"):
        if "." in name.rsplit("/", 1)[-1]:
            raise Invalid("name: prompts are WAV files; use a .wav name", {"field": "name"})
        name = f"{name}.wav"
    return name


def upload(storage: Storage, tenant_id: UUID, name: str, data: bytes) -> tuple[FileInfo, audio.WavInfo]:
    """Check and store a prompt (replacing one of the same name); nothing is written if it is refused."""
    path = prompt_name(name)
    info = audio.check_wav(data)
    return TenantFiles(storage, tenant_id).put("prompts", path, data), info


def list_prompts(storage: Storage, tenant_id: UUID) -> list[FileInfo]:
    return TenantFiles(storage, tenant_id).list("prompts")


def download(storage: Storage, tenant_id: UUID, name: str) -> bytes:
    return TenantFiles(storage, tenant_id).get("prompts", prompt_name(name))


def delete(storage: Storage, tenant_id: UUID, name: str) -> None:
    if not TenantFiles(storage, tenant_id).delete("prompts", prompt_name(name)):
        raise NotFound(f"no prompt {name!r}")
