"""Replay every request the real FreeSWITCH made and check each answer has the shape FreeSWITCH parses."""

from __future__ import annotations

import hashlib
from typing import Any

from xmlcurl_support import actions, is_not_found, parse_answer, pick, post


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_every_recorded_request_gets_a_well_formed_answer(client: Any, farm: Any, recorded: Any) -> None:
    for request in recorded:
        assert request.method == "POST" and request.path == "/xmlcurl"
        resp = post(client, request.body, auth=request.headers["Authorization"])
        root = parse_answer(resp)
        section = root.find("section").get("name")
        asked = request.fields["section"]
        assert section in (asked, "result"), request.label
        if section == "configuration":
            assert root.find("section/configuration").get("name") == request.fields["key_value"]


def test_configurations_we_serve_and_those_left_to_freeswitch(client: Any, farm: Any, recorded: Any) -> None:
    served = {
        "sofia.conf",
        "conference.conf",
        "event_socket.conf",
        "acl.conf",
        "post_load_switch.conf",
        "voicemail.conf",
    }
    for request in recorded:
        if request.fields["section"] != "configuration":
            continue
        root = parse_answer(post(client, request.body))
        assert is_not_found(root) == (request.fields["key_value"] not in served), request.fields["key_value"]


def test_sip_auth_answer_verifies_the_recorded_digest(client: Any, farm: Any, recorded: Any) -> None:
    """The a1-hash we serve must make FreeSWITCH accept the digest the phone really sent."""
    checked = 0
    for request in recorded:
        f = request.fields
        if f.get("action") != "sip_auth":
            continue
        root = parse_answer(post(client, request.body))
        user = root.find("section/domain/groups/group/users/user")
        assert user.get("id") == f["user"]
        params = {p.get("name"): p.get("value") for p in user.iterfind("params/param")}
        assert "password" not in params and "vm-password" not in params
        ha2 = md5(f"{f['sip_auth_method']}:{f['sip_auth_uri']}")
        expected = md5(
            f"{params['a1-hash']}:{f['sip_auth_nonce']}:{f['sip_auth_nc']}:{f['sip_auth_cnonce']}:"
            f"{f['sip_auth_qop']}:{ha2}"
        )
        assert expected == f["sip_auth_response"], request.label
        variables = {v.get("name"): v.get("value") for v in user.iterfind("variables/variable")}
        assert variables["user_context"] == "acme.test"
        assert variables["toll_allow"] == "local,domestic"
        checked += 1
    assert checked >= 5


def test_voicemail_and_user_call_lookups_return_the_asked_user(client: Any, farm: Any, recorded: Any) -> None:
    for label in ("directory user_call", "directory voicemail-lookup", "directory message-count"):
        request = pick(recorded, label)
        root = parse_answer(post(client, request.body))
        user = root.find("section/domain/groups/group/users/user")
        assert user.get("id") == request.fields["user"]
        params = {p.get("name"): p.get("value") for p in user.iterfind("params/param")}
        assert params["vm-a1-hash"] == md5(f"{request.fields['user']}:acme.test:1234")


def test_profile_start_lists_only_domains_placed_here(client: Any, farm: Any, recorded: Any) -> None:
    root = parse_answer(post(client, pick(recorded, "directory gateways").body))
    assert [d.get("name") for d in root.iterfind("section/domain")] == ["acme.test", "beta.test"]
    assert root.find(".//user") is None


def test_recorded_dialplan_calls_route_inside_acme(client: Any, farm: Any, recorded: Any) -> None:
    call = parse_answer(post(client, pick(recorded, "dialplan acme.test 1002").body))
    assert call.find("section/context").get("name") == "acme.test"
    condition = call.find("section/context/extension/condition")
    assert condition.get("field") == "destination_number" and condition.get("expression") == "^1002$"
    assert ("bridge", "user/1002@acme.test") in actions(call)
    assert ("set", "call_timeout=25") in actions(call)
    assert actions(call)[-1] == ("voicemail", "default acme.test 1002")

    room = parse_answer(post(client, pick(recorded, "dialplan acme.test 3000").body))
    assert ("conference", "3000-acme.test@narrowband") in actions(room)

    ivr = parse_answer(post(client, pick(recorded, "dialplan acme.test 5000").body))
    assert actions(ivr)[-1] == ("socket", "127.0.0.1:8084 async full")
    assert ("set", "fsfarm_ivr=menu") in actions(ivr)
    assert ("set", "fsfarm_tenant=acme.test") in actions(ivr)

    assert is_not_found(parse_answer(post(client, pick(recorded, "dialplan acme.test 9999").body)))
