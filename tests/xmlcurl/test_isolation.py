"""A node sees only the tenants placed on it; a tenant's context reaches only its own things."""

from __future__ import annotations

import logging
from typing import Any

from xmlcurl_support import actions, is_not_found, parse_answer, pick, post

from controller import provisioning


def _second_node(db: Any) -> Any:
    return provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5060", "esl_address": "10.0.0.2:8021", "esl_password": "other"}
    )


def test_node_gets_only_its_own_tenants(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    _second_node(db)
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    provisioning.update_tenant(db, "beta.test", {"pinned_node": "fs2"})
    auth = pick(recorded, "directory sip_auth")
    # beta's user asked through the node that does not run beta
    as_beta = auth.with_fields(user="2001", domain="beta.test", key_value="beta.test", sip_auth_username="2001")
    assert is_not_found(parse_answer(post(client, as_beta)))
    # the same question from fs2 is answered
    from_fs2 = auth.with_fields(
        **{
            "user": "2001",
            "domain": "beta.test",
            "key_value": "beta.test",
            "hostname": "fs2",
            "FreeSWITCH-Switchname": "fs2",
            "FreeSWITCH-Hostname": "fs2",
        }
    )
    root = parse_answer(post(client, from_fs2))
    assert root.find(".//user").get("id") == "2001"
    # and fs2 cannot read acme's users
    acme_from_fs2 = auth.with_fields(**{"hostname": "fs2", "FreeSWITCH-Switchname": "fs2"})
    assert is_not_found(parse_answer(post(client, acme_from_fs2)))
    listing = parse_answer(
        post(
            client,
            pick(recorded, "directory gateways").with_fields(**{"hostname": "fs2", "FreeSWITCH-Switchname": "fs2"}),
        )
    )
    assert [d.get("name") for d in listing.iterfind("section/domain")] == ["beta.test"]


def test_unknown_switch_gets_not_found_and_a_log_line(client: Any, farm: Any, recorded: Any, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="xmlcurl.web")
    for label in ("directory sip_auth", "dialplan acme.test 1002", "configuration sofia.conf"):
        body = pick(recorded, label).with_fields(**{"hostname": "intruder", "FreeSWITCH-Switchname": "intruder"})
        assert is_not_found(parse_answer(post(client, body)))
    assert any("intruder" in r.getMessage() for r in caplog.records)
    # the 5-field fetches carry only `hostname`: it identifies the node too
    bare = pick(recorded, "configuration event_socket.conf").with_fields(hostname="intruder")
    assert is_not_found(parse_answer(post(client, bare)))


def test_switchname_wins_over_hostname(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    _second_node(db)
    body = pick(recorded, "configuration sofia.conf").with_fields(**{"FreeSWITCH-Switchname": "fs2"})
    root = parse_answer(post(client, body))
    sip_ip = root.find(".//settings/param[@name='sip-ip']").get("value")
    assert sip_ip == "10.0.0.2"


def test_context_of_a_tenant_placed_elsewhere_is_not_served(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    _second_node(db)
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    provisioning.update_tenant(db, "beta.test", {"pinned_node": "fs2"})
    call = pick(recorded, "dialplan acme.test 1002")
    into_beta = call.with_fields(
        **{
            "Caller-Context": "beta.test",
            "Hunt-Context": "beta.test",
            "Caller-Destination-Number": "2001",
            "Hunt-Destination-Number": "2001",
        }
    )
    assert is_not_found(parse_answer(post(client, into_beta)))


def test_acme_cannot_dial_beta_extensions(client: Any, farm: Any, recorded: Any) -> None:
    call = pick(recorded, "dialplan acme.test 1002")
    body = call.with_fields(**{"Caller-Destination-Number": "2001", "Hunt-Destination-Number": "2001"})
    assert is_not_found(parse_answer(post(client, body)))
    # beta's own context (same node) reaches 2001, and only inside beta
    own = call.with_fields(
        **{
            "Caller-Context": "beta.test",
            "Hunt-Context": "beta.test",
            "Caller-Destination-Number": "2001",
            "Hunt-Destination-Number": "2001",
        }
    )
    root = parse_answer(post(client, own))
    assert ("bridge", "user/2001@beta.test") in actions(root)
    assert all("acme" not in (data or "") for _, data in actions(root))
