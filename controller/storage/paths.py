"""Keys in shared storage: pure checks that refuse path tricks before any backend sees them.

Layout, per tenant: ``<tenant-id>/prompts/...``, ``<tenant-id>/voicemail/<ext>/...``,
``<tenant-id>/recordings/...``; farm-wide: ``farm/sounds/...`` (the prompts the controller generates).
FreeSWITCH nodes see the same tree on their FUSE mount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from controller.errors import Invalid
from controller.storage.base import FileInfo, Storage

AREAS = ("prompts", "voicemail", "recordings")
FARM = "farm"  # farm-wide files beside the tenants' folders; never a tenant id (those are UUIDs)
FARM_AREAS = ("sounds",)
MAX_KEY = 1024
# Names are what FreeSWITCH's playback and a shell accept without quoting.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@=-]{0,127}$")
TEMP_MARK = ".fsfarm-tmp-"


def check_relative(path: str, what: str = "path") -> str:
    """``path`` if it is a safe relative path (``a/b.wav``); Invalid for anything that could escape."""
    if not isinstance(path, str) or not path:
        raise Invalid(f"{what}: must be a non-empty relative path", {"field": what})
    if len(path) > MAX_KEY:
        raise Invalid(f"{what}: longer than {MAX_KEY} characters", {"field": what})
    if "\x00" in path or "\\" in path:
        raise Invalid(f"{what}: NUL bytes and backslashes are not allowed", {"field": what})
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise Invalid(f"{what}: must be relative, not absolute", {"field": what})
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise Invalid(f"{what}: empty, '.' and '..' segments are not allowed", {"field": what})
        if TEMP_MARK in segment or not _SEGMENT.match(segment):
            raise Invalid(
                f"{what}: segment {segment!r} must start with a letter or digit and use only letters, "
                "digits and . _ + @ = -",
                {"field": what},
            )
    return path


def check_key(key: str) -> str:
    """A full storage key: a tenant UUID (or ``farm``), a known area, then a safe relative path."""
    check_relative(key, "key")
    owner, _, rest = key.partition("/")
    area = rest.partition("/")[0]
    if owner == FARM:
        if area not in FARM_AREAS:
            raise Invalid(f"key: farm area must be one of {', '.join(FARM_AREAS)}", {"field": "key"})
        return key
    try:
        UUID(owner)
    except ValueError:
        raise Invalid("key: must start with a tenant id", {"field": "key"}) from None
    if area not in AREAS:
        raise Invalid(f"key: area must be one of {', '.join(AREAS)}", {"field": "key"})
    return key


@dataclass(frozen=True)
class TenantFiles:
    """One tenant's view of shared storage: every path is relative to ``<tenant-id>/<area>/``."""

    storage: Storage
    tenant_id: UUID

    def key(self, area: str, path: str) -> str:
        if area not in AREAS:
            raise Invalid(f"area: must be one of {', '.join(AREAS)}", {"field": "area"})
        return f"{self.tenant_id}/{area}/{check_relative(path)}"

    def relative(self, area: str, info: FileInfo) -> FileInfo:
        """``info`` with its path made relative to the area again (what the tenant sees)."""
        prefix = f"{self.tenant_id}/{area}/"
        assert info.path.startswith(prefix), info.path
        return FileInfo(info.path[len(prefix) :], info.size, info.modified)

    def put(self, area: str, path: str, data: bytes) -> FileInfo:
        return self.relative(area, self.storage.put(self.key(area, path), data))

    def get(self, area: str, path: str) -> bytes:
        return self.storage.get(self.key(area, path))

    def stat(self, area: str, path: str) -> FileInfo:
        return self.relative(area, self.storage.stat(self.key(area, path)))

    def exists(self, area: str, path: str) -> bool:
        return self.storage.exists(self.key(area, path))

    def delete(self, area: str, path: str) -> bool:
        return self.storage.delete(self.key(area, path))

    def list(self, area: str, folder: str = "") -> list[FileInfo]:
        if area not in AREAS:
            raise Invalid(f"area: must be one of {', '.join(AREAS)}", {"field": "area"})
        prefix = f"{self.tenant_id}/{area}"
        if folder:
            prefix = f"{prefix}/{check_relative(folder, 'folder')}"
        return [self.relative(area, info) for info in self.storage.list(prefix)]
