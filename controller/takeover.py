"""May a spare take a dead node's address? Fence the node, make sure nothing answers there, move the address.

Two nodes must never answer for one address: a hung node (it stopped answering heartbeats, its
process still holds its sockets) wakes up and answers again unless it is stopped for good first.
So the node is fenced with the operator's ``FSFARM_FENCE_COMMAND`` (kill the process over ssh,
stop the VM through the cloud's API) when there is one; without one, only a node the ESL watcher
found gone (its socket closed, reconnects refused) has its address taken, never a merely hung one.
Either way the address must then be silent to a SIP OPTIONS before it moves. ``FSFARM_ADDRESS_COMMAND``
then moves it (keepalived, a cloud API); on loopback it is reachable everywhere already.
"""

from __future__ import annotations

import logging
import shlex
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from controller.config import FailoverSettings
from controller.domain import SIP_PORT, HostPort, Node

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 15.0  # seconds a fence or address command may take


@dataclass(frozen=True)
class Verdict:
    """Whether the address may be taken, and the sentence saying why."""

    allowed: bool
    sentence: str


def options_request(target: HostPort, local: tuple[str, int]) -> bytes:
    """Pure: a minimal SIP OPTIONS to ``target`` from ``local``."""
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    host, port = local
    return (
        f"OPTIONS sip:{target.uri_host}:{target.port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:fence@fsfarm.invalid>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{target.uri_host}:{target.port}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@fsfarm\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answers_sip(address: str, timeout: float = 0.3, attempts: int = 2) -> bool:
    """Does anything answer a SIP OPTIONS at ``address`` over UDP? A refused port or silence: no."""
    target = HostPort.parse(address, SIP_PORT)
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    for _ in range(attempts):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect((target.host, target.port))
                sock.send(options_request(target, sock.getsockname()[:2]))
                if sock.recv(4096).startswith(b"SIP/2.0"):
                    return True
            except (ConnectionRefusedError, TimeoutError):
                continue
            except OSError:
                continue
    return False


def _run(template: str, values: dict[str, str]) -> tuple[bool, str]:
    command = template.format(**{k: shlex.quote(v) for k, v in values.items()})
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, f"did not finish in {COMMAND_TIMEOUT:g} s"
    if done.returncode != 0:
        return False, f"exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}"
    return True, "done"


@dataclass(frozen=True)
class Takeover:
    """The operator's fence and address commands; decides whether a dead node's address moves to its heir."""

    settings: FailoverSettings = field(default_factory=FailoverSettings)
    silence_wait: float = 3.0  # seconds the address may take to fall silent after the fence

    def decide(self, dead: Node, heir: Node, crashed: bool) -> Verdict:
        """Fence ``dead`` if a command is set, then check its address is silent; ``crashed``: the ESL watcher
        found it gone (not merely hung)."""
        sip = HostPort.parse(dead.sip_address, SIP_PORT)
        values = {"name": dead.name, "switchname": dead.switchname, "sip_host": sip.host}
        values["esl_host"] = HostPort.parse(dead.esl_address, 8021).host
        if self.settings.fence_command:
            ok, how = _run(self.settings.fence_command, values)
            if not ok:
                return Verdict(False, f"the fence command failed ({how}); its address stays with it")
            fenced = "fenced, "
        elif not crashed:
            return Verdict(
                False, "it is hung, not gone, and no FSFARM_FENCE_COMMAND can stop it: its address stays with it"
            )
        else:
            fenced = ""
        deadline = time.monotonic() + self.silence_wait
        while answers_sip(dead.sip_address):
            if time.monotonic() > deadline:
                return Verdict(False, f"something still answers SIP at {dead.sip_address}; its address stays")
            time.sleep(0.1)
        if self.settings.address_command:
            moved = {**values, "address": sip.host, "heir": heir.name, "dead": dead.name}
            ok, how = _run(self.settings.address_command, moved)
            if not ok:
                return Verdict(False, f"the address command failed ({how}); its address stays with it")
        return Verdict(True, f"{fenced}silent at {dead.sip_address}: {heir.name} takes that address")
