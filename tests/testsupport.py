"""Small helpers shared by test modules across rooms (import as ``from testsupport import ...``)."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import time
from pathlib import Path

from controller.errors import Unavailable
from controller.kamailio.control import KamailioControl


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody holds right now (TCP by default; pass socket.SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_kamailio(workdir: Path, log: Path, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Kamailio on ``<workdir>/kamailio.cfg`` in the foreground, returned once it answers on ``<workdir>/ctl``.

    The ctl socket file appears before Kamailio answers on it (children still forking on a loaded
    machine), so readiness is a command that works. On failure the process is killed and the log shown.
    """
    config, pid = str(workdir / "kamailio.cfg"), str(workdir / "pid")
    process = subprocess.Popen(
        ["kamailio", "-f", config, "-P", pid, "-w", str(workdir), "-DD", "-E", "-m", "64", "-M", "8"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    control = KamailioControl(str(workdir / "ctl"))
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"kamailio did not start:\n{log.read_text()[-3000:]}")
        if (workdir / "ctl").exists():
            try:
                control.destinations()
                return process
            except Unavailable:
                pass
        time.sleep(0.05)


def run_on_terminal(argv: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[int, str, str]:
    """Run a command with its stdout on a pseudo-terminal, as in an operator's shell (stderr on a pipe).

    Returns the exit code, what it wrote on the terminal and what on stderr.
    """
    primary, secondary = pty.openpty()
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    _, errors = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return process.returncode, shown.decode(errors="replace"), errors.decode(errors="replace")


class AuthedClient:
    """Flask test client that adds a bearer token to every request."""

    def __init__(self, client, token: str) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.token = token

    def __getattr__(self, method: str):  # type: ignore[no-untyped-def]
        call = getattr(self.client, method)

        def send(path: str, **kwargs):  # type: ignore[no-untyped-def]
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            return call(path, headers=headers, **kwargs)

        return send
