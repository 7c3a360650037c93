"""The options the xml_curl room reads: its view of the farm's ``Settings`` (``controller.config``)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import Settings
from controller.database.switch import SwitchDatabase

PATH = "/xmlcurl"  # where the controller answers mod_xml_curl (the bootstrap points the nodes here)


@dataclass(frozen=True)
class XmlCurlOptions:
    """Knobs an operator may turn; every default runs a one-machine farm."""

    ivr_port: int = 8084  # where the controller's outbound ESL (IVR) server listens
    sip_proxies: tuple[str, ...] = ()  # IPs/CIDRs of the SIP proxies (Kamailio) trusted by the nodes
    cache_ttl: float = 30.0  # seconds an answer may live even without a change notice
    cache_entries: int = 200_000  # per process; least recently used answers go first
    fetch_timeout: int = 5  # seconds FreeSWITCH waits for us (its default is forever)
    voicemail_dir: str = ""  # shared storage for voicemail (GlusterFS mount); empty: FreeSWITCH's own
    sip_profile: str = "internal"
    sip_codecs: str = "OPUS,G722,PCMU,PCMA"  # the SIP profile's codec-prefs, in FreeSWITCH codec-string syntax
    shared_mount: str = ""  # where every node mounts the shared volume: voicemail goes to <mount>/<tenant-id>/
    snapshot: bool = True  # answer from the in-process snapshot (SQL only while it is not loaded)
    gc_freeze: bool = True  # gc.freeze() after the snapshot loads: the collector stops walking it
    sofia_dsn: str = ""  # odbc-dsn of every node's SIP profile (controller.database.switch); empty: the node's own

    @classmethod
    def from_settings(cls, settings: Settings, switch: SwitchDatabase | None = None) -> XmlCurlOptions:
        """The xml_curl room's view of the farm's settings (``switch``: where the nodes share their state)."""
        return cls(
            sofia_dsn=switch.sofia_dsn() if switch else "",
            ivr_port=settings.ivr.port,
            sip_proxies=settings.sip.proxies,
            cache_ttl=settings.xmlcurl.cache_ttl,
            cache_entries=settings.xmlcurl.cache_entries,
            fetch_timeout=settings.xmlcurl.fetch_timeout,
            voicemail_dir=settings.storage.voicemail_dir,
            sip_profile=settings.sip.profile,
            sip_codecs=settings.sip.codecs,
            shared_mount=settings.storage.shared_mount,
            snapshot=settings.xmlcurl.snapshot,
            gc_freeze=settings.xmlcurl.gc_freeze,
        )
