"""Settings from the environment, with defaults that run a one-machine farm out of the box."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The prompts the controller generates, relative to the shared storage root; nodes read them under their
# shared mount (FSFARM_SHARED_MOUNT) in FreeSWITCH's sound layout: <dir>/<rate>/<name>.wav.
FARM_SOUNDS = "farm/sounds/en/us/fsfarm"


def state_dir() -> Path:
    """Where fsfarm keeps its own state: FSFARM_STATE_DIR, else /var/lib/fsfarm as root, else XDG."""
    if os.environ.get("FSFARM_STATE_DIR"):
        return Path(os.environ["FSFARM_STATE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/fsfarm")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fsfarm"


@dataclass(frozen=True)
class Settings:
    """What the controller needs to start; read once by ``Settings.from_env()``."""

    database_url: str | None
    state_dir: Path
    embedded_pg_port: int
    xmlcurl_user: str
    xmlcurl_password: str
    controller_address: str  # host FreeSWITCH nodes reach the controller at (xml_curl, IVR sockets)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("FSFARM_DATABASE_URL") or None,
            state_dir=state_dir(),
            embedded_pg_port=int(os.environ.get("FSFARM_EMBEDDED_PG_PORT", "54329")),
            xmlcurl_user=os.environ.get("FSFARM_XMLCURL_USER", "freeswitch"),
            xmlcurl_password=os.environ.get("FSFARM_XMLCURL_PASSWORD", ""),
            controller_address=os.environ.get("FSFARM_CONTROLLER_ADDRESS", "127.0.0.1"),
        )
