"""Hostile or broken requests: 401, 400 or the "not found" document, never a 500, never someone else's data."""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree
from xmlcurl_support import AUTH, is_not_found, parse_answer, pick, post

from controller import provisioning


def test_missing_or_wrong_credentials_are_refused(client: Any, farm: Any, recorded: Any) -> None:
    body = pick(recorded, "directory sip_auth").body
    wrong = "Basic " + base64.b64encode(b"freeswitch:guess").decode()
    for auth in (None, wrong, "Basic !!!notbase64", "Bearer abc", "Basic " + base64.b64encode(b"\xff\xfe").decode()):
        resp = post(client, body, auth=auth)
        assert resp.status_code == 401
        assert b"a1-hash" not in resp.data
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_empty_configured_password_admits_no_one(db: Any, farm: Any, recorded: Any) -> None:
    import tempfile
    from pathlib import Path

    from controller.app.web import create_app
    from controller.config import Settings

    settings = Settings(
        database_url=None,
        state_dir=Path(tempfile.mkdtemp()),
        embedded_pg_port=0,
        xmlcurl_user="freeswitch",
        xmlcurl_password="",
        controller_address="127.0.0.1",
    )
    client = create_app(db, settings).test_client()
    empty = "Basic " + base64.b64encode(b"freeswitch:").decode()
    assert post(client, pick(recorded, "directory sip_auth").body, auth=empty).status_code == 401


def test_missing_unknown_or_garbage_sections(client: Any, farm: Any, recorded: Any) -> None:
    auth = pick(recorded, "directory sip_auth")
    bodies: list[str | bytes] = [
        "",
        "garbage",
        "section=",
        "section=phrases&hostname=vm",
        "section=chatplan&hostname=vm",
        auth.with_fields(section=None),
        auth.with_fields(section="languages"),
        b"\xff\xfe\x00section=directory",
        "=&&&==&section&&",
        "a=" + "%" * 500,
        "&".join(f"f{i}=v" for i in range(5000)),
    ]
    for body in bodies:
        assert is_not_found(parse_answer(post(client, body)))


def test_huge_body_is_refused(client: Any, farm: Any, recorded: Any) -> None:
    body = pick(recorded, "directory sip_auth").body + "&pad=" + "x" * (2 * 1024 * 1024)
    resp = post(client, body)
    assert resp.status_code in (400, 413)
    assert b"a1-hash" not in resp.data


def test_odd_users_and_domains_are_not_found(client: Any, farm: Any, recorded: Any) -> None:
    auth = pick(recorded, "directory sip_auth")
    odd = [
        {"user": "1001' OR '1'='1"},
        {"user": "<1001>"},
        {"user": "1001@beta.test"},
        {"user": ""},
        {"user": "../1001"},
        {"user": str(farm["users"]["1001"].id)},
        {"domain": 'acme.test"><x', "key_value": 'acme.test"><x'},
        {"domain": "ACME.test%00", "key_value": "x"},
        {"domain": "beta.test&user=1001"},
        {"domain": "*", "key_value": "*"},
    ]
    for change in odd:
        root = parse_answer(post(client, auth.with_fields(**change)))
        assert is_not_found(root), change


def test_odd_destinations_are_not_found(client: Any, farm: Any, recorded: Any) -> None:
    call = pick(recorded, "dialplan acme.test 1002")
    for dest in ("1002; drop", "1002$|.*", "sofia/gateway/x", "", "1" * 40, "<1002>", "conf-nothex"):
        body = call.with_fields(**{"Caller-Destination-Number": dest, "Hunt-Destination-Number": dest})
        assert is_not_found(parse_answer(post(client, body))), dest
    for context in ("acme.test' --", "../beta.test", "", "<public>"):
        body = call.with_fields(**{"Caller-Context": context, "Hunt-Context": context})
        assert is_not_found(parse_answer(post(client, body))), context


def test_names_with_markup_characters_are_escaped(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    name = "Ann & <Bob> \"the\" 'boss'"
    provisioning.update_child(db, "users", "acme.test", "1001", {"caller_id_name": name})
    root = parse_answer(post(client, pick(recorded, "directory sip_auth").body))
    variables = {v.get("name"): v.get("value") for v in root.iter("variable")}
    assert variables["effective_caller_id_name"] == name
    assert len(root.findall(".//user")) == 1


def test_get_is_not_an_xml_curl_request(client: Any, farm: Any) -> None:
    resp = client.get("/xmlcurl", headers={"Authorization": AUTH})
    assert resp.status_code == 405


def test_answers_parse_with_a_strict_parser(client: Any, farm: Any, recorded: Any) -> None:
    parser = etree.XMLParser(recover=False, resolve_entities=False)
    for request in recorded:
        etree.fromstring(post(client, request.body).data, parser)
