"""A real Kamailio 5.6 for the failover tests, reading routes from the test database."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testsupport import free_port, run_kamailio

from controller.kamailio.config import KamailioSettings, db_url_from_conninfo, render
from controller.kamailio.control import KamailioControl


@dataclass
class RunningKamailio:
    address: tuple[str, int]
    control: KamailioControl
    process: subprocess.Popen[bytes]
    log: Path
    ws_address: tuple[str, int] | None = None  # where browsers open SIP WebSockets (None: no WebSocket)


def start_kamailio(dsn: str, ping_interval: int = 1, ws: bool = False) -> RunningKamailio:
    if shutil.which("kamailio") is None:
        pytest.skip("kamailio is not installed (Debian packages kamailio, kamailio-postgres-modules)")
    workdir = Path(tempfile.mkdtemp(prefix="fsfarm-kam-"))
    port = free_port()
    ws_port = free_port() if ws else 0
    settings = KamailioSettings(
        ws_listen=f"tcp:127.0.0.1:{ws_port}" if ws else "",
        db_url=db_url_from_conninfo(dsn),
        listen=f"udp:127.0.0.1:{port}",
        ctl_socket=str(workdir / "ctl"),
        ping_interval=ping_interval,
        children=2,
    )
    (workdir / "kamailio.cfg").write_text(render(settings))
    log = workdir / "kamailio.log"
    proc = run_kamailio(workdir, log)
    control = KamailioControl(str(workdir / "ctl"))
    return RunningKamailio(("127.0.0.1", port), control, proc, log, ("127.0.0.1", ws_port) if ws else None)


@pytest.fixture
def kamailio_factory(dsn: str) -> Iterator[object]:
    started: list[RunningKamailio] = []

    def make(ping_interval: int = 1, ws: bool = False) -> RunningKamailio:
        k = start_kamailio(dsn, ping_interval, ws)
        started.append(k)
        return k

    yield make
    for k in started:
        k.process.terminate()
        try:
            k.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            k.process.kill()
