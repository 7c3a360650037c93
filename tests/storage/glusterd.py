"""Start and stop a throwaway glusterd with one volume on loopback (tests and bench/storage.py).

glusterd runs with its own working directory and binds 127.0.0.1; the brick host is a name that
resolves to 127.0.0.1 (gluster refuses the literal address), and the volume is created with
``force`` because the brick sits on the root filesystem.

glusterd's port is fixed (24007), so test runs on one machine (several worktrees, bench/storage.py)
take turns: a machine-wide lock file, then a wait until the port is free. A separate network
namespace per glusterd was the alternative, but the gfapi client runs in the test process, in the
root namespace: it would need a veth pair, routed addresses and brick names resolving to them,
and glusterd's unix socket and /var/run/gluster paths would still be shared.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from controller.storage.gluster import load_gfapi

GLUSTERD_PORT = 24007  # the gluster CLI only talks to glusterd on its default socket and port
HOSTS_NAME = "fsfarm-gluster-test"
LOCK_FILE = Path(tempfile.gettempdir()) / "fsfarm-glusterd.lock"
# How long to wait for the port before failing (not skipping); another run's volume may be busy a while.
WAIT_SECONDS = float(os.environ.get("FSFARM_GLUSTER_WAIT", "900"))


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
    return None  # a busy port 24007 is waited for by running_gluster, never a reason to skip


def port_busy() -> bool:
    """Whether something listens on 127.0.0.1:24007 (another run's glusterd, most likely)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", GLUSTERD_PORT)) == 0


_held_here = False  # this process runs a volume now: a second one here would wait on itself


def held_here() -> bool:
    """Whether this process already holds glusterd's turn (a running volume)."""
    return _held_here


@contextmanager
def _turn(timeout: float) -> Iterator[None]:
    """Hold the machine-wide glusterd lock and wait until port 24007 is free; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    with open(LOCK_FILE, "a") as lock:  # flock dies with the process: no stale lock after a crash
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another test run held {LOCK_FILE} for {timeout:.0f} s") from None
                time.sleep(0.5)
        while port_busy():  # a glusterd that is not ours (or ours, still exiting)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"127.0.0.1:{GLUSTERD_PORT} stayed busy for {timeout:.0f} s: a glusterd that is not a test's?"
                )
            time.sleep(0.5)
        global _held_here
        _held_here = True
        try:
            yield
        finally:
            _held_here = False


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


def why_no_gluster() -> str | None:
    """Why a throwaway glusterd cannot run here, or None when it can."""
    return _why_no_gluster()


@contextmanager
def running_gluster(wait: float = WAIT_SECONDS) -> Iterator[GlusterVolume]:
    """A started one-brick volume; everything started is stopped on exit.

    Waits (up to ``wait`` seconds) for its turn on port 24007 rather than failing when another run has it.
    """
    with _turn(wait):
        with _running_gluster() as volume:
            yield volume


@contextmanager
def _running_gluster() -> Iterator[GlusterVolume]:
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-gluster-"))
    workdir, brick, vol = tmp / "glusterd", tmp / "brick", f"fsfarm-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    brick.mkdir()
    config = Path("/etc/glusterfs/glusterd.vol").read_text()
    config = config.replace("/var/lib/glusterd", str(workdir)).replace(
        "end-volume", "    option transport.socket.bind-address 127.0.0.1\nend-volume"
    )
    (tmp / "glusterd.vol").write_text(config)
    host, added_host = _loopback_name()
    subprocess.run(
        ["glusterd", "-f", str(tmp / "glusterd.vol"), "-p", str(tmp / "glusterd.pid"), "-l", str(tmp / "glusterd.log")],
        check=True,
        timeout=60,
    )
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
