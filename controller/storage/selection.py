"""Choosing the backend from configuration: ``FSFARM_STORAGE`` or the state dir's default."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.errors import Invalid
from controller.storage.base import Storage

_GLUSTER = re.compile(r"^gluster://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?/(?P<volume>[A-Za-z0-9_.-]+)/?$")


@dataclass(frozen=True)
class StorageSpec:
    """A parsed storage setting: ``kind`` is ``local`` (with ``path``) or ``gluster``."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 24007
    volume: str = ""


def parse_spec(spec: str) -> StorageSpec:
    """``local:/abs/path`` or ``gluster://host[:port]/volume``; Invalid for anything else."""
    if spec.startswith("local:"):
        path = spec[len("local:") :]
        if not path.startswith("/"):
            raise Invalid("FSFARM_STORAGE: local: needs an absolute path, e.g. local:/var/lib/fsfarm/storage")
        return StorageSpec("local", path=path)
    match = _GLUSTER.match(spec)
    if match:
        port = int(match["port"] or 24007)
        if not 0 < port < 65536:
            raise Invalid("FSFARM_STORAGE: gluster port out of range")
        return StorageSpec("gluster", host=match["host"], port=port, volume=match["volume"])
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
