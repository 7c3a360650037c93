"""Tell a running Kamailio to reload the farm's routes, and check that it did."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from controller.errors import Unavailable


@dataclass(frozen=True)
class KamailioControl:
    """Drives Kamailio through ``kamcmd`` on its ctl socket."""

    ctl_socket: str
    timeout: float = 5.0

    def _kamcmd(self, *args: str) -> str:
        binary = shutil.which("kamcmd")
        if binary is None:
            raise Unavailable("kamcmd is not installed (Debian package kamailio)")
        try:
            done = subprocess.run(
                [binary, "-s", f"unix:{self.ctl_socket}", *args], capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise Unavailable("Kamailio did not answer in time", {"command": args}) from exc
        if done.returncode != 0:
            raise Unavailable(
                "Kamailio refused or cannot be reached", {"command": list(args), "stderr": done.stderr.strip()[:500]}
            )
        return done.stdout

    def reload(self) -> dict[str, str]:
        """Reload dispatcher sets and the domain and number maps; return Kamailio's view after."""
        self._kamcmd("dispatcher.reload")
        self._kamcmd("htable.reload", "domains")
        self._kamcmd("htable.reload", "numbers")
        return self.domains()

    def domains(self) -> dict[str, str]:
        """The domain -> dispatcher set map Kamailio holds now (to check a reload took)."""
        return _parse_htable_dump(self._kamcmd("htable.dump", "domains"))

    def destinations(self) -> dict[str, str]:
        """Every dispatcher destination Kamailio holds, with its flags."""
        return parse_dispatcher_states(self._kamcmd("dispatcher.list"))

    def unreachable(self) -> set[str]:
        """Node SIP addresses (host:port) whose OPTIONS pings are failing: Kamailio's witness."""
        return {uri.removeprefix("sip:") for uri, flags in self.destinations().items() if flags.startswith("I")}


def _pairs(text: str, key_label: str, value_label: str) -> dict[str, str]:
    """kamcmd prints records as indented ``label: value`` lines: pair each key line with the next value line."""
    out: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(key_label):
            key = line.split(":", 1)[1].strip()
        elif line.startswith(value_label) and key is not None:
            out[key] = line.split(":", 1)[1].strip()
            key = None
    return out


def _parse_htable_dump(text: str) -> dict[str, str]:
    """``kamcmd htable.dump`` -> {name: value}."""
    return _pairs(text, "name:", "value:")


def parse_dispatcher_states(text: str) -> dict[str, str]:
    """``kamcmd dispatcher.list`` -> {destination URI: flags} (flags 'AP' active, 'IP' inactive)."""
    return _pairs(text, "URI:", "FLAGS:")
