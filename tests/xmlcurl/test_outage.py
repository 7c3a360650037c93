"""A PostgreSQL outage: the API answers 503 at once, xml_curl keeps answering from its snapshot, and
both carry on when the server returns, without restarting anything."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testsupport import free_port
from xmlcurl_support import pick, post

from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from xmlcurl.web import service


@pytest.fixture(scope="module")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """This module's own server (the shared `dsn` fixture makes its databases here): the test stops it,
    which the session's shared one must never be."""
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-outage-pg-"))
    server = EmbeddedPostgres(tmp / "data", port=free_port(), dbname="postgres")
    server.start()
    yield server
    server.stop()


def _until(check: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_outage_answers_503_and_xml_curl_keeps_answering_from_memory(
    pg_server: EmbeddedPostgres, app: Any, client: Any, db: Database, farm: Any, farm_token: str, recorded: Any
) -> None:
    svc = service(app)
    svc.ensure_listening()
    assert svc.listener is not None and svc.listener.listening.wait(10)
    auth = {"Authorization": f"Bearer {farm_token}"}
    assert client.get("/api/v1/tenants", headers=auth).status_code == 200
    request = pick(recorded, "directory sip_auth")
    before = post(client, request.body, auth=request.headers["Authorization"]).get_data()
    assert b'user id="1001"' in before

    pg_server.stop()
    try:
        down = client.get("/api/v1/tenants", headers=auth)
        assert down.status_code == 503
        assert down.get_json()["error"] == "the database cannot be reached"
        refused = client.post("/api/v1/tenants", headers=auth, json={"domain": "new.example"})
        assert refused.status_code == 503
        # The phones keep registering: the node's directory question is answered from the snapshot.
        during = post(client, request.body, auth=request.headers["Authorization"])
        assert during.status_code == 200 and during.get_data() == before
    finally:
        pg_server.start()

    # Back without a restart: the API answers, and a change made now reaches xml_curl's answers.
    _until(lambda: client.get("/api/v1/tenants", headers=auth).status_code == 200, "the API never came back")
    assert client.post("/api/v1/tenants", headers=auth, json={"domain": "new.example"}).status_code == 201
    _until(lambda: svc.listener is not None and svc.listener.listening.is_set(), "the listener never came back")
    listed = client.get("/api/v1/tenants", headers=auth).get_json()
    assert "new.example" in str(listed)
