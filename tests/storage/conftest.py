"""A real GlusterFS volume for the storage tests, and the two backends to run every test against.

The session fixture starts glusterd on loopback with its own working directory, creates and
starts a one-brick volume (``force``: the brick sits on the root filesystem) and stops it all at
the end. It skips, saying why, only when glusterd or the gfapi binding is not installed.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.storage.gluster import GlusterStorage, forget_at_exit, load_gfapi
from controller.storage.local import LocalStorage
from tests.storage.glusterd import GlusterVolume, running_gluster, why_no_gluster


@pytest.fixture(scope="session")
def gluster_volume() -> Iterator[GlusterVolume]:
    reason = why_no_gluster()
    if reason:
        pytest.skip(f"GlusterFS tests skipped: {reason}")
    with running_gluster() as volume:
        yield volume


@dataclass(frozen=True)
class Backend:
    """A backend under test, with a way to read a key behind its back (a second client)."""

    name: str
    storage: Any
    read_directly: Any


_second_clients: dict[str, Any] = {}


def _second_gluster_client(gv: GlusterVolume) -> Any:
    # A separate glfs instance, never unmounted (umount takes ~11 s); one per session.
    if gv.volume not in _second_clients:
        handle = load_gfapi().Volume(gv.host, gv.volume, port=gv.port)
        handle.mount()
        forget_at_exit(handle)
        _second_clients[gv.volume] = handle
    return _second_clients[gv.volume]


def _read_gluster(gv: GlusterVolume, key: str) -> bytes | None:
    vol = _second_gluster_client(gv)
    try:
        with vol.fopen(key, "rb") as f:
            parts = []
            while chunk := f.read(1024 * 1024):
                parts.append(chunk)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESTALE):  # ESTALE: deleted by the other client
            return None
        raise
    return b"".join(parts)


@pytest.fixture(params=["local", "gluster"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each test using this runs once on the local directory and once on a real GlusterFS volume."""
    if request.param == "local":
        root = tmp_path / "storage"

        def read_local(key: str) -> bytes | None:
            path = root / key
            return path.read_bytes() if path.is_file() else None

        return Backend("local", LocalStorage(root), read_local)
    gv: GlusterVolume = request.getfixturevalue("gluster_volume")
    return Backend("gluster", GlusterStorage(gv.host, gv.volume, gv.port), lambda key: _read_gluster(gv, key))


@pytest.fixture(params=["local", "gluster"])
def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A backend whose medium cannot be reached: a root that is a file, or a port nobody serves."""
    if request.param == "local":
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        return LocalStorage(blocker)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return GlusterStorage("127.0.0.1", "missing", port)
