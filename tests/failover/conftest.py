"""A real Kamailio 5.6 for the failover tests, reading routes from the test database."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testsupport import free_port

from controller.errors import Unavailable
from controller.kamailio.config import KamailioSettings, db_url_from_conninfo, render
from controller.kamailio.control import KamailioControl


@dataclass
class RunningKamailio:
    address: tuple[str, int]
    control: KamailioControl
    process: subprocess.Popen[bytes]
    log: Path


def start_kamailio(dsn: str, ping_interval: int = 1) -> RunningKamailio:
    if shutil.which("kamailio") is None:
        pytest.skip("kamailio is not installed (Debian packages kamailio, kamailio-postgres-modules)")
    workdir = Path(tempfile.mkdtemp(prefix="fsfarm-kam-"))
    port = free_port()
    settings = KamailioSettings(
        db_url=db_url_from_conninfo(dsn),
        listen=f"udp:127.0.0.1:{port}",
        ctl_socket=str(workdir / "ctl"),
        ping_interval=ping_interval,
        children=2,
    )
    (workdir / "kamailio.cfg").write_text(render(settings))
    log = workdir / "kamailio.log"
    proc = subprocess.Popen(
        [
            "kamailio",
            "-f",
            str(workdir / "kamailio.cfg"),
            "-P",
            str(workdir / "pid"),
            "-w",
            str(workdir),
            "-DD",
            "-E",
            "-m",
            "64",
            "-M",
            "8",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    control = KamailioControl(str(workdir / "ctl"))
    deadline = time.monotonic() + 15
    # The ctl socket file appears before Kamailio answers on it (children still forking on a loaded machine).
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"kamailio did not start:\n{log.read_text()[-3000:]}")
        if (workdir / "ctl").exists():
            try:
                control.destinations()
                break
            except Unavailable:
                pass
        time.sleep(0.05)
    return RunningKamailio(("127.0.0.1", port), control, proc, log)


@pytest.fixture
def kamailio_factory(dsn: str) -> Iterator[object]:
    started: list[RunningKamailio] = []

    def make(ping_interval: int = 1) -> RunningKamailio:
        k = start_kamailio(dsn, ping_interval)
        started.append(k)
        return k

    yield make
    for k in started:
        k.process.terminate()
        try:
            k.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            k.process.kill()
