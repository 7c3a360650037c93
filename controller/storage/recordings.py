"""Conference and call recordings that FreeSWITCH nodes write under ``<tenant>/recordings/``.

Nodes write them through their FUSE mount of the same volume; the controller only lists and serves them.
"""

from __future__ import annotations

from uuid import UUID

from controller.storage.base import FileInfo, Storage
from controller.storage.paths import TenantFiles


def list_recordings(storage: Storage, tenant_id: UUID, folder: str = "") -> list[FileInfo]:
    return TenantFiles(storage, tenant_id).list("recordings", folder)


def download(storage: Storage, tenant_id: UUID, path: str) -> bytes:
    return TenantFiles(storage, tenant_id).get("recordings", path)
