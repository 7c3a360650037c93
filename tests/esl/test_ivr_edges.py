"""The IVR server at its edges: forged channel data, silent connections, descriptors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gevent
import gevent.socket
import pytest
from test_ivr import CALL_UUID, error_prompt_played, routed_to, scripted_call, start, write_script

from controller import provisioning
from controller.database import Database
from controller.stores import ivrs, tenants

SCRIPT = """
from esl_workers.ivr import ivr

@ivr("beta-menu")
def menu(session):
    session.playback(session.options.get("greeting", "ivr/none.wav"))
"""


@pytest.fixture
def two_tenants(db: Database) -> Database:
    provisioning.add_tenant(db, {"domain": "acme.test"})
    provisioning.add_tenant(db, {"domain": "beta.test"})
    provisioning.add_child(db, "ivrs", "beta.test", {"name": "beta-menu", "options": {"greeting": "ivr/beta.wav"}})
    return db


def test_channel_naming_another_tenants_ivr_is_refused_and_logged(
    two_tenants: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_script(tmp_path, "menu.py", SCRIPT)
    server = start(two_tenants, tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="esl_workers.ivr.server"):
            sent = scripted_call(server.port, routed_to("beta-menu"))  # the channel is acme.test's
    finally:
        server.stop()
    joined = "\n".join(sent)
    assert "ivr/beta.wav" not in joined and error_prompt_played(sent)
    assert any("refused" in r.getMessage() and CALL_UUID in r.getMessage() for r in caplog.records)


def test_forged_ivr_id_of_another_tenant_is_refused(two_tenants: Database, tmp_path: Path) -> None:
    provisioning.add_child(two_tenants, "ivrs", "acme.test", {"name": "beta-menu"})
    with two_tenants.transaction() as conn:
        beta = tenants.by_domain(conn, "beta.test")
        assert beta is not None
        betas = ivrs.store.get(conn, beta.id, "beta-menu")
        assert betas is not None
    forged = routed_to("beta-menu").replace(
        b"Content-Type: command/reply", f"variable_fsfarm_ivr_id: {betas.id}\nContent-Type: command/reply".encode()
    )
    write_script(tmp_path, "menu.py", SCRIPT)
    server = start(two_tenants, tmp_path)
    try:
        sent = scripted_call(server.port, forged)
        honest = scripted_call(server.port, routed_to("beta-menu"))
    finally:
        server.stop()
    assert error_prompt_played(sent) and "ivr/none.wav" not in "\n".join(sent)
    assert "ivr/none.wav" in "\n".join(honest)  # acme's own beta-menu (no greeting option) still runs


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_silent_connections_are_closed_and_leave_no_descriptor(db: Database, tmp_path: Path) -> None:
    server = start(db, tmp_path, connect_timeout=0.2)
    try:
        gevent.sleep(0)
        before = _open_descriptors()
        clients = [gevent.socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
        for sock in clients:
            sock.settimeout(30)
            data = sock.recv(4096)  # "connect" from the server, then nothing: it closes on us
            while data:
                data = sock.recv(4096)
            sock.close()
        gevent.joinall(list(server.calls), timeout=30)
        assert len(server.calls) == 0
        assert _open_descriptors() <= before
    finally:
        server.stop()
