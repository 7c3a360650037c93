"""The only local FreeSWITCH config a node needs: core settings, modules, and where xml_curl asks for the rest."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from controller.domain import Node
from xmlcurl.configuration import HEARTBEAT_SECONDS
from xmlcurl.documents import Element, params
from xmlcurl.options import XmlCurlOptions

# Stock modules the farm relies on; mod_xml_curl first so every later module reads its config from us.
MODULES = (
    "mod_console",
    "mod_logfile",
    "mod_xml_curl",
    "mod_event_socket",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_conference",
    "mod_voicemail",
    "mod_say_en",
    "mod_sndfile",
    "mod_native_file",
    "mod_tone_stream",
    "mod_opus",
    "mod_spandsp",
    "mod_sofia",  # mod_spandsp: G.722 (not in the 1.10 core)
)
# FreeSWITCH matches each section's own name in this list ("languages" is what phrase macros are fetched as).
BINDINGS = "directory|dialplan|configuration|languages"


def _include(*configurations: Element) -> bytes:
    root = etree.Element("include")
    for conf in configurations:
        root.append(conf)
    return etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=False)


def _configuration(name: str) -> Element:
    return etree.Element("configuration", name=name, description="fsfarm bootstrap")


def switch_conf(node: Node, core_dsn: str = "") -> Element:
    conf = _configuration("switch.conf")
    # The core database (and the calls sofia tracks for recovery) in the farm's PostgreSQL, where a spare reaches it.
    core = [("core-db-dsn", core_dsn)] if core_dsn else []
    params(
        conf,
        "settings",
        [
            *core,
            ("colorize-console", "false"),
            ("loglevel", "info"),
            ("max-sessions", str(node.capacity)),
            ("sessions-per-second", "100"),
            ("rtp-start-port", str(node.rtp_port_min)),
            ("rtp-end-port", str(node.rtp_port_max)),
            ("event-heartbeat-interval", str(HEARTBEAT_SECONDS)),
            ("switchname", node.switchname),  # how the controller recognises this node in every fetch
        ],
    )
    return conf


def modules_conf() -> Element:
    conf = _configuration("modules.conf")
    holder = etree.SubElement(conf, "modules")
    for module in MODULES:
        etree.SubElement(holder, "load", module=module)
    return conf


def pre_load_modules_conf() -> Element:
    """mod_pgsql before the core opens its database (FreeSWITCH reads this list before the core starts)."""
    conf = _configuration("pre_load_modules.conf")
    etree.SubElement(etree.SubElement(conf, "modules"), "load", module="mod_pgsql")
    return conf


def xml_curl_conf(url: str, user: str, password: str, timeout: int, ca_file: str | None = None) -> Element:
    """mod_xml_curl's one binding; an https URL is verified (certificate chain and host name, against ``ca_file``)."""
    conf = _configuration("xml_curl.conf")
    binding = etree.SubElement(etree.SubElement(conf, "bindings"), "binding", name="fsfarm")
    etree.SubElement(binding, "param", name="gateway-url", value=url, bindings=BINDINGS)
    settings = [
        ("gateway-credentials", f"{user}:{password}"),
        ("auth-scheme", "basic"),
        ("timeout", str(timeout)),  # the default is none: a stuck controller would stall calls
        ("enable-post-data", "true"),
    ]
    if url.lower().startswith("https://"):
        # mod_xml_curl verifies neither the chain nor the host name unless told to.
        settings += [("enable-cacert-check", "true"), ("enable-ssl-verifyhost", "true")]
        if ca_file:
            settings.append(("ssl-cacert-file", ca_file))
    for name, value in settings:
        etree.SubElement(binding, "param", name=name, value=value)
    return conf


def console_conf() -> Element:
    conf = _configuration("console.conf")
    params(conf, "mappings", [("all", "console,debug,info,notice,warning,err,crit,alert")], item="map")
    params(conf, "settings", [("colorize", "false"), ("loglevel", "info")])
    return conf


def logfile_conf() -> Element:
    conf = _configuration("logfile.conf")
    params(conf, "settings", [("rotate-on-hup", "true")])
    profile = etree.SubElement(etree.SubElement(conf, "profiles"), "profile", name="default")
    params(profile, "settings", [("rollover", "10485760")])
    params(profile, "mappings", [("all", "debug,info,notice,warning,err,crit,alert")], item="map")
    return conf


FREESWITCH_XML = b"""<?xml version="1.0"?>
<!-- Written by `fsfarm freeswitch bootstrap`: everything else comes from the controller over xml_curl. -->
<document type="freeswitch/xml">
  <section name="configuration" description="fsfarm bootstrap">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>
</document>
"""


def files(
    node: Node,
    url: str,
    user: str,
    password: str,
    options: XmlCurlOptions,
    ca_file: str | None = None,
    core_dsn: str = "",
) -> dict[str, bytes]:
    """Relative path -> contents of every local file, for FreeSWITCH's conf dir (``-conf``).

    ``core_dsn``: the node's core database in the farm's PostgreSQL (``controller.database.switch``); empty: SQLite.
    """
    curl = xml_curl_conf(url, user, password, options.fetch_timeout, ca_file)
    pre_load = {"autoload_configs/pre_load_modules.conf.xml": _include(pre_load_modules_conf())} if core_dsn else {}
    return {
        "freeswitch.xml": FREESWITCH_XML,
        **pre_load,
        "autoload_configs/switch.conf.xml": _include(switch_conf(node, core_dsn)),
        "autoload_configs/modules.conf.xml": _include(modules_conf()),
        "autoload_configs/xml_curl.conf.xml": _include(curl),
        "autoload_configs/console.conf.xml": _include(console_conf()),
        "autoload_configs/logfile.conf.xml": _include(logfile_conf()),
    }


def write(out: Path, contents: dict[str, bytes]) -> list[Path]:
    """Write the files under ``out`` (credentials inside: mode 0600); return what was written."""
    written = []
    for rel, data in contents.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o600)
        written.append(path)
    return written
