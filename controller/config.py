"""Every option fsfarm reads from its environment, in one typed tree read once per process.

``Settings.from_env()`` is the only reader of ``FSFARM_*`` variables (the wiring in
``controller.app`` calls it once and hands the tree, or the branch a room needs, to every part it
builds). Every default runs a one-machine farm out of the box; ``OPTIONS`` lists them all, and a
value that does not parse is one ``Invalid`` naming the variable, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from controller.errors import Invalid

# The prompts the controller generates, relative to the shared storage root; nodes read them under their
# shared mount (FSFARM_SHARED_MOUNT) in FreeSWITCH's sound layout: <dir>/<rate>/<name>.wav.
FARM_SOUNDS = "farm/sounds/en/us/fsfarm"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where fsfarm keeps its own state: FSFARM_STATE_DIR, else /var/lib/fsfarm as root, else XDG."""
    env = os.environ if env is None else env
    if env.get("FSFARM_STATE_DIR"):
        return Path(env["FSFARM_STATE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/fsfarm")
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fsfarm"


@dataclass(frozen=True)
class XmlCurlSettings:
    """How the xml_curl room answers and caches."""

    cache_ttl: float = 30.0  # seconds an answer may live even without a change notice
    cache_entries: int = 200_000  # per process; least recently used answers go first
    fetch_timeout: int = 5  # seconds FreeSWITCH waits for us (its default is forever)
    snapshot: bool = True  # answer from the in-process snapshot (SQL only while it is not loaded)
    gc_freeze: bool = True  # gc.freeze() after the snapshot loads: the collector stops walking it


@dataclass(frozen=True)
class SipSettings:
    """The nodes' SIP side, as fsfarm writes it into their configuration."""

    profile: str = "internal"
    codecs: str = "OPUS,G722,PCMU,PCMA"  # codec-prefs, in FreeSWITCH codec-string syntax
    proxies: tuple[str, ...] = ()  # IPs/CIDRs of the SIP proxies (Kamailio) the nodes trust


@dataclass(frozen=True)
class IvrSettings:
    """The outbound-ESL server IVR scripts run in."""

    host: str = "127.0.0.1"
    port: int = 8084
    scripts_dir: Path | None = None  # None: <state dir>/ivr
    call_timeout: float = 3600.0  # a script still running after this is stopped and the call ended
    error_prompt: str = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"


@dataclass(frozen=True)
class EslSettings:
    """The inbound-ESL watchers' timings and spool."""

    spool_dir: Path | None = None  # None: <state dir>/esl-spool
    heartbeat_interval: float = 20.0  # FreeSWITCH's default; the observed gap replaces it after two beats
    reconcile_interval: float = 60.0
    backoff_max: float = 10.0


@dataclass(frozen=True)
class StorageSettings:
    """Where recordings, voicemail and prompts live, and where nodes mount them."""

    url: str | None = None  # FSFARM_STORAGE: a directory, file:// or gluster:// URL; None: <state dir>/storage
    shared_mount: str = ""  # where every node mounts the shared volume: voicemail goes to <mount>/<tenant-id>/
    voicemail_dir: str = ""  # voicemail storage-dir for the nodes; empty: FreeSWITCH's own


@dataclass(frozen=True)
class FailoverSettings:
    """How a spare takes a dead node's address (and how a hung node is stopped first)."""

    # Shell command stopping a node for good before its address is taken ({name}, {switchname}, {sip_host},
    # {esl_host} are filled in); empty: only a node found dead (not merely hung) has its address taken.
    fence_command: str = ""
    # Shell command moving the address to the heir (keepalived, the cloud's API); empty: nothing to move
    # (the address is already reachable on the heir, as on loopback). {address}, {heir}, {dead} filled in.
    address_command: str = ""


@dataclass(frozen=True)
class TaskSettings:
    """Celery: without a broker, tasks run inline in the caller."""

    broker: str | None = None
    visibility_timeout: int = 60


@dataclass(frozen=True)
class Settings:
    """What every fsfarm process needs; read once by ``Settings.from_env()``."""

    database_url: str | None = None
    state_dir: Path = field(default_factory=state_dir)
    embedded_pg_port: int = 54329
    xmlcurl_user: str = "freeswitch"
    xmlcurl_password: str = ""  # a shared password any node may use; empty: only each node's own credentials
    secret_key: str = field(
        default="", repr=False
    )  # base64 of the 32-byte key sealing secrets at rest; empty: <state dir>/secret-key
    controller_address: str = "127.0.0.1"  # host FreeSWITCH nodes reach the controller at (xml_curl, IVR sockets)
    http_port: int = 8080  # where `fsfarm up` listens unless --port says otherwise
    log_level: str = "INFO"
    kamailio_ctl: str | None = None  # Kamailio's JSON-RPC control (e.g. http://127.0.0.1:5071/RPC)
    freeswitch_bin: str | None = None  # the freeswitch binary `fsfarm freeswitch bootstrap` writes into its command
    given: frozenset[str] = frozenset()  # the variables the environment set (the rest are defaults)
    xmlcurl: XmlCurlSettings = XmlCurlSettings()
    sip: SipSettings = SipSettings()
    ivr: IvrSettings = IvrSettings()
    esl: EslSettings = EslSettings()
    storage: StorageSettings = StorageSettings()
    tasks: TaskSettings = TaskSettings()
    failover: FailoverSettings = FailoverSettings()
    # Where the nodes keep FreeSWITCH's own state (libpq DSN); None: <farm db>_switch on the farm's server;
    # "local": each node on its own disk (no registration or call outlives its node).
    switch_database_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every option from the environment (``OPTIONS`` lists them), defaults for the rest."""
        env = os.environ if env is None else env
        settings = cls(state_dir=state_dir(env))
        given = set()
        for option in OPTIONS:
            raw = env.get(option.env)
            if raw is None or (raw.strip() == "" and not option.empty_ok):
                continue
            settings = _set(settings, option.path, option.read(raw.strip() if option.strip else raw))
            given.add(option.env)
        return replace(settings, given=frozenset(given))

    @property
    def ivr_scripts(self) -> Path:
        """Where IVR scripts are loaded from."""
        return self.ivr.scripts_dir or self.state_dir / "ivr"

    @property
    def esl_spool(self) -> Path:
        """Where CDRs wait while PostgreSQL is away."""
        return self.esl.spool_dir or self.state_dir / "esl-spool"


def _set(tree: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if not rest:
        return replace(tree, **{head: value})
    return replace(tree, **{head: _set(getattr(tree, head), rest, value)})


@dataclass(frozen=True)
class Option:
    """One environment variable: where it lands in the tree, and how its text is read."""

    env: str
    path: str
    read: Callable[[str], Any]
    help: str
    strip: bool = True
    empty_ok: bool = False


def _number(kind: type, env: str, low: float, high: float) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise Invalid(f"{env}: must be a number, not {text!r}", {"field": env}) from None
        if not low <= value <= high:
            raise Invalid(f"{env}: must be from {low:g} to {high:g}, not {text!r}", {"field": env})
        return value

    return read


def _port(env: str) -> Callable[[str], int]:
    def read(text: str) -> int:
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise Invalid(f"{env}: the port must be a number from 1 to 65535, not {text!r}", {"field": env})
        return int(text)

    return read


def _secret_key(text: str) -> str:
    try:
        size = len(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        size = -1
    if size != 32:
        raise Invalid(
            "FSFARM_SECRET_KEY: must be 32 bytes in base64 (`openssl rand -base64 32`)", {"field": "FSFARM_SECRET_KEY"}
        )
    return text


def _flag(text: str) -> bool:
    return text.lower() not in ("0", "false", "no", "off")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


OPTIONS: tuple[Option, ...] = (
    Option("FSFARM_DATABASE_URL", "database_url", str, "PostgreSQL DSN; unset: the embedded server"),
    Option("FSFARM_EMBEDDED_PG_PORT", "embedded_pg_port", _port("FSFARM_EMBEDDED_PG_PORT"), "embedded server port"),
    Option("FSFARM_XMLCURL_USER", "xmlcurl_user", str, "xml_curl basic-auth user of the shared password"),
    Option(
        "FSFARM_XMLCURL_PASSWORD",
        "xmlcurl_password",
        str,
        "shared xml_curl password any node may use; unset: only each node's own",
        strip=False,
    ),
    Option(
        "FSFARM_SECRET_KEY",
        "secret_key",
        _secret_key,
        "base64 key sealing stored secrets; unset: <state dir>/secret-key (the same at every site)",
    ),
    Option(
        "FSFARM_SWITCH_DATABASE_URL",
        "switch_database_url",
        str,
        "DSN of the nodes' shared FreeSWITCH state; unset: <farm db>_switch; local: each node's own disk",
    ),
    Option("FSFARM_FENCE_COMMAND", "failover.fence_command", str, "stops a dead or hung node before its address moves"),
    Option("FSFARM_ADDRESS_COMMAND", "failover.address_command", str, "moves a dead node's address to its heir"),
    Option("FSFARM_CONTROLLER_ADDRESS", "controller_address", str, "address nodes reach the controller at"),
    Option("FSFARM_HTTP_PORT", "http_port", _port("FSFARM_HTTP_PORT"), "API and xml_curl port"),
    Option("FSFARM_LOG_LEVEL", "log_level", str.upper, "DEBUG, INFO, WARNING or ERROR"),
    Option("FSFARM_KAMAILIO_CTL", "kamailio_ctl", str, "Kamailio JSON-RPC URL; unset: no Kamailio sync"),
    Option("FREESWITCH_BIN", "freeswitch_bin", str, "the freeswitch binary bootstrap points at"),
    Option(
        "FSFARM_XMLCURL_CACHE_TTL",
        "xmlcurl.cache_ttl",
        _number(float, "FSFARM_XMLCURL_CACHE_TTL", 0, 86400),
        "seconds an answer lives",
    ),
    Option(
        "FSFARM_XMLCURL_CACHE_ENTRIES",
        "xmlcurl.cache_entries",
        _number(int, "FSFARM_XMLCURL_CACHE_ENTRIES", 0, 10**8),
        "answers cached per process",
    ),
    Option(
        "FSFARM_XMLCURL_TIMEOUT",
        "xmlcurl.fetch_timeout",
        _number(int, "FSFARM_XMLCURL_TIMEOUT", 1, 600),
        "nodes' fetch timeout, s",
    ),
    Option("FSFARM_XMLCURL_SNAPSHOT", "xmlcurl.snapshot", _flag, "answer from the in-process snapshot"),
    Option("FSFARM_XMLCURL_GC_FREEZE", "xmlcurl.gc_freeze", _flag, "gc.freeze() after the snapshot loads"),
    Option("FSFARM_SIP_PROFILE", "sip.profile", str, "the nodes' SIP profile name"),
    Option("FSFARM_SIP_CODECS", "sip.codecs", str, "codec-prefs of the SIP profile"),
    Option("FSFARM_SIP_PROXIES", "sip.proxies", _csv, "comma-separated proxy IPs/CIDRs", empty_ok=True),
    Option("FSFARM_IVR_HOST", "ivr.host", str, "IVR server listen host"),
    Option("FSFARM_IVR_PORT", "ivr.port", _port("FSFARM_IVR_PORT"), "IVR server port"),
    Option("FSFARM_IVR_SCRIPTS", "ivr.scripts_dir", Path, "IVR scripts directory"),
    Option(
        "FSFARM_IVR_CALL_TIMEOUT",
        "ivr.call_timeout",
        _number(float, "FSFARM_IVR_CALL_TIMEOUT", 1, 86400),
        "longest IVR call, s",
    ),
    Option("FSFARM_IVR_ERROR_PROMPT", "ivr.error_prompt", str, "played when a script fails"),
    Option("FSFARM_ESL_SPOOL_DIR", "esl.spool_dir", Path, "CDR spool while the database is away"),
    Option(
        "FSFARM_ESL_HEARTBEAT_INTERVAL",
        "esl.heartbeat_interval",
        _number(float, "FSFARM_ESL_HEARTBEAT_INTERVAL", 0.1, 3600),
        "assumed HEARTBEAT gap, s",
    ),
    Option(
        "FSFARM_ESL_RECONCILE_INTERVAL",
        "esl.reconcile_interval",
        _number(float, "FSFARM_ESL_RECONCILE_INTERVAL", 0.1, 86400),
        "s between live-call reconciliations",
    ),
    Option(
        "FSFARM_ESL_BACKOFF_MAX",
        "esl.backoff_max",
        _number(float, "FSFARM_ESL_BACKOFF_MAX", 0.1, 3600),
        "ESL reconnect backoff cap, s",
    ),
    Option("FSFARM_STORAGE", "storage.url", str, "storage directory or URL"),
    Option("FSFARM_SHARED_MOUNT", "storage.shared_mount", lambda t: t.rstrip("/"), "nodes' shared mount"),
    Option("FSFARM_VOICEMAIL_DIR", "storage.voicemail_dir", str, "nodes' voicemail storage-dir"),
    Option("FSFARM_CELERY_BROKER", "tasks.broker", str, "Celery broker URL; unset: tasks run inline"),
    Option(
        "FSFARM_TASK_VISIBILITY",
        "tasks.visibility_timeout",
        _number(int, "FSFARM_TASK_VISIBILITY", 1, 86400),
        "s before an unacknowledged task is redelivered",
    ),
)

# Read by state_dir() before the tree is built (it decides where everything else lives).
STATE_VARIABLES = ("FSFARM_STATE_DIR", "XDG_STATE_HOME")


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, value in effect, help) for every option: what ``fsfarm config`` prints."""
    rows = [("FSFARM_STATE_DIR", str(settings.state_dir), "where fsfarm keeps its state")]
    for option in OPTIONS:
        value: Any = settings
        for part in option.path.split("."):
            value = getattr(value, part)
        if ("PASSWORD" in option.env or "SECRET" in option.env) and value:
            value = "(set)"
        elif isinstance(value, tuple):
            value = ",".join(value)
        rows.append((option.env, "" if value is None else str(value), option.help))
    return rows


def _every_leaf(tree: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for f in fields(tree):
        value = getattr(tree, f.name)
        if hasattr(value, "__dataclass_fields__"):
            out += _every_leaf(value, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def unread_leaves() -> list[str]:
    """Leaves of the tree no option fills (state_dir aside): a test keeps this empty."""
    filled = {o.path for o in OPTIONS} | {"state_dir", "given"}
    return [leaf for leaf in _every_leaf(Settings()) if leaf not in filled]
