"""A real GlusterFS volume for the storage tests, and the two backends to run every test against.

The session fixture starts glusterd on loopback with its own working directory, creates and
starts a one-brick volume (``force``: the brick sits on the root filesystem) and stops it all at
the end. It skips, saying why, only when glusterd or the gfapi binding is not installed.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.storage.gluster import GlusterStorage, forget_at_exit, load_gfapi
from controller.storage.local import LocalStorage

GLUSTERD_PORT = 24007  # the gluster CLI only talks to glusterd on its default socket and port
HOSTS_NAME = "fsfarm-gluster-test"


@dataclass(frozen=True)
class GlusterVolume:
    host: str
    volume: str
    port: int = GLUSTERD_PORT


def _why_no_gluster() -> str | None:
    if shutil.which("glusterd") is None or shutil.which("gluster") is None:
        return "glusterd is not installed (Debian glusterfs-server)"
    try:
        load_gfapi()
    except Exception as exc:
        return f"the gfapi binding cannot load: {exc}"
    if os.geteuid() != 0:
        return "glusterd needs root"
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", GLUSTERD_PORT)) == 0:
            return f"something already listens on 127.0.0.1:{GLUSTERD_PORT} (another glusterd?)"
    return None


def _loopback_name() -> tuple[str, bool]:
    """A host name for the brick that resolves to 127.0.0.1 (gluster refuses 127.0.0.1 itself)."""
    name = socket.gethostname()
    try:
        if name != "localhost" and socket.gethostbyname(name).startswith("127."):
            return name, False
    except OSError:
        pass
    with open("/etc/hosts", "a") as hosts:
        hosts.write(f"127.0.0.1 {HOSTS_NAME}\n")
    return HOSTS_NAME, True


def _gluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gluster", "--mode=script", *args], capture_output=True, text=True, timeout=60)


def _kill_pidfiles(folder: Path) -> None:
    for pidfile in folder.rglob("*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (ValueError, OSError):
            pass


@pytest.fixture(scope="session")
def gluster_volume() -> Iterator[GlusterVolume]:
    reason = _why_no_gluster()
    if reason:
        pytest.skip(f"GlusterFS tests skipped: {reason}")
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-gluster-"))
    workdir, brick, vol = tmp / "glusterd", tmp / "brick", f"fsfarm-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    brick.mkdir()
    config = Path("/etc/glusterfs/glusterd.vol").read_text()
    config = config.replace("/var/lib/glusterd", str(workdir)).replace(
        "end-volume", "    option transport.socket.bind-address 127.0.0.1\nend-volume")
    (tmp / "glusterd.vol").write_text(config)
    host, added_host = _loopback_name()
    subprocess.run(["glusterd", "-f", str(tmp / "glusterd.vol"), "-p", str(tmp / "glusterd.pid"),
                    "-l", str(tmp / "glusterd.log")], check=True, timeout=60)
    try:
        deadline = time.monotonic() + 30
        while _gluster("volume", "list").returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"glusterd did not answer; see {tmp / 'glusterd.log'}")
            time.sleep(0.1)
        for step in (("volume", "create", vol, f"{host}:{brick}", "force"), ("volume", "start", vol)):
            done = _gluster(*step)
            if done.returncode != 0:
                raise RuntimeError(f"gluster {' '.join(step)} failed: {done.stderr or done.stdout}")
        yield GlusterVolume("127.0.0.1", vol)
    finally:
        _gluster("volume", "stop", vol, "force")
        _gluster("volume", "delete", vol)
        _kill_pidfiles(workdir)
        _kill_pidfiles(Path("/var/run/gluster/vols") / vol)
        if (tmp / "glusterd.pid").exists():
            os.kill(int((tmp / "glusterd.pid").read_text().strip()), signal.SIGTERM)
        if added_host:
            lines = Path("/etc/hosts").read_text().splitlines(keepends=True)
            Path("/etc/hosts").write_text("".join(x for x in lines if HOSTS_NAME not in x))
        shutil.rmtree(tmp, ignore_errors=True)


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
