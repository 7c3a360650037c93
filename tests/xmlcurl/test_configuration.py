"""Per-node configuration: sofia, event socket, core switch settings, ACLs, conference profiles."""

from __future__ import annotations

import time
import uuid
from typing import Any

from xmlcurl_support import parse_answer, pick, post

from controller import provisioning
from controller.domain import Node
from controller.stores import changes, nodes
from controller.stores.changes import Notice
from xmlcurl.configuration import sofia
from xmlcurl.options import XmlCurlOptions


def config(client: Any, recorded: Any, name: str, node: str = "vm") -> Any:
    request = pick(recorded, "configuration sofia.conf")
    body = request.with_fields(key_value=name, hostname=node, **{"FreeSWITCH-Switchname": node})
    root = parse_answer(post(client, body))
    conf = root.find("section/configuration")
    assert conf is not None and conf.get("name") == name
    return conf


def settings(element: Any, path: str = "settings/param") -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in element.iterfind(path)}


def test_sofia_profile_uses_the_nodes_address_and_its_tenants_gateways(
    client: Any, db: Any, farm: Any, recorded: Any
) -> None:
    provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5070", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    provisioning.update_tenant(db, "beta.test", {"pinned_node": "fs2"})
    provisioning.add_child(
        db,
        "gateways",
        "acme.test",
        {"name": "carrier", "proxy": "203.0.113.5:5060", "username": "acme", "password": "pw", "register": True},
    )
    provisioning.add_child(db, "gateways", "beta.test", {"name": "carrier", "proxy": "198.51.100.7:5060"})
    vm = config(client, recorded, "sofia.conf")
    profile = vm.find("profiles/profile")
    s = settings(profile)
    assert (s["sip-ip"], s["sip-port"], s["ext-sip-ip"], s["ext-rtp-ip"]) == (
        "127.0.0.1",
        "5060",
        "127.0.0.1",
        "127.0.0.1",
    )
    assert s["auth-calls"] == "true" and s["context"] == "public"
    assert [g.get("name") for g in profile.iterfind("gateways/gateway")] == ["acme.test--carrier"]
    gw = settings(profile.find("gateways/gateway"), "params/param")
    assert gw["proxy"] == "203.0.113.5:5060" and gw["register"] == "true" and gw["password"] == "pw"
    fs2 = config(client, recorded, "sofia.conf", node="fs2").find("profiles/profile")
    assert settings(fs2)["sip-port"] == "5070"
    assert [g.get("name") for g in fs2.iterfind("gateways/gateway")] == ["beta.test--carrier"]


def test_event_socket_and_switch_are_the_nodes_own(client: Any, farm: Any, recorded: Any) -> None:
    esl = settings(config(client, recorded, "event_socket.conf"))
    assert (esl["listen-ip"], esl["listen-port"], esl["password"]) == ("127.0.0.1", "8021", "ClueCon")
    for name in ("post_load_switch.conf", "switch.conf"):
        conf = config(client, recorded, name)
        core = settings(conf)
        assert (core["rtp-start-port"], core["rtp-end-port"]) == ("20000", "20999")
        assert core["event-heartbeat-interval"] == "1"
        # 1.10 reads media timeouts (ms) from channel variables, which fall back to global ones
        variables = settings(conf, "variables/variable")
        assert variables == {"media_timeout": "300000", "media_hold_timeout": "1800000"}


# Every profile param mod_voicemail 1.10.12 knows (profile_set_config); any other one makes it drop the
# whole profile with "Failed to process configuration".
VOICEMAIL_PARAMS = set(
    "terminator-key play-new-messages-key play-saved-messages-key play-new-messages-lifo play-saved-messages-lifo "
    "login-keys main-menu-key skip-greet-key skip-info-key config-menu-key record-greeting-key choose-greeting-key "
    "record-name-key change-pass-key record-file-key listen-file-key save-file-key delete-file-key "
    "undelete-file-key email-key callback-key pause-key restart-key ff-key rew-key previous-message-key "
    "next-message-key repeat-message-key urgent-key operator-key vmain-key vmain-extension forward-key prepend-key "
    "file-extension record-title record-comment record-copyright operator-extension tone-spec storage-dir "
    "storage-dir-shared callback-dialplan callback-context notify-email-body notify-email-headers "
    "play-date-announcement convert-cmd convert-ext digit-timeout max-login-attempts min-record-len max-record-len "
    "max-retries record-silence-threshold record-silence-hits record-sample-rate odbc-dsn dbname web-template-file "
    "db-password-override allow-empty-password-auth auto-playback-recordings send-full-vm-header".split()
)


def test_voicemail_profile_has_only_params_mod_voicemail_knows(client: Any, farm: Any, recorded: Any) -> None:
    profile = config(client, recorded, "voicemail.conf").find("profiles/profile")
    assert profile.get("name") == "default"
    served = settings(profile, "param")
    assert set(served) <= VOICEMAIL_PARAMS, set(served) - VOICEMAIL_PARAMS
    assert served["min-record-len"] == "3" and served["file-extension"] == "wav"


def test_sofia_profile_has_no_deprecated_rtp_timeouts_and_takes_mwi_subscriptions(
    client: Any, farm: Any, recorded: Any
) -> None:
    s = settings(config(client, recorded, "sofia.conf").find("profiles/profile"))
    assert "rtp-timeout-sec" not in s and "rtp-hold-timeout-sec" not in s  # 1.10.12 warns they are deprecated
    assert s["manage-presence"] == "passive"  # SUBSCRIBE message-summary allowed: voicemail MWI reaches phones


def test_acl_holds_only_farm_members(client: Any, db: Any, farm: Any, recorded: Any) -> None:
    provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5070", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    provisioning.add_mixer(
        db,
        {
            "name": "mix1",
            "sip_address": "10.0.0.9:5090",
            "control_url": "http://10.0.0.9",
            "control_token": "mixer-token-0123456789",
        },
    )
    acl = config(client, recorded, "acl.conf")
    lists = {lst.get("name"): lst for lst in acl.iterfind("network-lists/list")}
    nodes = lists["fsfarm-nodes"]
    assert nodes.get("default") == "deny"
    assert sorted(n.get("cidr") for n in nodes) == ["10.0.0.2/32", "10.0.0.9/32", "127.0.0.1/32"]
    assert all(n.get("type") == "allow" for n in nodes)


def test_ipv6_addresses_reach_sofia_event_socket_and_acl_without_brackets(
    client: Any, db: Any, farm: Any, recorded: Any
) -> None:
    provisioning.add_node(
        db,
        {"name": "fs6", "sip_address": "[2001:db8::2]", "esl_address": "[2001:db8::2]", "esl_password": "x"},
    )
    provisioning.update_tenant(db, "beta.test", {"pinned_node": "fs6"})
    provisioning.add_child(db, "gateways", "beta.test", {"name": "carrier", "proxy": "[2001:db8::9]"})
    profile = config(client, recorded, "sofia.conf", node="fs6").find("profiles/profile")
    s = settings(profile)
    assert (s["sip-ip"], s["sip-port"], s["ext-rtp-ip"]) == ("2001:db8::2", "5060", "2001:db8::2")
    gw = settings(profile.find("gateways/gateway"), "params/param")
    assert (gw["proxy"], gw["realm"]) == ("[2001:db8::9]:5060", "[2001:db8::9]")  # a realm is URI text: brackets
    esl = settings(config(client, recorded, "event_socket.conf", node="fs6"))
    assert (esl["listen-ip"], esl["listen-port"]) == ("2001:db8::2", "8021")
    acl = config(client, recorded, "acl.conf")
    farm_list = next(lst for lst in acl.iterfind("network-lists/list") if lst.get("name") == "fsfarm-nodes")
    assert "2001:db8::2/128" in {n.get("cidr") for n in farm_list}


def test_conference_profiles_have_their_rates(client: Any, farm: Any, recorded: Any) -> None:
    conf = config(client, recorded, "conference.conf")
    rates = {p.get("name"): settings(p, "param")["rate"] for p in conf.iterfind("profiles/profile")}
    assert rates["narrowband"] == "8000" and rates["wideband"] == "16000" and rates["hd"] == "48000"
    for profile in conf.iterfind("profiles/profile"):
        params = settings(profile, "param")
        assert params["comfort-noise"] == "true" and params["caller-controls"] == "default"
        assert int(params["energy-level"]) > 0
    assert conf.find("caller-controls/group[@name='default']/control[@action='mute']") is not None


def test_sip_codecs_come_from_fsfarm_sip_codecs(monkeypatch: Any) -> None:
    from uuid import uuid4

    from controller.config import Settings
    from controller.domain import Node
    from xmlcurl.configuration import sofia
    from xmlcurl.options import XmlCurlOptions

    node = Node(
        id=uuid4(),
        name="fs1",
        switchname="fs1",
        sip_address="10.0.0.1:5060",
        esl_address="10.0.0.1:8021",
        esl_password="x",
        rtp_port_min=20000,
        rtp_port_max=20999,
        capacity=100,
    )
    keys = ("codec-prefs", "inbound-codec-prefs", "outbound-codec-prefs")
    monkeypatch.delenv("FSFARM_SIP_CODECS", raising=False)
    default = settings(sofia(node, [], XmlCurlOptions.from_settings(Settings.from_env())).find(".//profile"))
    assert [default[k] for k in keys] == ["OPUS,G722,PCMU,PCMA"] * 3
    monkeypatch.setenv("FSFARM_SIP_CODECS", "PCMU,L16@16000h")
    chosen = settings(sofia(node, [], XmlCurlOptions.from_settings(Settings.from_env())).find(".//profile"))
    assert [chosen[k] for k in keys] == ["PCMU,L16@16000h"] * 3


def test_an_heir_answers_at_a_dead_nodes_address_with_a_second_profile(
    client: Any, db: Any, farm: Any, recorded: Any
) -> None:
    dead = provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5070", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    vm = config(client, recorded, "sofia.conf").findall("profiles/profile")
    assert [p.get("name") for p in vm] == ["internal"]
    with db.transaction() as conn:
        nodes.update(conn, dead.id, {"heir_id": farm["vm"].id})
        changes.announce(conn, Notice.NODE)
    deadline = time.monotonic() + 10  # the answer follows the change notice
    while len(profiles := config(client, recorded, "sofia.conf").findall("profiles/profile")) < 2:
        assert time.monotonic() < deadline, "the heir's sofia.conf never grew the dead node's profile"
        time.sleep(0.05)
    assert [p.get("name") for p in profiles] == ["internal", "internal-fs2"]
    s = settings(profiles[1])
    # Signalling and media on the dead node's address, tracked again for the next failover; no gateways there.
    assert (s["sip-ip"], s["sip-port"], s["rtp-ip"], s["track-calls"]) == ("10.0.0.2", "5070", "10.0.0.2", "true")
    assert profiles[1].find("gateways") is None
    assert [p.get("name") for p in config(client, recorded, "sofia.conf", node="fs2").findall("profiles/profile")] == [
        "internal"
    ]


def test_sofia_keeps_registrations_in_the_shared_database_when_there_is_one() -> None:
    node = Node(
        id=uuid.uuid4(),
        name="fs1",
        switchname="fs1",
        sip_address="10.0.0.1:5060",
        esl_address="10.0.0.1:8021",
        esl_password="x",
        rtp_port_min=16384,
        rtp_port_max=32768,
        capacity=100,
    )
    shared = XmlCurlOptions(sofia_dsn="pgsql://host=db dbname=fs_switch options='-c search_path=sofia'")
    profile = sofia(node, [], shared).find(".//profile")
    assert settings(profile)["odbc-dsn"] == shared.sofia_dsn
    assert "odbc-dsn" not in settings(sofia(node, [], XmlCurlOptions()).find(".//profile"))
