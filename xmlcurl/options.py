"""Settings only the xml_curl room reads, from the environment (the controller's Settings stay untouched)."""

from __future__ import annotations

import os
from dataclasses import dataclass


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

    @classmethod
    def from_env(cls) -> XmlCurlOptions:
        env = os.environ
        proxies = tuple(p.strip() for p in env.get("FSFARM_SIP_PROXIES", "").split(",") if p.strip())
        return cls(
            ivr_port=int(env.get("FSFARM_IVR_PORT", "8084")),
            sip_proxies=proxies,
            cache_ttl=float(env.get("FSFARM_XMLCURL_CACHE_TTL", "30")),
            cache_entries=int(env.get("FSFARM_XMLCURL_CACHE_ENTRIES", "200000")),
            fetch_timeout=int(env.get("FSFARM_XMLCURL_TIMEOUT", "5")),
            voicemail_dir=env.get("FSFARM_VOICEMAIL_DIR", ""),
            sip_codecs=env.get("FSFARM_SIP_CODECS", "").strip() or cls.sip_codecs,
            shared_mount=env.get("FSFARM_SHARED_MOUNT", "").rstrip("/"),
            snapshot=env.get("FSFARM_XMLCURL_SNAPSHOT", "1") not in ("0", "false", "no"),
            gc_freeze=env.get("FSFARM_XMLCURL_GC_FREEZE", "1") not in ("0", "false", "no"),
        )
