"""A real FreeSWITCH configured over https: ``fsfarm freeswitch bootstrap --url https://... --ca-file``
against gunicorn with the certificate (docs/operations.md, TLS), and nothing without the right CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from farm_harness import Controller, FreeSwitch, wait_for
from tls_support import gunicorn_tls, self_signed


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    ctl = Controller(farm_dsn, workdir).start()
    yield ctl
    ctl.stop()


def test_freeswitch_fetches_its_config_over_https_and_verifies_the_certificate(
    controller: Controller, workdir: Path
) -> None:
    tls = workdir / "tls"
    tls.mkdir()
    with gunicorn_tls(controller.env, tls) as (base, cert):
        fs = FreeSwitch(controller, "fs1", workdir / "fs1")
        controller.cli(*fs.node_add_args())
        # sofia's profile RUNNING and ESL answering: both configured by xml_curl over https.
        fs.start(bootstrap_args=("--url", f"{base}/xmlcurl", "--ca-file", str(cert)))
        try:
            wait_for(lambda: all(n["health"] == "up" for n in controller.api("GET", "/nodes")), 30, "fs1 up")
        finally:
            fs.stop()

        # The same URL with a CA that did not sign the certificate: mod_xml_curl refuses the server.
        other = workdir / "other-ca"
        other.mkdir()
        stranger, _ = self_signed(other)
        fs2 = FreeSwitch(controller, "fs2", workdir / "fs2")
        controller.cli(*fs2.node_add_args())
        fs2.start(wait=False, bootstrap_args=("--url", f"{base}/xmlcurl", "--ca-file", str(stranger)))
        try:
            wait_for(lambda: "CURL returned error" in fs2.log(), 30, "mod_xml_curl to refuse the certificate")
        finally:
            fs2.kill()  # never configured: nothing to stop cleanly
        refused = [line for line in fs2.log().splitlines() if "CURL returned error" in line]
        assert "certificate" in refused[0].lower(), refused[0]
