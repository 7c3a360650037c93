"""The embedded default: a directory on the controller's disk (under the state dir)."""

from __future__ import annotations

import errno
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from controller.errors import Conflict, NotFound, Unavailable
from controller.storage.base import FileInfo
from controller.storage.paths import TEMP_MARK, check_key

FILE_MODE = 0o640  # never world-readable: recordings and voicemail are the tenants' own
DIR_MODE = 0o750


class LocalStorage:
    """Files under ``root``; a put is a write to a temp name in the same folder, fsync, rename.

    Files are written 0640 and folders 0750 (less if the umask says so): the owner and its group
    (give the root the FreeSWITCH nodes' group, with ``g+s`` so folders inherit it), nobody else.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.description = f"local:{self.root}"

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        if self.root.exists() and not self.root.is_dir():
            raise Unavailable(f"shared storage {self.description} failed", "the storage root is not a directory")
        # A symlink planted below the root (by a node's FUSE mount, say) must lead nowhere, not even
        # into another tenant's folder: the key's own path must be the real one.
        real_root = os.path.realpath(self.root)
        if os.path.realpath(path) != os.path.join(real_root, *key.split("/")):
            raise NotFound(f"no file {key!r}")
        return path

    def _folders(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents up to the root, each DIR_MODE (``mkdir -p`` would not)."""
        missing = []
        while not folder.is_dir() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for each in reversed(missing):
            each.mkdir(mode=DIR_MODE, exist_ok=True)

    def _fail(self, exc: OSError, key: str) -> Exception:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return NotFound(f"no file {key!r}")
        return Unavailable(f"shared storage {self.description} failed", f"{exc.strerror or exc}")

    def put(self, key: str, data: bytes) -> FileInfo:
        path = self._path(key)
        if path.is_dir():
            raise Conflict(f"{key!r} is a folder; a file cannot replace it", {"field": "name"})
        temp = path.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}")
        try:
            self._folders(path.parent)
            with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
            return self._info(key, path.stat())
        except OSError as exc:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass
            if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):  # the caller's key collides, not a fault
                raise Conflict(f"{key!r}: a file and a folder would share a name", {"field": "name"}) from exc
            raise Unavailable(f"shared storage {self.description} failed", f"{exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except IsADirectoryError as exc:
            raise NotFound(f"no file {key!r}") from exc
        except OSError as exc:
            raise self._fail(exc, key) from exc

    def stat(self, key: str) -> FileInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except OSError as exc:
            raise self._fail(exc, key) from exc
        if not path.is_file():
            raise NotFound(f"no file {key!r}")
        return self._info(key, st)

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except NotFound:
            return False

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
            return True
        except NotFound:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise self._fail(exc, key) from exc

    def list(self, prefix: str) -> list[FileInfo]:
        base = self.root / prefix
        if not self.root.exists():
            return []  # nothing stored yet
        if not self.root.is_dir():
            raise Unavailable(f"shared storage {self.description} failed", "the storage root is not a directory")
        if os.path.realpath(base) != os.path.join(os.path.realpath(self.root), *prefix.strip("/").split("/")):
            return []  # the folder itself is (or is under) a symlink: it is not this key's folder
        out = []
        try:
            for folder, dirs, files in os.walk(base):
                dirs.sort()
                for name in files:
                    full = Path(folder) / name
                    if TEMP_MARK in name or full.is_symlink():
                        continue
                    key = full.relative_to(self.root).as_posix()
                    out.append(self._info(key, full.stat()))
        except OSError as exc:
            raise self._fail(exc, prefix) from exc
        return sorted(out, key=lambda i: i.path)

    @staticmethod
    def _info(key: str, st: os.stat_result) -> FileInfo:
        return FileInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
