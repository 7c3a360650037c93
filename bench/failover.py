"""Failover: from a node's death to the first new call answered by the spare, and rooms recovered.

Runs the real chain on loopback, N times for each kind of death: an embedded PostgreSQL, a real
Kamailio 5.6 in front, the ESL watchers connected to stand-in nodes that send FreeSWITCH's
recorded HEARTBEAT once a second, SIP peers answering for each node, and the failover loop.

* crash: the node's ESL socket closes and reconnects are refused (a dead process or host);
* hang: the connection stays open but heartbeats stop (a hang or a partition).

Printed beside the published detection times of Kazoo (~30 s, Kamailio pings) and jambonz
(90 s). ``--quick`` does 3 runs of each instead of 10.

``--freeswitch`` measures the same deaths with real parts only: ``fsfarm up`` (with
``FSFARM_KAMAILIO_CTL`` and the test tier's ``FSFARM_FENCE_COMMAND``, a SIGKILL of the pid in the
node's run dir), a real Kamailio, two real FreeSWITCH nodes from bootstrap files (one active, one
spare) keeping their state in the shared PostgreSQL, and four baresip phones that register through
Kamailio once, for an hour, before the first death. Each run kills (SIGKILL, crash) or stops
(SIGSTOP, hang) the node hosting acme.test while 1001 talks to 1002 on it, and measures:

* the first phone-to-phone call answered on the spare: 1003 dials 1004 right after the death and
  redials as soon as an attempt fails or makes no progress in 1 s, until 1004 (which never
  registers again: counted and reported) answers, as a user retrying sees it;
* the media gap of the call in progress: the largest gap between RTP arrivals at either phone
  (``RtpTap``, ``rtp_gaps.largest_gap``) from 1 s before the death to 5 s after it; the failover
  row's calls_recovered / calls_tracked; whether both phones hear each other at the end and a BYE
  from 1002 ends the call;
* for a hang, also the time to the decision (the failover row created) and whether it was fenced.

The node then rejoins as the spare and the next run takes the other one. 5 runs of each (3 with
``--quick``). References: Kazoo's ~30 s detection (jambonz's 90 s beside it), after which both have
lost the calls; for the media gap the reference is that lost call, printed as Kazoo's detection
time. Targets: a call answered within 2 s of a crash (the issue's), within 5 s + 2 s of a hang
(deciding a hang may take 5 s); media back within 2000 ms (ours: no later than a new call); no call
lost. Needs the FreeSWITCH binary, baresip and kamailio, root for ``RtpTap``, and the tests'
loopback harness (``tests/freeswitch/farm_harness.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' loopback harness
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "freeswitch"))  # real FreeSWITCH farm

from controller import provisioning, secrets
from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from controller.failover import FailoverLoop
from controller.stores import failovers, nodes
from esl_workers.inbound import WorkerConfig, start_workers
from esl_workers.recovery import after_move_steps
from sql.migrate import migrate
from tests.failover.chain import EslNode, green_wait, in_thread
from tests.failover.conftest import start_kamailio
from tests.failover.sip_peers import SipNode, invite
from tests.testsupport import free_port

KAZOO_DETECTION_S = 30.0
JAMBONZ_DETECTION_S = 90.0


def one_run(server: EmbeddedPostgres, how: str, workdir: Path) -> tuple[float, int, int]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = server.conninfo.replace("dbname=postgres", f"dbname={name}")
    migrate(dsn)
    db = Database(dsn, max_size=6)
    secrets.use(os.urandom(secrets.KEY_BYTES))  # the bench's own database: any key this process holds
    sip = {n: SipNode(n) for n in ("fs1", "fs2", "spare1")}
    esl = {n: EslNode(n) for n in sip}
    kam = None
    workers = None
    looper = None
    try:
        for n in sip:
            provisioning.add_node(
                db,
                {
                    "name": n,
                    "sip_address": sip[n].address,
                    "esl_address": esl[n].address,
                    "esl_password": "ClueCon",
                    "spare": n == "spare1",
                },
            )
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        provisioning.add_child(db, "conferences", "acme.example", {"number": "3000"})
        with db.transaction() as conn:
            fs1 = nodes.get(conn, "fs1")
            tenant_id = conn.execute("SELECT id FROM tenants").fetchone()["id"]  # type: ignore[index]
            assert fs1 is not None
            for i, user in enumerate(("1001", "1002", "1003"), start=1):
                conn.execute(
                    """INSERT INTO esl_conference_members (id, node_id, conference_name, member_id,
                                    tenant_id, caller_number) VALUES (%s, %s, '3000-acme.example', %s, %s, %s)""",
                    [uuid.uuid4(), fs1.id, i, tenant_id, user],
                )
                conn.execute(
                    """INSERT INTO esl_registrations (id, node_id, tenant_id, realm, username, call_id,
                                    contact, expires_at) VALUES (%s, %s, %s, 'acme.example', %s, %s, %s,
                                    now() + interval '1 hour')""",
                    [uuid.uuid4(), fs1.id, tenant_id, user, uuid.uuid4().hex, f"<sip:{user}@127.0.0.1:9>"],
                )
        workers = start_workers(
            db, WorkerConfig(spool_dir=workdir / f"spool-{name}", heartbeat_interval=1.0, backoff_max=1.0)
        )
        kam = start_kamailio(dsn)
        kam.control.reload()
        loop = FailoverLoop(db, kamailio=kam.control, after_move=after_move_steps(), interval=0.2)

        def run_loop() -> None:
            while True:
                in_thread(loop.run_cycle)
                gevent.sleep(loop.interval)

        looper = gevent.spawn(run_loop)
        with db.transaction() as conn:
            green_wait(lambda: all(n.health == "up" for n in nodes.list_all(conn)), 15)
        green_wait(lambda: in_thread(invite, kam.address, "1001", "acme.example", 0.5)[1] == "fake-fs1", 10)

        killed = time.monotonic()
        sip["fs1"].stop()
        esl["fs1"].crash() if how == "crash" else esl["fs1"].hang()

        def spare_answers() -> bool:
            code, server_name, _ = in_thread(invite, kam.address, "1001", "acme.example", 0.3)
            return code == 200 and server_name == "fake-spare1"

        if not green_wait(spare_answers, 20, step=0.02):
            with db.transaction() as conn:
                states = [(n.name, n.health) for n in nodes.list_all(conn)]
            print(f"    the spare never answered; nodes: {states}", flush=True)
            return float("inf"), 0, 3
        elapsed = time.monotonic() - killed

        def finished() -> failovers.Failover | None:
            with db.transaction() as conn:
                rows = failovers.for_node(conn, fs1.id)
            return rows[0] if rows and rows[0].state == "done" else None

        row = green_wait(finished, 20)
        return elapsed, (row.legs_recovered if row else 0), (row.legs_total if row else 3)
    finally:
        if looper is not None:
            looper.kill()
        if workers is not None:
            workers.stop()
        if kam is not None:
            kam.process.terminate()
            kam.process.wait(timeout=10)
        for peer in sip.values():
            if peer.running:
                peer.stop()
        for node in esl.values():
            node.crash()
        db.close()


REGINT_S = 3600  # --freeswitch phones register once, before the first death: nothing may come from a new one
FS_USERS = {"1001": 440, "1002": 1200, "1003": 700, "1004": 900}  # user -> the tone its phone plays
GIVE_UP_S = 1.0  # a retrying user abandons an attempt that made no progress in this long
GAP_BEFORE_S, GAP_AFTER_S = 1.0, 5.0  # the media-gap window around the death
ANSWER_TARGET_S = 2.0  # the target for a call answered after a crash
HANG_DECISION_TARGET_S = 5.0  # the target for deciding a hang
GAP_TARGET_MS = 2000.0  # our choice: media back no later than a new call would be answered


@dataclass
class RealFarm:
    """fsfarm up, a Kamailio, two FreeSWITCH nodes (one the spare) and the phones, for every --freeswitch run."""

    ctl: Any
    kamailio: Any
    nodes: dict[str, Any]
    phones: dict[str, Any] = field(default_factory=dict)


@dataclass
class RealRun:
    """One death of the node hosting acme.test, in seconds from the SIGKILL/SIGSTOP unless said otherwise."""

    node: str
    heir: str
    decided: float  # the failover row created
    answered: float  # the callee answered the first phone-to-phone call, on the heir
    attempts: int  # calls the retrying caller placed until then
    callee_registered_again: int  # REGISTER_OKs the callee saw after the death (0: reached through its old one)
    gap_ms: float  # the larger of the two phones' largest RTP arrival gaps in [death - 1 s, death + 5 s]
    gap_open: bool  # that gap runs to the window's end: media was not back 5 s after the death
    calls_tracked: int
    calls_recovered: int
    audio_both_ways: bool  # each phone heard the other's tone at the end of the recovered call
    bye_ended: bool  # a BYE from the callee ended the recovered call at both ends, no channel left on the heir
    fenced: bool | None  # a hung node was killed by FSFARM_FENCE_COMMAND (None for a crash)


def nodes_now(ctl: Any) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in ctl.api("GET", "/nodes")}


def placed(ctl: Any) -> str | None:
    return {t["tenant"]: t["node"] for t in ctl.api("GET", "/placement")["tenants"]}.get("acme.test")


def first_answered(caller: Any, callee: Any, heir: Any, since: float, timeout: float = 60) -> tuple[float, int]:
    """``caller`` dials ``callee`` now and redials as soon as an attempt fails or makes no progress in GIVE_UP_S.

    Progress is a provisional response (CALL_RINGING/CALL_PROGRESS at the caller) or the INVITE reaching the callee
    (CALL_INCOMING); an attempt that made progress may take the rest of ``timeout``. Returns (seconds from ``since``
    until the callee's CALL_ESTABLISHED of the call the caller got, attempts placed), after checking that call is
    on ``heir``; it is hung up. Raises AssertionError after ``timeout`` s without an answer.
    """
    from farm_harness import wait_for

    def count(phone: Any, *kinds: str) -> int:
        return sum(len(phone.saw(kind)) for kind in kinds)

    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        closed, established = count(caller, "CALL_CLOSED"), count(caller, "CALL_ESTABLISHED")
        progress = count(caller, "CALL_RINGING", "CALL_PROGRESS") + count(callee, "CALL_INCOMING")
        callee_answers = count(callee, "CALL_ESTABLISHED")
        callee_answered: float | None = None
        caller.dial(callee.user)
        attempts += 1
        started = time.monotonic()
        while time.monotonic() < deadline:
            if callee_answered is None and count(callee, "CALL_ESTABLISHED") > callee_answers:
                callee_answered = time.monotonic() - since
            if count(caller, "CALL_ESTABLISHED") > established:
                if callee_answered is None:  # both ends saw it: the callee's event is a poll late at most
                    callee_answered = time.monotonic() - since
                wait_for(
                    lambda: any(ch.get("cid_num") == caller.user for ch in heir.esl.channels()),
                    5,
                    f"{caller.user}'s answered call on {heir.name}",
                )
                closed = count(caller, "CALL_CLOSED")
                caller.hangup()
                wait_for(lambda c=closed: count(caller, "CALL_CLOSED") > c, 10, f"{caller.user}'s call to end")
                return callee_answered, attempts
            if count(caller, "CALL_CLOSED") > closed:
                break  # failed (408, 480, 503...): the user redials at once
            moving = count(caller, "CALL_RINGING", "CALL_PROGRESS") + count(callee, "CALL_INCOMING") > progress
            if not moving and time.monotonic() - started > GIVE_UP_S:
                caller.hangup()  # baresip closes the attempt at once (CALL_CLOSED), whatever comes later
                wait_for(
                    lambda c=closed: count(caller, "CALL_CLOSED") > c, 5, f"{caller.user}'s abandoned attempt closed"
                )
                break
            time.sleep(0.01)
    raise AssertionError(f"{callee.user} answered none of {caller.user}'s {attempts} calls in {timeout:g} s")


def tapped_call(caller: Any, callee: Any, node: Any) -> tuple[set[str], list[Any]]:
    """``caller`` calls ``callee`` on ``node`` with an RtpTap on each phone; returns the legs' UUIDs and the taps."""
    from farm_harness import RtpTap, wait_for

    taps = [RtpTap(caller).start(), RtpTap(callee).start()]
    before_a, before_b = len(caller.saw("CALL_ESTABLISHED")), len(callee.saw("CALL_ESTABLISHED"))
    caller.dial(callee.user)
    caller.wait_event("CALL_ESTABLISHED", 30, after=before_a)
    callee.wait_event("CALL_ESTABLISHED", 30, after=before_b)
    wait_for(lambda: len(node.esl.channels()) >= 2, 10, f"the call's two legs on {node.name}")
    wait_for(lambda: all(len(t.arrivals()) >= 50 for t in taps), 10, "a second of RTP at both phones")
    return {ch["uuid"] for ch in node.esl.channels()}, taps


def media_gap_ms(taps: list[Any], died: float) -> tuple[float, bool]:
    """The larger of the phones' largest RTP arrival gaps in [died - GAP_BEFORE_S, died + GAP_AFTER_S], in ms, and
    whether it runs to the window's end (media not back within GAP_AFTER_S: the figure is a lower bound)."""
    from rtp_gaps import largest_gap

    until = died + GAP_AFTER_S
    time.sleep(max(0.0, until - time.monotonic()))
    gaps = [largest_gap(t.arrivals(), died - GAP_BEFORE_S, until) for t in taps]
    for tap in taps:
        tap.stop()
    gap, at = max(gaps, key=lambda g: g[0])
    return gap * 1000, at is not None and at + gap >= until - 1e-6


def hears_both_ways(a: Any, b: Any) -> bool:
    """Did each phone's recording of its latest call end with the other's tone (the last 1.5 s)?"""
    from farm_harness import level_db

    def hears(phone: Any, tone: float) -> bool:
        pcm, rate = phone.heard(skip=0)
        return level_db(pcm[-int(rate * 1.5) :], rate, tone) > -40.0

    return hears(a, FS_USERS[b.user]) and hears(b, FS_USERS[a.user])


def bye_ends(by: Any, other: Any, heir: Any) -> bool:
    """A BYE from ``by`` closes the call at ``other`` too and leaves no channel on ``heir``."""
    from farm_harness import wait_for

    closed = len(other.saw("CALL_CLOSED"))
    by.hangup()
    try:
        wait_for(lambda: len(other.saw("CALL_CLOSED")) > closed, 15, f"{other.user}'s call closed by the BYE")
        wait_for(lambda: not heir.esl.channels(), 15, f"no channel left on {heir.name}")
    except AssertionError as e:
        print(f"    {e}", flush=True)
        return False
    return True


def failover_after(ctl: Any, before: set[str]) -> dict[str, Any]:
    """The failover recorded since ``before`` (ids), once it is done."""
    from farm_harness import wait_for

    def done() -> dict[str, Any] | None:
        rows = [f for f in ctl.cli_json("failover", "list") if f["id"] not in before]
        return rows[0] if rows and rows[0]["state"] in ("done", "failed") else None

    return dict(wait_for(done, 60, "the failover record"))


def back_as_spare(ctl: Any, node: Any) -> None:
    """Start a failed-over node again once its heir gave its address back: it rejoins as the spare."""
    from farm_harness import wait_for

    wait_for(lambda: nodes_now(ctl)[node.name]["heir_id"] is None, 30, f"{node.name}'s address given back")
    node.start()
    wait_for(
        lambda: nodes_now(ctl)[node.name]["health"] == "up" and nodes_now(ctl)[node.name]["spare"],
        60,
        f"{node.name} back as the spare",
    )


def one_freeswitch_run(farm: RealFarm, how: str) -> RealRun:
    """Crash (SIGKILL) or hang (SIGSTOP) the node hosting acme.test with 1001 talking to 1002 on it; 1003 dials
    1004 from the moment of the death until 1004 answers on the heir. The node then rejoins as the spare."""
    from farm_harness import wait_for

    ctl, phones = farm.ctl, farm.phones
    node = farm.nodes[wait_for(lambda: placed(ctl), 30, "acme.test placed")]
    heir = next(n for n in farm.nodes.values() if n is not node)
    a, b, caller, callee = (phones[u] for u in FS_USERS)
    legs, taps = tapped_call(a, b, node)
    before = {f["id"] for f in ctl.cli_json("failover", "list")}
    registered = len(callee.saw("REGISTER_OK"))
    closed = len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))
    time.sleep(GAP_BEFORE_S)  # steady media before the death, inside the gap window
    died, died_wall = time.monotonic(), time.time()
    if how == "crash":
        node.kill()
    else:
        os.kill(node.process.pid, signal.SIGSTOP)  # heartbeats stop, its sockets stay open
    try:
        answered, attempts = first_answered(caller, callee, heir, died)
        row = failover_after(ctl, before)
        decided = datetime.fromisoformat(row["created_at"]).timestamp() - died_wall
        wait_for(lambda: legs <= {ch["uuid"] for ch in heir.esl.channels()}, 10, f"the call's legs on {heir.name}")
        recovered_at = time.monotonic()
        gap, gap_open = media_gap_ms(taps, died)
        time.sleep(max(0.0, recovered_at + 2.0 - time.monotonic()))  # recorded audio after the takeover to check
        still_up = (len(a.saw("CALL_CLOSED")), len(b.saw("CALL_CLOSED"))) == closed
        bye = still_up and bye_ends(b, a, heir)  # the callee's BYE reaches the heir through the recovered dialog
        both_ways = still_up and hears_both_ways(a, b)
    finally:
        for tap in taps:
            tap.stop()
        fenced: bool | None = None
        if how == "hang" and node.process is not None:
            try:
                fenced = node.process.wait(10) == -signal.SIGKILL
            except subprocess.TimeoutExpired:  # not fenced: wake it and stop it so the next run has a spare
                fenced = False
                os.kill(node.process.pid, signal.SIGCONT)
                node.kill()
    if not still_up:
        a.hangup()
        b.hangup()
    back_as_spare(ctl, node)
    return RealRun(
        node=node.name,
        heir=heir.name,
        decided=decided,
        answered=answered,
        attempts=attempts,
        callee_registered_again=len(callee.saw("REGISTER_OK")) - registered,
        gap_ms=gap,
        gap_open=gap_open,
        calls_tracked=int(row["calls_tracked"]),
        calls_recovered=int(row["calls_recovered"]),
        audio_both_ways=both_ways,
        bye_ended=bye,
        fenced=fenced,
    )


@contextmanager
def real_farm(server: EmbeddedPostgres, workdir: Path) -> Iterator[RealFarm]:
    """The test tier's failover farm (tests/freeswitch/test_fs_failover.py): fence = kill the pid in the run dir."""
    from farm_harness import Controller, FreeSwitch, Kamailio, Phone, wait_for

    from controller.kamailio.control import KamailioControl

    name = f"bench_fs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = server.conninfo.replace("dbname=postgres", f"dbname={name}")
    home = workdir / "freeswitch"
    env = {
        "FSFARM_KAMAILIO_CTL": str(home / "kamailio" / "ctl"),
        "FSFARM_SIP_PROXIES": "127.0.0.1",
        "FSFARM_LOG_LEVEL": "INFO",
        # What an operator's STONITH does, as in the test tier: here the process is local.
        "FSFARM_FENCE_COMMAND": f"kill -KILL $(cat {home}/{{name}}/run/freeswitch.pid) 2>/dev/null; true",
    }
    ctl = Controller(dsn, home, env=env).start()
    farm = RealFarm(ctl, None, {})
    try:
        farm.kamailio = Kamailio(ctl, home / "kamailio")
        fs1, spare = FreeSwitch(ctl, "fs1", home / "fs1"), FreeSwitch(ctl, "spare1", home / "spare1")
        farm.nodes = {"fs1": fs1, "spare1": spare}
        ctl.cli(*fs1.node_add_args())
        ctl.cli(*spare.node_add_args("--spare"))
        ctl.cli("tenant", "add", "acme.test")
        for user in FS_USERS:
            ctl.cli("user", "add", "-t", "acme.test", user, "--password", f"pw-{user}-long")
        for node in farm.nodes.values():
            node.start(wait=False)
        for node in farm.nodes.values():
            node.wait_ready()
        wait_for(lambda: all(n["health"] == "up" for n in nodes_now(ctl).values()), 60, "both nodes up")
        control = KamailioControl(farm.kamailio.ctl)
        wait_for(lambda: "acme.test" in control.domains(), 60, "Kamailio routing acme.test")
        for user, tone in FS_USERS.items():
            phone = Phone(home, user, "acme.test", f"pw-{user}-long", farm.kamailio.address, tone, regint=REGINT_S)
            phone.wait_registered(30)
            farm.phones[user] = phone
        yield farm
    finally:
        for phone in farm.phones.values():  # killed: a clean quit waits for un-REGISTERs nobody needs
            phone.process.kill()
            phone.process.wait()
        ctl.stop()  # first, so stopping the nodes is not taken for a death
        for node in farm.nodes.values():
            node.stop()
        if farm.kamailio is not None:
            farm.kamailio.stop()


def freeswitch_runs(server: EmbeddedPostgres, runs: int, workdir: Path) -> dict[str, list[RealRun]]:
    """``runs`` crashes, then ``runs`` hangs, on one real farm; the farm's logs are printed if a run fails."""
    from farm_harness import FSFARM, freeswitch_binary

    missing = [
        what
        for what, ok in (
            ("FreeSWITCH", freeswitch_binary()),
            ("baresip", shutil.which("baresip")),
            ("kamailio", shutil.which("kamailio")),
            (f"fsfarm beside this python ({FSFARM})", Path(FSFARM).exists()),
        )
        if not ok
    ]
    if missing:
        raise SystemExit(f"--freeswitch needs {', '.join(missing)} (.ci/install --test; run .venv/bin/python)")
    results: dict[str, list[RealRun]] = {"crash": [], "hang": []}
    with real_farm(server, workdir) as farm:
        for how, done in results.items():
            for i in range(runs):
                try:
                    run = one_freeswitch_run(farm, how)
                except AssertionError as e:
                    print(f"  freeswitch {how} run {i + 1} failed: {e}", flush=True)
                    print_logs(farm)
                    return results
                done.append(run)
                print(
                    f"  freeswitch {how} run {i + 1}: {run.node} {'killed' if how == 'crash' else 'stopped'}, "
                    f"failover decided after {run.decided:.2f} s"
                    + ("" if run.fenced is None else f" ({'fenced' if run.fenced else 'NOT fenced'})")
                    + f"; 1004 answered on {run.heir} after {run.answered:.2f} s ({run.attempts} attempts, "
                    f"{run.callee_registered_again} new registrations); call in progress: media gap "
                    f"{'>= ' if run.gap_open else ''}{run.gap_ms:.0f} ms, {run.calls_recovered}/{run.calls_tracked} "
                    f"legs recovered, audio both ways {'yes' if run.audio_both_ways else 'NO'}, BYE ended it "
                    f"{'yes' if run.bye_ended else 'NO'}",
                    flush=True,
                )
    return results


def print_logs(farm: RealFarm, lines: int = 40) -> None:
    """The tail of controller.log and of each node's freeswitch.log: what the mechanism did."""
    for what, text in [("controller.log", farm.ctl.log())] + [
        (f"{n.name} freeswitch.log", n.log()) for n in farm.nodes.values()
    ]:
        print(f"  --- {what} (last {lines} lines)", flush=True)
        for entry in text.splitlines()[-lines:]:
            print(f"    {entry}", flush=True)


def print_freeswitch(real: dict[str, list[RealRun]]) -> None:
    """Medians of the real runs, each beside Kazoo (the bench line's reference) and jambonz."""
    for how, answer_target in (("crash", ANSWER_TARGET_S), ("hang", HANG_DECISION_TARGET_S + ANSWER_TARGET_S)):
        runs = real.get(how)
        if not runs:
            continue
        answered = statistics.median(r.answered for r in runs)
        gap = statistics.median(r.gap_ms for r in runs)
        tracked, recovered = sum(r.calls_tracked for r in runs), sum(r.calls_recovered for r in runs)
        print(
            f"freeswitch {how}, medians of {len(runs)} runs: first phone-to-phone call answered on the spare "
            f"{answered:.2f} s (worst {max(r.answered for r in runs):.2f} s; the callee registered again "
            f"{sum(r.callee_registered_again for r in runs)} times), media gap of a call in progress {gap:.0f} ms "
            f"(not back within {GAP_AFTER_S:g} s in {sum(r.gap_open for r in runs)} runs: lower bounds), "
            f"{recovered}/{tracked} legs recovered, audio both ways in {sum(r.audio_both_ways for r in runs)} "
            f"and a BYE ending it in {sum(r.bye_ended for r in runs)} of {len(runs)} runs "
            f"(Kazoo: ~{KAZOO_DETECTION_S:.0f} s and calls lost; jambonz: {JAMBONZ_DETECTION_S:.0f} s and calls lost)"
        )
        if how == "hang":
            decided = statistics.median(r.decided for r in runs)
            print(
                line(
                    "failover_freeswitch_hang_decided_median",
                    decided,
                    "s",
                    KAZOO_DETECTION_S,
                    f"< {HANG_DECISION_TARGET_S:g} s",
                )
            )
        print(
            line(
                f"failover_freeswitch_{how}_answered_median", answered, "s", KAZOO_DETECTION_S, f"< {answer_target:g} s"
            )
        )
        print(
            line(
                f"failover_freeswitch_{how}_media_gap_median",
                gap,
                "ms",
                KAZOO_DETECTION_S * 1000,
                f"< {GAP_TARGET_MS:g} ms",
            )
        )
        lost = 100.0 * (1 - recovered / tracked) if tracked else 100.0
        print(line(f"failover_freeswitch_{how}_calls_lost", lost, "%", 100.0, "0 %"))


def figure(value: float) -> str:
    """Three significant digits, without an exponent for the milliseconds of a media gap."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def line(name: str, value: float, unit: str, reference: float, target: str) -> str:
    ratio = value / reference
    return f"bench: {name} {figure(value)} {unit} (reference {figure(reference)}, ratio {ratio:.3f}, target {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--freeswitch", action="store_true", help="also real FreeSWITCH nodes and phones, beside the stand-in runs"
    )
    args = parser.parse_args()
    from needs import check  # bench/needs.py, beside this script

    check(commands=["kamailio"], postgres=True)
    runs = 3 if args.quick else 10
    workdir = Path(tempfile.mkdtemp(prefix="fsfarm-bench-failover-"))
    server = EmbeddedPostgres(workdir / "pg", port=free_port(), dbname="postgres")
    server.start()
    results: dict[str, list[tuple[float, int, int]]] = {"crash": [], "hang": []}
    real: dict[str, list[RealRun]] = {}
    try:
        for how in results:
            for i in range(runs):
                result = one_run(server, how, workdir)
                results[how].append(result)
                print(
                    f"  {how} run {i + 1}: first call on the spare after {result[0]:.2f} s, "
                    f"{result[1]}/{result[2]} room legs called back",
                    flush=True,
                )
        if args.freeswitch:
            real = freeswitch_runs(server, 3 if args.quick else 5, workdir)
    finally:
        server.stop()
    for how, target, reference in (("crash", "< 2 s", KAZOO_DETECTION_S), ("hang", "< 5 s", KAZOO_DETECTION_S)):
        if how not in results:
            continue
        times = [r[0] for r in results[how]]
        print(
            f"{how}: median {statistics.median(times):.2f} s, worst {max(times):.2f} s over {len(times)} runs "
            f"(Kazoo notices in ~{KAZOO_DETECTION_S:.0f} s, jambonz in {JAMBONZ_DETECTION_S:.0f} s)"
        )
        print(line(f"failover_{how}_median", statistics.median(times), "s", reference, target))
        print(line(f"failover_{how}_worst", max(times), "s", reference, target))
    legs = [r for rs in results.values() for r in rs]
    recovered = sum(r[1] for r in legs) / max(1, sum(r[2] for r in legs))
    print(line("failover_room_legs_recovered", recovered * 100, "%", 100.0, "100%"))
    print_freeswitch(real)


if __name__ == "__main__":
    main()
