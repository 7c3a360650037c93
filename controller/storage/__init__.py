"""Shared storage for prompts, voicemail and recordings: one interface, two backends.

The backend is chosen by configuration only (``FSFARM_STORAGE=local:/path`` or
``gluster://host[:port]/volume``); everything else talks to :class:`Storage` through
:class:`TenantFiles`, which confines every path to one tenant's folder.
"""

from controller.storage import audio, prompts, recordings, voicemail
from controller.storage.base import FileInfo, Storage
from controller.storage.paths import AREAS, TenantFiles
from controller.storage.selection import StorageSpec, open_storage, parse_spec, storage_for_app

__all__ = [
    "AREAS",
    "FileInfo",
    "Storage",
    "StorageSpec",
    "TenantFiles",
    "audio",
    "open_storage",
    "parse_spec",
    "prompts",
    "recordings",
    "storage_for_app",
    "voicemail",
]
