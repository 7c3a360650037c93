"""The README's tour, run as written: ``fsfarm up`` to a registered phone, a call, a spare and a failover.

The commands are README.md's ``sh`` blocks between "## A short tour" and "### More of the CLI", so a README
edit that breaks the tour breaks this test. They run one by one in bash, as an operator types them, with
this mapping so the test can run beside others on one machine:

- ``HOME`` is the module's workdir, so ``~/fsfarm/...`` lands there;
- ``fsfarm up`` listens on the harness's free port (``FSFARM_HTTP_PORT``) and uses the module's database
  (``FSFARM_DATABASE_URL``), exactly as the other commands do;
- the nodes' SIP addresses ``127.0.0.1:5060`` and ``127.0.0.2:5060`` become free loopback address:port
  pairs, their ESL addresses ``127.0.0.1:8021`` and ``127.0.0.1:8022`` free ports;
- ``freeswitch`` is the test build (``FREESWITCH_BIN`` or /opt/fsfarm-freeswitch), first on ``PATH``.

The README's softphones are baresip phones on their own loopback addresses with the users and passwords
of the README's ``fsfarm user add`` lines. Where a README comment quotes what a command prints
(``# "All is well: ..."``), the output must contain it. The transcript is written to
``<workdir>/tour-transcript.txt``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from farm_harness import (
    FSFARM,
    Controller,
    Phone,
    free_udp_pair,
    freeswitch_binary,
    hears,
    node_host,
    stop_together,
    wait_for,
)
from testsupport import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
TONES = {"1001": 440, "1002": 1200}


def tour_commands(text: str) -> list[str]:
    """Every command of the README's tour, in order (continuation lines joined)."""
    start = text.index("\n## A short tour")
    section = text[start : text.index("\n### More of the CLI", start)]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(" ".join(line.split()) if "#" not in line else line.strip())
    return commands


def quoted(command: str) -> str | None:
    """What the README's comment says the command prints (``# "..."``), without a trailing ``...``."""
    found = re.search(r'#.*?"([^"]+)"', command)
    return found.group(1).removesuffix("...").strip() if found else None


@dataclass
class Tour:
    controller: Controller
    workdir: Path
    env: dict[str, str]
    mapping: dict[str, str]
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # extension -> (domain, password)
    phones: dict[str, Phone] = field(default_factory=dict)
    registrars: dict[str, str] = field(default_factory=dict)  # extension -> where its phone registered
    transcript: list[str] = field(default_factory=list)
    outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = field(default_factory=list)
    calls: int = 0
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # extension -> events before this call

    def node_sip(self, name: str) -> str:
        return str(self.controller.api("GET", f"/nodes/{name}")["sip_address"])

    def run(self, readme_command: str) -> subprocess.CompletedProcess[str]:
        command = readme_command
        for readme, here in self.mapping.items():
            command = command.replace(readme, here)
        self.before(command)
        started = time.monotonic()
        tokens = shlex.split(command, comments=True)
        if tokens[-1] == "&":
            done = self.background(tokens[:-1])
        else:
            out, err = self.workdir / "out.txt", self.workdir / "err.txt"
            with out.open("w") as o, err.open("w") as e:  # files, not pipes: `freeswitch -nc` leaves a daemon
                code = subprocess.run(
                    ["bash", "-c", command], env=self.env, stdout=o, stderr=e, stdin=subprocess.DEVNULL, timeout=120
                ).returncode
            done = subprocess.CompletedProcess(command, code, out.read_text(), err.read_text())
        took = time.monotonic() - started
        self.transcript.append(f"$ {readme_command}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, f"{readme_command!r} exited {done.returncode}: {done.stderr}"
        expected = quoted(readme_command)
        if expected:
            assert expected in done.stdout, f"{readme_command!r} printed:\n{done.stdout}"
        self.outputs.append((readme_command, done))
        self.after(command, tokens, done)
        # For the transcript: how long the command took, and how long until what a person waits for happened.
        self.transcript[-1] += f"[{took:.1f} s; done after {time.monotonic() - started:.1f} s]\n"
        return done

    def background(self, tokens: list[str]) -> subprocess.CompletedProcess[str]:
        """``fsfarm up &``: the controller, kept as the harness's process so the module stops it."""
        ctl = self.controller
        log = ctl.log_path.open("ab")
        ctl.process = subprocess.Popen(
            tokens, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        wait_for(ctl._healthy, 60, f"fsfarm up to answer /healthz (log: {ctl.log_path})")
        ctl.http.headers["Authorization"] = f"Bearer {(ctl.state_dir / 'admin-token').read_text().strip()}"
        return subprocess.CompletedProcess(tokens, 0, ctl.log(), "")

    # ------------------------------------------------------------------ what a person does between commands

    def before(self, command: str) -> None:
        if command.startswith("fsfarm call originate"):
            self.register_phones(command.split()[3])
            self.seen = {
                ext: (len(p.saw("CALL_ESTABLISHED")), len(p.saw("CALL_CLOSED"))) for ext, p in self.phones.items()
            }

    def after(self, command: str, tokens: list[str], done: subprocess.CompletedProcess[str]) -> None:
        ctl = self.controller
        if tokens[:3] == ["fsfarm", "user", "add"]:
            at = tokens.index("-t")  # the README's form: fsfarm user add -t DOMAIN EXT --password PW ...
            self.users[tokens[at + 2]] = (tokens[at + 1], tokens[tokens.index("--password") + 1])
        elif tokens[0] == "freeswitch":
            # A person waits until it is up; so does the tour (the controller sees it over ESL).
            wait_for(
                lambda: all(n["health"] == "up" for n in ctl.api("GET", "/nodes")),
                60,
                f"every node up after {command!r} (FreeSWITCH log under {tokens[tokens.index('-log') + 1]})",
            )
        elif tokens[0] == "kill":
            wait_for(
                lambda: (
                    {t["tenant"]: t["node"] for t in ctl.api("GET", "/placement")["tenants"]}.get("acme.example")
                    not in (None, "fs1")
                ),
                60,
                "acme.example failed over off fs1",
            )
        elif tokens[:3] == ["fsfarm", "call", "originate"]:
            self.check_call()

    def register_phones(self, domain: str) -> None:
        """The tenant's users' phones, registered at the node the tenant is on now."""
        placed = {t["tenant"]: t["node"] for t in self.controller.api("GET", "/placement")["tenants"]}
        registrar = self.node_sip(placed[domain])
        for ext, (user_domain, password) in self.users.items():
            if self.registrars.get(ext) == registrar:
                continue
            if ext in self.phones:
                self.phones.pop(ext).stop()
            phone = Phone(self.workdir, ext, user_domain, password, registrar, TONES[ext])
            phone.wait_registered(30)
            self.phones[ext], self.registrars[ext] = phone, registrar

    def check_call(self) -> None:
        """The originated call: 1001 answers, is connected to 1002, each hears the other's tone."""
        a, b = self.phones["1001"], self.phones["1002"]
        a.wait_event("CALL_ESTABLISHED", 30, after=self.seen["1001"][0])
        b.wait_event("CALL_ESTABLISHED", 30, after=self.seen["1002"][0])
        time.sleep(3)  # let audio flow both ways
        a.hangup()
        a.wait_event("CALL_CLOSED", 20, after=self.seen["1001"][1])
        b.wait_event("CALL_CLOSED", 20, after=self.seen["1002"][1])
        assert hears(b, TONES["1001"]) and hears(a, TONES["1002"])
        self.calls += 1


def _stop_daemons(workdir: Path) -> None:
    """The FreeSWITCH daemons the tour's ``freeswitch -nc`` started, by the pid files in their run dirs.

    All are sent SIGTERM first, then waited for together: each takes seconds to shut down.
    """
    pids = []
    for pidfile in workdir.glob("fsfarm/*/run/freeswitch.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
            if str(workdir) not in Path(f"/proc/{pid}/cmdline").read_text():
                continue  # not ours (a recycled pid)
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    for pid in pids:
        try:
            wait_for(lambda p=pid: not Path(f"/proc/{p}").exists(), 20, f"FreeSWITCH {pid} to stop")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def tour(farm_dsn: str, workdir: Path) -> Iterator[Tour]:
    ctl = Controller(farm_dsn, workdir)
    binary = freeswitch_binary()
    assert binary
    fs1, spare = node_host(), node_host()
    mapping = {
        "127.0.0.1:5060": f"{fs1}:{free_udp_pair(fs1)}",
        "127.0.0.2:5060": f"{spare}:{free_udp_pair(spare)}",
        "127.0.0.1:8021": f"127.0.0.1:{free_port()}",
        "127.0.0.1:8022": f"127.0.0.1:{free_port()}",
    }
    path = os.pathsep.join([str(Path(binary).parent), str(Path(FSFARM).parent), ctl.env["PATH"]])
    env = {**ctl.env, "HOME": str(workdir), "PATH": path}
    env.pop("FSFARM_CONTROLLER_ADDRESS")  # the tour's one machine needs none: the default is loopback
    text = README.read_text()
    assert all(readme in text for readme in mapping), "the README's tour no longer uses the mapped addresses"
    t = Tour(ctl, workdir, env, mapping)
    try:
        # The whole tour runs once for the module, in the README's order; the tests then read what it did.
        for command in tour_commands(text):
            t.run(command)
        yield t
    finally:
        (workdir / "tour-transcript.txt").write_text("\n".join(t.transcript))
        # The controller before the daemons, or it fails the tenant over again as they stop.
        stop_together(*t.phones.values(), ctl)
        _stop_daemons(workdir)


def output(tour: Tour, prefix: str, index: int = 0) -> subprocess.CompletedProcess[str]:
    """What the tour's ``index``-th command starting with ``prefix`` printed."""
    return [done for command, done in tour.outputs if command.startswith(prefix)][index]


def test_the_readme_tour_runs_as_written_to_a_call_a_spare_and_a_failover(tour: Tour) -> None:
    commands = tour_commands(README.read_text())
    assert commands[0].startswith("fsfarm up &") and any(c.startswith("kill -9") for c in commands), commands
    assert len(tour.outputs) == len(commands)  # every command ran and exited 0 (Tour.run asserts each)
    assert tour.calls == 2  # one call on fs1, one on the spare after the failover, each heard both ways
    up = output(tour, "fsfarm up").stdout
    assert "listening on loopback only: for nodes on other machines start with `--host 0.0.0.0`" in up, up
    added = output(tour, "fsfarm tenant add acme.example")
    assert "fs1" in added.stdout
    assert added.stderr.startswith("warning: tenant acme.example is placed on node fs1, which has never been seen")
    failovers = tour.controller.cli_json("failover", "list")
    assert failovers and failovers[0]["tenants_moved"] >= 1, failovers
    placement = output(tour, "fsfarm placement show").stdout
    assert re.search(r"acme\.example\s+spare1", placement), placement
    final = output(tour, "fsfarm status", -1).stdout
    assert "Node fs1 is down" in final and "No free spare node" in final, final


def test_bootstrap_prints_the_freeswitch_line_the_readme_runs_next(tour: Tour) -> None:
    commands = tour_commands(README.read_text())
    for node in ("fs1", "spare1"):
        boot = output(tour, f"fsfarm freeswitch bootstrap --node {node} ")
        started = next(c for c in commands if c.startswith("freeswitch ") and f"/{node} " in c)
        # The README copies what bootstrap prints (with ~ expanded), it does not invent it.
        assert boot.stdout.splitlines()[-1].strip() == started.replace("~", str(tour.workdir)), boot.stdout
        assert f"xml_curl: http://127.0.0.1:{tour.controller.port}/xmlcurl" in boot.stdout


def test_the_tour_leaves_a_cdr_per_leg_of_both_calls(tour: Tour) -> None:
    def legs() -> list[dict[str, Any]] | None:
        rows = tour.controller.api("GET", "/tenants/acme.example/cdrs")
        return rows if len({r["channel_uuid"] for r in rows}) >= 4 else None

    cdrs = wait_for(legs, 30, "a CDR for each leg of both calls")
    assert all(r["billsec"] >= 2 for r in cdrs), cdrs
