"""The storage interface every backend implements, over validated relative keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class FileInfo:
    """One stored file: its key relative to the storage root, size in bytes, last change."""

    path: str
    size: int
    modified: datetime


@runtime_checkable
class Storage(Protocol):
    """A flat namespace of files under keys like ``<tenant-id>/prompts/welcome.wav``.

    Keys reaching a backend are already checked by ``controller.storage.paths``; backends check
    them again, so a bug above cannot walk out of the root. Every failure to reach the medium is
    raised as ``controller.errors.Unavailable``; a missing file as ``NotFound``.
    """

    description: str

    def put(self, key: str, data: bytes) -> FileInfo:
        """Store ``data`` atomically: readers see the old file or the whole new one, never a part."""
        ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> list[FileInfo]:
        """Every file under the folder ``prefix``, recursively, sorted by key."""
        ...

    def delete(self, key: str) -> bool:
        """Remove a file; False when it was not there."""
        ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> FileInfo: ...
