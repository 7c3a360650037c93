"""The WSGI front that answers ``POST /xmlcurl`` before Flask gives the same status, headers and body as the view."""

from __future__ import annotations

import base64
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import Client
from xmlcurl_support import AUTH, pick, post

from controller import provisioning
from controller.errors import Unavailable
from xmlcurl.web import XmlCurlFront, service


def _both(app: Any) -> tuple[Any, Any]:
    """A client through the front, and one straight to the Flask app behind it (the blueprint view)."""
    front = app.wsgi_app
    assert isinstance(front, XmlCurlFront)
    return app.test_client(), Client(front.inner)


def _same(a: Any, b: Any) -> None:
    assert a.status == b.status
    assert a.data == b.data
    assert a.headers.get("Content-Type") == b.headers.get("Content-Type")
    assert a.headers.get("Content-Length") == b.headers.get("Content-Length")
    assert a.headers.get("WWW-Authenticate") == b.headers.get("WWW-Authenticate")


def test_front_answers_like_the_view(app: Any, farm: Any, recorded: Any) -> None:
    through_front, through_flask = _both(app)
    sip_auth = pick(recorded, "directory sip_auth")
    wrong = "Basic " + base64.b64encode(b"freeswitch:guess").decode()
    cases: list[tuple[str | bytes, str | None]] = [
        (sip_auth.body, AUTH),
        (sip_auth.body, AUTH),
        (sip_auth.body, None),
        (sip_auth.body, wrong),
        (sip_auth.body, "Basic !!!"),
        (sip_auth.body, "Basic " + base64.b64encode(b"freeswitch:s3cret").decode()),
        ("garbage", AUTH),
        (b"\xff\xfe", AUTH),
        (sip_auth.body + "&pad=" + "x" * (300 * 1024), AUTH),
        (sip_auth.with_fields(user="2001", domain="beta.test", key_value="beta.test"), AUTH),
    ]
    cases += [(r.body, AUTH) for r in recorded]
    for body, auth in cases:
        _same(post(through_front, body, auth=auth), post(through_flask, body, auth=auth))


def test_other_requests_go_to_flask(app: Any, farm: Any) -> None:
    through_front, through_flask = _both(app)
    for path, method in (("/xmlcurl", "GET"), ("/xmlcurl/", "POST"), ("/health", "GET")):
        _same(through_front.open(path, method=method), through_flask.open(path, method=method))


def test_database_down_and_unexpected_errors(app: Any, farm: Any, recorded: Any, monkeypatch: Any) -> None:
    through_front, through_flask = _both(app)
    body = pick(recorded, "dialplan acme.test 1002").body
    svc = service(app)

    def down(*_: Any) -> bytes:
        raise Unavailable("the database cannot be reached", "test")

    monkeypatch.setattr(svc, "respond", down)
    a, b = post(through_front, body), post(through_flask, body)
    _same(a, b)
    assert a.status_code == 503

    def broken(*_: Any) -> bytes:
        raise RuntimeError("bug")

    monkeypatch.setattr(svc, "respond", broken)
    a, b = post(through_front, body), post(through_flask, body)
    _same(a, b)
    assert a.status_code == 500 and a.json == {
        "error": "internal error; the controller log has the details",
        "detail": None,
    }


def test_placement_cache_follows_a_tenant_disabled_and_enabled(
    app: Any, client: FlaskClient, db: Any, farm: Any, recorded: Any
) -> None:
    """The placement cached per node is dropped by the change notice, like the answers."""
    import time

    from xmlcurl_support import is_not_found, parse_answer

    svc = service(app)
    body = pick(recorded, "directory sip_auth").body
    assert not is_not_found(parse_answer(post(client, body)))
    assert svc.listener is not None and svc.listener.listening.wait(10)
    post(client, body)
    provisioning.update_tenant(db, "acme.test", {"enabled": False})
    deadline = time.monotonic() + 10
    while not is_not_found(parse_answer(post(client, body))):
        assert time.monotonic() < deadline, "the disabled tenant is still answered"
        time.sleep(0.05)
    provisioning.update_tenant(db, "acme.test", {"enabled": True})
    while is_not_found(parse_answer(post(client, body))):
        assert time.monotonic() < deadline, "the re-enabled tenant is still not found"
        time.sleep(0.05)
