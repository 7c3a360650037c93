"""GlusterFS through libgfapi (PyPI ``gfapi``): no FUSE mount on the controller.

Mounting is cheap but ``umount()`` takes about 11 s, so each process keeps one volume handle
per (host, port, volume) for its whole life and never unmounts it.
"""

from __future__ import annotations

import atexit
import collections
import collections.abc
import errno
import os
import stat
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from controller.errors import Conflict, NotFound, Unavailable
from controller.storage.base import FileInfo
from controller.storage.paths import TEMP_MARK, check_key

CHUNK = 1024 * 1024
# ESTALE: another client (a node's FUSE mount) removed the file this client still had cached.
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.ESTALE)
_handles: dict[tuple[int, str, int, str], Any] = {}
_handles_lock = threading.Lock()


def forget_at_exit(handle: Any) -> None:
    """Skip the handle's umount when the process ends: it takes ~11 s and the exit frees it anyway."""
    atexit.register(setattr, handle, "_mounted", False)


def load_gfapi() -> Any:
    """The ``gluster.gfapi`` module; gfapi 1.2 still imports ``collections.Iterator`` (gone in 3.10)."""
    if not hasattr(collections, "Iterator"):
        collections.Iterator = collections.abc.Iterator  # type: ignore[attr-defined]
    try:
        from gluster import gfapi
    except (ImportError, OSError) as exc:
        raise Unavailable(
            "the GlusterFS client library is not installed (Debian glusterfs-client "
            "provides libgfapi; PyPI gfapi provides the binding)",
            str(exc),
        ) from exc
    return gfapi


def volume_handle(host: str, port: int, volume: str) -> Any:
    """This process's mounted handle on a volume, mounted on first use."""
    key = (os.getpid(), host, port, volume)
    with _handles_lock:
        handle = _handles.get(key)
        if handle is None:
            gfapi = load_gfapi()
            handle = gfapi.Volume(host, volume, port=port)
            try:
                handle.mount()
            except Exception as exc:
                raise Unavailable(
                    f"shared storage gluster://{host}:{port}/{volume} cannot be reached", str(exc)
                ) from exc
            _handles[key] = handle
            forget_at_exit(handle)
        return handle


class GlusterStorage:
    """Files in a GlusterFS volume, written to a temp name and renamed, like the local backend."""

    def __init__(self, host: str, volume: str, port: int = 24007) -> None:
        self.host, self.volume, self.port = host, volume, port
        self.description = f"gluster://{host}:{port}/{volume}"

    def _vol(self) -> Any:
        return volume_handle(self.host, self.port, self.volume)

    def _checked(self, key: str) -> Any:
        """The volume handle once ``key`` is safe: no symlink on its path (a node's mount may plant one)."""
        check_key(key)
        vol = self._vol()
        self._refuse_links(vol, key)
        return vol

    def _refuse_links(self, vol: Any, key: str) -> None:
        parts = key.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            try:
                mode = vol.lstat("/".join(parts[:depth])).st_mode
            except OSError as exc:
                if exc.errno in _MISSING:
                    break  # nothing below a missing folder can be a link
                raise self._fail(exc, key) from exc
            if stat.S_ISLNK(mode):
                raise NotFound(f"no file {key!r}")

    def _fail(self, exc: OSError, key: str) -> Exception:
        if exc.errno in _MISSING:
            return NotFound(f"no file {key!r}")
        return Unavailable(f"shared storage {self.description} failed", os.strerror(exc.errno or errno.EIO))

    def put(self, key: str, data: bytes) -> FileInfo:
        vol = self._checked(key)
        folder, _, _ = key.rpartition("/")
        temp = f"{folder}/{TEMP_MARK}{uuid.uuid4().hex}"
        try:
            if vol.isdir(key):
                raise Conflict(f"{key!r} is a folder; a file cannot replace it", {"field": "name"})
            if not vol.isdir(folder):
                vol.makedirs(folder, 0o755)
            with vol.fopen(temp, "wb") as f:
                for offset in range(0, len(data), CHUNK):
                    chunk = data[offset : offset + CHUNK]
                    written = 0
                    while written < len(chunk):
                        written += f.write(chunk[written:])
                # No f.fsync(): gfapi 1.2 binds the pre-GlusterFS-6 glfs_fsync prototype and crashes.
            vol.rename(temp, key)
            return self._info(key, vol.stat(key))
        except OSError as exc:
            try:
                vol.unlink(temp)
            except OSError:
                pass
            if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):  # the caller's key collides, not a fault
                raise Conflict(f"{key!r}: a file and a folder would share a name", {"field": "name"}) from exc
            raise Unavailable(f"shared storage {self.description} failed", os.strerror(exc.errno or errno.EIO)) from exc

    def get(self, key: str) -> bytes:
        vol = self._checked(key)
        parts = []
        try:
            if vol.isdir(key):
                raise NotFound(f"no file {key!r}")
            with vol.fopen(key, "rb") as f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    parts.append(chunk)
        except OSError as exc:
            raise self._fail(exc, key) from exc
        return b"".join(parts)

    def stat(self, key: str) -> FileInfo:
        vol = self._checked(key)
        try:
            if not vol.isfile(key):
                raise NotFound(f"no file {key!r}")
            return self._info(key, vol.stat(key))
        except OSError as exc:
            raise self._fail(exc, key) from exc

    def exists(self, key: str) -> bool:
        try:
            vol = self._checked(key)
        except NotFound:
            return False
        try:
            return bool(vol.isfile(key))
        except OSError as exc:
            raise self._fail(exc, key) from exc

    def delete(self, key: str) -> bool:
        try:
            vol = self._checked(key)
        except NotFound:
            return False
        try:
            vol.unlink(key)
            return True
        except OSError as exc:
            if exc.errno in _MISSING:
                return False
            raise self._fail(exc, key) from exc

    def list(self, prefix: str) -> list[FileInfo]:
        vol = self._vol()
        out = []
        try:
            try:
                self._refuse_links(vol, prefix)
            except NotFound:
                return []  # the folder itself is (or is under) a symlink: it is not this key's folder
            if not vol.isdir(prefix):
                return []
            for folder, _dirs, files in vol.walk(prefix):
                for name in files:
                    key = f"{folder}/{name}"
                    if TEMP_MARK in name or stat.S_ISLNK(vol.lstat(key).st_mode):
                        continue
                    out.append(self._info(key, vol.stat(key)))
        except OSError as exc:
            raise self._fail(exc, prefix) from exc
        return sorted(out, key=lambda i: i.path)

    @staticmethod
    def _info(key: str, st: Any) -> FileInfo:
        return FileInfo(key, int(st.st_size), datetime.fromtimestamp(st.st_mtime, UTC))
