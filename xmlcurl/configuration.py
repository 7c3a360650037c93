"""The configuration section: what each stock module reads at start, built per node from the database."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from controller.database.switch import adopted_profile
from controller.domain import ESL_PORT, NDLB_OPTIONS, SIP_PORT, Gateway, HostPort, Mixer, Node, Tenant
from xmlcurl.dialplan import FARM_ACL, gateway_name
from xmlcurl.documents import Element, document, params
from xmlcurl.options import XmlCurlOptions

HEARTBEAT_SECONDS = 1  # the ESL watcher declares a node dead after 3 missed heartbeats
# Hang up a call whose RTP stopped for 5 min (30 min on hold). Global variables, since 1.10 reads the
# media_timeout channel variables (ms) and only warns about sofia's rtp-timeout-sec.
MEDIA_TIMEOUTS = (("media_timeout", "300000"), ("media_hold_timeout", "1800000"))
PROXY_ACL = "fsfarm-proxies"
ESL_ACL = "fsfarm-esl"
CANDIDATE_ACL = "any_v4.auto"  # FreeSWITCH's built-in list of every IPv4 address
CONFERENCE_PROFILES = {"narrowband": 8000, "wideband": 16000, "hd": 48000}
CALLER_CONTROLS = [
    ("mute", "0"),
    ("deaf mute", "*"),
    ("energy up", "9"),
    ("energy equ", "8"),
    ("energy dn", "7"),
    ("vol talk up", "3"),
    ("vol talk zero", "2"),
    ("vol talk dn", "1"),
    ("vol listen up", "6"),
    ("vol listen zero", "5"),
    ("vol listen dn", "4"),
    ("hangup", "#"),
]


def ip_cidr(host: str) -> str | None:
    """A host/32 (or /128) CIDR for an IP literal; None for a DNS name, which ACLs cannot hold."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return f"{ip}/{ip.max_prefixlen}"


def _config(name: str) -> tuple[Element, Element]:
    root, section = document("configuration")
    return root, etree.SubElement(section, "configuration", name=name, description="fsfarm")


def _profile_settings(address: str, options: XmlCurlOptions, node: Node) -> list[tuple[str, str]]:
    """A SIP profile's settings on one address (the node's own, or a dead node's its heir answers at), with
    ``node``'s WebSocket bindings and NAT settings."""
    sip = HostPort.parse(address, SIP_PORT)
    stun = f"stun:{node.stun_server}" if node.stun_server else sip.host
    settings: list[tuple[str, str]] = [
        ("sip-ip", sip.host),
        ("sip-port", str(sip.port)),
        ("rtp-ip", sip.host),
        ("ext-sip-ip", node.ext_sip_ip or stun),
        ("ext-rtp-ip", node.ext_rtp_ip or stun),
        ("context", "public"),
        ("dialplan", "XML"),
        ("auth-calls", "true"),
        ("apply-inbound-acl", FARM_ACL),
        ("codec-prefs", options.sip_codecs),
        ("inbound-codec-prefs", options.sip_codecs),
        ("outbound-codec-prefs", options.sip_codecs),
        ("rfc2833-pt", "101"),
        ("dtmf-type", "rfc2833"),
        # passive: phones may SUBSCRIBE to message-summary (voicemail MWI) without sofia tracking call presence
        ("manage-presence", "passive"),
        ("challenge-realm", "auto_from"),
        ("inbound-late-negotiation", "true"),
        # Answered calls are written to the core database, where a spare recovers them if this node dies.
        ("track-calls", "true"),
    ]
    settings += _webrtc_settings(sip, node)
    if node.nat_acl:
        settings.append(("apply-nat-acl", node.nat_acl))
    settings += [(NDLB_OPTIONS[name], "true") for name in node.ndlb if name in NDLB_OPTIONS]
    if options.sofia_dsn:
        # Registrations, nonces and dialogs in the farm's shared database: a spare finds phones it never saw.
        settings.append(("odbc-dsn", options.sofia_dsn))
    if options.sip_proxies:
        settings.append(("apply-proxy-acl", PROXY_ACL))  # trust the proxy's X-AUTH-IP, still challenge phones
    return settings


def _webrtc_settings(sip: HostPort, node: Node) -> list[tuple[str, str]]:
    """SIP over WebSocket (ws, and wss with wss.pem from the node's certs dir) and what browsers' media needs."""
    settings = []
    if node.ws_port:
        settings.append(("ws-binding", f"{sip.uri_host}:{node.ws_port}"))
    if node.wss_port:
        settings.append(("wss-binding", f"{sip.uri_host}:{node.wss_port}"))
    if node.ws_port or node.wss_port:
        # Browsers offer DTLS-SRTP with ICE (FreeSWITCH makes certs/dtls-srtp.pem itself on first start);
        # any candidate may be the reachable one: ICE checks, then media latches on where it really comes from.
        settings.append(("apply-candidate-acl", CANDIDATE_ACL))
    return settings


def sofia(
    node: Node,
    tenant_gateways: Iterable[tuple[Tenant, Gateway]],
    options: XmlCurlOptions,
    adopted: Iterable[Node] = (),
) -> Element:
    """One SIP profile bound to the node's own address, carrying the gateways of its tenants; and one more on the
    address of each dead node it took over (``adopted``: their heir is this node), where their calls carry on."""
    root, conf = _config("sofia.conf")
    params(conf, "global_settings", [("log-level", "0")])
    profiles = etree.SubElement(conf, "profiles")
    profile = etree.SubElement(profiles, "profile", name=options.sip_profile)
    # alias: each tenant domain names this profile. Without it sofia 1.10.12 finds the profile for a voicemail
    # MWI by a registrations query that leaks a profile read lock, and the node then hangs on shutdown.
    etree.SubElement(etree.SubElement(profile, "domains"), "domain", name="all", alias="true", parse="true")
    params(profile, "settings", _profile_settings(node.sip_address, options, node))
    gateways = etree.SubElement(profile, "gateways")
    for tenant, gw in tenant_gateways:
        entry = etree.SubElement(gateways, "gateway", name=gateway_name(tenant, gw))
        values = [
            ("proxy", gw.proxy),
            ("realm", HostPort.parse(gw.proxy, SIP_PORT).uri_host),
            ("username", gw.username or "fsfarm"),
            ("register", "true" if gw.register else "false"),
        ]
        if gw.password:
            values.append(("password", gw.password))
        if gw.caller_id_number:
            values.append(("caller-id-in-from", "true"))
            values.append(("from-user", gw.caller_id_number))
        values.append(("context", "public"))
        params(entry, "params", values)
        params(entry, "variables", [("fsfarm_tenant", tenant.domain)], item="variable")
    for dead in adopted:
        extra = etree.SubElement(profiles, "profile", name=adopted_profile(options.sip_profile, dead.name))
        params(extra, "settings", _profile_settings(dead.sip_address, options, dead))
    return root


def conference() -> Element:
    """Narrowband, wideband and HD rooms, with one set of keypad controls for everyone."""
    root, conf = _config("conference.conf")
    group = etree.SubElement(etree.SubElement(conf, "caller-controls"), "group", name="default")
    for action, digits in CALLER_CONTROLS:
        etree.SubElement(group, "control", action=action, digits=digits)
    profiles = etree.SubElement(conf, "profiles")
    for name, rate in [*CONFERENCE_PROFILES.items(), ("default", CONFERENCE_PROFILES["wideband"])]:
        profile = etree.SubElement(profiles, "profile", name=name)
        for key, value in [
            ("rate", str(rate)),
            ("interval", "20"),
            ("energy-level", "100"),
            ("comfort-noise", "true"),
            ("caller-controls", "default"),
            ("auto-gain-level", "0"),
        ]:
            etree.SubElement(profile, "param", name=key, value=value)
    return root


def event_socket(node: Node, controller_address: str) -> Element:
    """ESL on the node's own address and password, open only to the controller."""
    root, conf = _config("event_socket.conf")
    esl = HostPort.parse(node.esl_address, ESL_PORT)
    settings = [
        ("nat-map", "false"),
        ("listen-ip", esl.host),
        ("listen-port", str(esl.port)),
        ("password", node.esl_password),
    ]
    if ip_cidr(controller_address):
        settings.append(("apply-inbound-acl", ESL_ACL))
    params(conf, "settings", settings)
    return root


def switch(node: Node, name: str = "switch.conf") -> Element:
    """Core settings for ``post_load_switch.conf``/``switch.conf``: the node's RTP range, a 1 s heartbeat,
    and the media timeouts as global variables every channel inherits."""
    root, conf = _config(name)
    params(
        conf,
        "settings",
        [
            ("rtp-start-port", str(node.rtp_port_min)),
            ("rtp-end-port", str(node.rtp_port_max)),
            ("event-heartbeat-interval", str(HEARTBEAT_SECONDS)),
            ("max-sessions", str(node.capacity)),
            ("sessions-per-second", "100"),
        ],
    )
    params(conf, "variables", list(MEDIA_TIMEOUTS), item="variable")
    return root


def acl(nodes: Iterable[Node], mixers: Iterable[Mixer], controller_address: str, options: XmlCurlOptions) -> Element:
    """Farm members (nodes, mixers), the SIP proxies, and the controller for ESL; everyone else denied."""
    root, conf = _config("acl.conf")
    lists = etree.SubElement(conf, "network-lists")

    def network_list(name: str, hosts: Iterable[str]) -> None:
        entry = etree.SubElement(lists, "list", name=name, default="deny")
        for cidr in sorted({c for c in (ip_cidr(h) if "/" not in h else h for h in hosts) if c}):
            etree.SubElement(entry, "node", type="allow", cidr=cidr)

    farm = [HostPort.parse(member.sip_address, SIP_PORT).host for member in [*nodes, *mixers]]
    network_list(FARM_ACL, farm)
    network_list(PROXY_ACL, options.sip_proxies)
    network_list(ESL_ACL, [controller_address, "127.0.0.1"])
    return root


def voicemail(options: XmlCurlOptions) -> Element:
    root, conf = _config("voicemail.conf")
    etree.SubElement(conf, "settings")
    profile = etree.SubElement(etree.SubElement(conf, "profiles"), "profile", name="default")
    values = [
        ("file-extension", "wav"),
        ("terminator-key", "#"),
        ("max-login-attempts", "3"),
        ("digit-timeout", "10000"),
        ("min-record-len", "3"),
        ("max-record-len", "300"),
        ("tone-spec", "%(1000, 0, 640)"),
        ("callback-dialplan", "XML"),
        ("callback-context", "default"),
        # an unknown param makes mod_voicemail drop the whole profile ("Failed to process configuration")
        ("play-new-messages-lifo", "false"),
        ("allow-empty-password-auth", "false"),
    ]
    if options.voicemail_dir:
        values += [("storage-dir", options.voicemail_dir), ("storage-dir-shared", "true")]
    for key, value in values:
        etree.SubElement(profile, "param", name=key, value=value)
    return root


@dataclass(frozen=True)
class Known:
    """Configurations we answer; every other name gets "not found" (FreeSWITCH then uses its defaults)."""

    names: tuple[str, ...] = (
        "sofia.conf",
        "conference.conf",
        "event_socket.conf",
        "switch.conf",
        "post_load_switch.conf",
        "acl.conf",
        "voicemail.conf",
    )


KNOWN = Known().names
