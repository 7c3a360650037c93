"""A self-signed certificate and ``gunicorn -k gevent`` serving the farm over TLS, as docs/operations.md says."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from testsupport import free_port


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as an operator would make one with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextmanager
def gunicorn_tls(env: dict[str, str], folder: Path) -> Iterator[tuple[str, Path]]:
    """``gunicorn -k gevent --certfile --keyfile controller.app.wsgi:application`` on a free loopback port;
    yields its https base URL and the certificate (which is also the CA to trust)."""
    cert, key = self_signed(folder)
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log_path = folder / "gunicorn.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            *(str(gunicorn), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}"),
            *("--certfile", str(cert), "--keyfile", str(key), "controller.app.wsgi:application"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                requests.get(f"{base}/healthz", verify=str(cert), timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its worker still loading
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
        assert "Using worker: gevent" in log_path.read_text()  # the worker the docs name
        yield base, cert
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
