"""Dialplan routes beyond the recording: rooms elsewhere, mixers, DIDs, voicemail, outbound gateways."""

from __future__ import annotations

from typing import Any

from xmlcurl_support import actions, is_not_found, parse_answer, pick, post

from controller import provisioning
from controller.stores import placements


def dial(client: Any, recorded: Any, dest: str, context: str = "acme.test", node: str = "vm") -> Any:
    call = pick(recorded, "dialplan acme.test 1002")
    body = call.with_fields(
        **{
            "Caller-Destination-Number": dest,
            "Hunt-Destination-Number": dest,
            "Caller-Context": context,
            "Hunt-Context": context,
            "hostname": node,
            "FreeSWITCH-Switchname": node,
        }
    )
    return parse_answer(post(client, body))


def test_room_on_another_node_is_bridged_there(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5070", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    provisioning.update_child(db, "conferences", "acme.test", "3000", {"pinned_node": "fs2"})
    room = farm["room"]
    root = dial(client, recorded, "3000")
    assert actions(root)[-1] == ("bridge", f"sofia/internal/conf-{room.id}@10.0.0.2:5070")
    # fs2 takes the farm leg into the local room, only from farm members
    leg = dial(client, recorded, f"conf-{room.id}", context="public", node="fs2")
    assert ("conference", "3000-acme.test@narrowband") in actions(leg)
    fields = [c.get("field") for c in leg.iter("condition")]
    assert "${acl(${network_addr} fsfarm-nodes)}" in fields
    # vm does not run the room: a leg sent to it is refused
    assert is_not_found(dial(client, recorded, f"conf-{room.id}", context="public", node="vm"))


def test_hd_room_goes_to_its_mixer(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.add_mixer(
        db,
        {
            "name": "mix1",
            "sip_address": "10.0.0.9:5090",
            "control_url": "http://10.0.0.9:8090",
            "control_token": "mixer-token-0123456789",
        },
    )
    room = provisioning.add_child(db, "conferences", "acme.test", {"number": "3100", "profile": "hd"})
    with db.transaction() as conn:
        assert any(p.conference_id == room.id and p.mixer_id for p in placements.conference_placements(conn))
    root = dial(client, recorded, "3100")
    assert actions(root)[-1] == (
        "bridge",
        f"{{absolute_codec_string='${{rtp_use_codec_name}},PCMU,PCMA'}}sofia/internal/room-{room.id}@10.0.0.9:5090",
    )
    # the caller's codec is negotiated (early media) in the farm's wideband-first order before the mixer leg
    assert ("set", "rtp_codec_negotiation=greedy") in actions(root) and ("pre_answer", "") in actions(root)


def test_room_pin_is_passed_to_the_conference_app(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3200", "profile": "wideband", "pin": "4321"})
    assert ("conference", "3200-acme.test@wideband+4321") in actions(dial(client, recorded, "3200"))


def test_did_from_carrier_lands_in_its_tenant(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.add_child(
        db, "numbers", "acme.test", {"number": "+15550001001", "target_type": "user", "target": "1001"}
    )
    provisioning.add_child(
        db, "numbers", "acme.test", {"number": "+15550005000", "target_type": "ivr", "target": "menu"}
    )
    provisioning.add_child(
        db, "numbers", "beta.test", {"number": "+15550002001", "target_type": "voicemail", "target": "2001"}
    )
    user = dial(client, recorded, "15550001001", context="public")
    assert ("bridge", "user/1001@acme.test") in actions(user)
    assert ("set", "fsfarm_tenant=acme.test") in actions(user)
    ivr = dial(client, recorded, "+15550005000", context="public")
    assert ("set", "fsfarm_ivr=menu") in actions(ivr)
    assert actions(ivr)[-1] == ("socket", "127.0.0.1:8084 async full")
    box = dial(client, recorded, "+15550002001", context="public")
    assert actions(box)[-1] == ("voicemail", "default beta.test 2001")
    assert is_not_found(dial(client, recorded, "+15559999999", context="public"))
    # a DID is no extension inside another tenant's context
    assert is_not_found(dial(client, recorded, "+15550002001", context="acme.test"))


def test_voicemail_feature_codes(client: Any, farm: Any, recorded: Any) -> None:
    check = dial(client, recorded, "*98")
    assert actions(check)[-1] == ("voicemail", "check default acme.test ${user_name}")
    deposit = dial(client, recorded, "*991002")
    assert actions(deposit)[-1] == ("voicemail", "default acme.test 1002")
    assert is_not_found(dial(client, recorded, "*992001"))  # beta's box is not reachable from acme


def test_outbound_through_the_tenants_gateway_with_toll_check(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.add_child(
        db,
        "gateways",
        "acme.test",
        {
            "name": "carrier",
            "proxy": "203.0.113.5:5060",
            "username": "acme",
            "password": "gw-secret",
            "caller_id_number": "+15550000000",
            "strip_plus": True,
        },
    )
    root = dial(client, recorded, "+441234567890")
    assert actions(root)[-1] == ("bridge", "sofia/gateway/acme.test--carrier/441234567890")
    assert ("set", "effective_caller_id_number=+15550000000") in actions(root)
    toll = [c for c in root.iter("condition") if c.get("field") == "${toll_allow}"]
    assert toll and toll[0].get("expression") == "(^|,)international(,|$)"
    domestic = dial(client, recorded, "02012345678")
    assert [c.get("expression") for c in domestic.iter("condition")][-1] == "(^|,)domestic(,|$)"
    # beta has no gateway: the same number goes nowhere from beta
    assert is_not_found(dial(client, recorded, "+441234567890", context="beta.test"))


def test_disabled_user_is_neither_found_nor_dialled(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.update_child(db, "users", "acme.test", "1002", {"enabled": False})
    assert is_not_found(dial(client, recorded, "1002"))
    auth = pick(recorded, "directory sip_auth", 1)
    assert auth.fields["user"] == "1002"
    assert is_not_found(parse_answer(post(client, auth.body)))


def test_voicemail_of_every_user_lands_in_the_shared_tree(db, monkeypatch):
    """With a shared mount, mod_voicemail writes each box under <mount>/<tenant-id>/voicemail/<ext>."""
    from controller import provisioning as prov
    from xmlcurl import directory

    tenant = prov.add_tenant(db, {"domain": "vm.example"})
    user = prov.add_child(db, "users", "vm.example", {"extension": "1001", "password": "pw-1001-long"})
    params = dict(directory.user_params(user, tenant, "/srv/fsfarm-shared"))
    assert params["vm-storage-dir"] == f"/srv/fsfarm-shared/{tenant.id}/voicemail/1001"
    assert "vm-storage-dir" not in dict(directory.user_params(user, tenant, ""))
    no_vm = prov.update_child(db, "users", "vm.example", "1001", {"voicemail": False})
    assert "vm-storage-dir" not in dict(directory.user_params(no_vm, tenant, "/srv/fsfarm-shared"))
