"""TLS as docs/operations.md describes it: gunicorn with the gevent worker and a certificate serves
the API and xml_curl over https, and the same port refuses plain http."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tls_support import gunicorn_tls

from controller import provisioning
from controller.database import Database

NODE = {"name": "fs1", "sip_address": "127.0.0.1:5060", "esl_address": "127.0.0.1:8021", "esl_password": "ClueCon1"}


@pytest.fixture
def https_farm(dsn: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn, "FSFARM_STATE_DIR": str(tmp_path / "state")}
    with gunicorn_tls(env, tmp_path) as served:
        yield served


def test_api_and_xml_curl_answer_over_https_and_plain_http_is_refused(
    db: Database, https_farm: tuple[str, Path]
) -> None:
    base, cert = https_farm
    token, _ = provisioning.create_token(db, "farm-admin")
    node, password = provisioning.register_node(db, NODE)

    listed = requests.get(f"{base}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}, verify=str(cert))
    assert listed.status_code == 200 and [n["name"] for n in listed.json()] == ["fs1"]

    fetch = (
        f"hostname={node.switchname}&section=configuration&tag_name=configuration&key_name=name"
        f"&key_value=acl.conf&FreeSWITCH-Switchname={node.switchname}"
    )
    basic = base64.b64encode(f"{node.xmlcurl_user}:{password}".encode()).decode()
    answer = requests.post(
        f"{base}/xmlcurl",
        data=fetch,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"},
        verify=str(cert),
    )
    assert answer.status_code == 200 and b'<configuration name="acl.conf"' in answer.content, answer.text[:500]

    # A client that does not trust the certificate does not talk to it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{base}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    # Plain http to the TLS port gets no answer (gunicorn resets the connection): nothing travels in clear.
    with pytest.raises(requests.ConnectionError):
        requests.get(base.replace("https://", "http://") + "/api/v1/nodes", timeout=10)
