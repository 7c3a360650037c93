"""Choosing the backend from configuration: ``FSFARM_STORAGE`` or the state dir's default."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.domain import HostPort
from controller.errors import Invalid
from controller.storage.base import Storage

_GLUSTER_VOLUME = re.compile(r"^[A-Za-z0-9_.-]+$")
GLUSTER_PORT = 24007  # glusterd's management port, taken when the setting gives none


@dataclass(frozen=True)
class StorageSpec:
    """A parsed storage setting: ``kind`` is ``local`` (with ``path``) or ``gluster``."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = GLUSTER_PORT
    volume: str = ""


def parse_spec(spec: str) -> StorageSpec:
    """``local:/abs/path`` or ``gluster://host[:port]/volume``; Invalid for anything else."""
    if spec.startswith("local:"):
        path = spec[len("local:") :]
        if not path.startswith("/"):
            raise Invalid("FSFARM_STORAGE: local: needs an absolute path, e.g. local:/var/lib/fsfarm/storage")
        return StorageSpec("local", path=path)
    authority, sep, volume = spec.removeprefix("gluster://").partition("/")
    volume = volume.removesuffix("/")
    if spec.startswith("gluster://") and sep and _GLUSTER_VOLUME.match(volume):
        try:
            address = HostPort.parse(authority, GLUSTER_PORT)
        except ValueError as exc:
            raise Invalid(f"FSFARM_STORAGE: {exc}", {"value": spec}) from None
        return StorageSpec("gluster", host=address.host, port=address.port, volume=volume)
    raise Invalid("FSFARM_STORAGE: expected local:/path or gluster://host[:port]/volume", {"value": spec})


def open_storage(spec: str | None, state_dir: Path) -> Storage:
    """The configured backend; without a setting, a directory ``storage`` under the state dir."""
    parsed = parse_spec(spec) if spec else StorageSpec("local", path=str(Path(state_dir) / "storage"))
    if parsed.kind == "local":
        from controller.storage.local import LocalStorage

        return LocalStorage(parsed.path)
    from controller.storage.gluster import GlusterStorage

    return GlusterStorage(parsed.host, parsed.volume, parsed.port)


def storage_for_app(extensions: dict[str, Any]) -> Storage:
    """The Flask app's storage, opened from the app's settings (FSFARM_STORAGE) on first use."""
    if "fsfarm.storage" not in extensions:
        settings = extensions["fsfarm.settings"]
        extensions["fsfarm.storage"] = open_storage(settings.storage.url, settings.state_dir)
    storage: Storage = extensions["fsfarm.storage"]
    return storage
