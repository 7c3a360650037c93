"""Failover: from a node's death to the first new call answered by the spare, and rooms recovered.

Runs the real chain on loopback, N times for each kind of death: an embedded PostgreSQL, a real
Kamailio 5.6 in front, the ESL watchers connected to stand-in nodes that send FreeSWITCH's
recorded HEARTBEAT once a second, SIP peers answering for each node, and the failover loop.

* crash: the node's ESL socket closes and reconnects are refused (a dead process or host);
* hang: the connection stays open but heartbeats stop (a hang or a partition).

Printed beside the published detection times of Kazoo (~30 s, Kamailio pings) and jambonz
(90 s). ``--quick`` does 3 runs of each instead of 10.

``--freeswitch`` measures the same deaths with real parts only: ``fsfarm up`` (with
``FSFARM_KAMAILIO_CTL``), a real Kamailio, two real FreeSWITCH nodes from bootstrap files (one
active, one spare) and baresip phones registered through Kamailio before the death. The active
node gets SIGKILL (crash) or SIGSTOP (hang); timed are the first new call answered by the spare
(phones dialling a room, staggered, each attempt abandoned after a short wait), the first
phone-to-phone call, which also needs the callee to have registered again on the spare, and every
phone registered there. The node is restarted (or continued), rejoins as the spare, and the next
run takes the other one. 5 runs of each (3 with ``--quick``), printed beside the stand-in figures
measured in the same invocation. Needs the FreeSWITCH binary, baresip and kamailio, and the
tests' loopback harness (``tests/freeswitch/farm_harness.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
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


REGINT_S = 10  # the phones' registration interval in --freeswitch mode
FS_USERS = {"1001": 440, "1002": 1200, "1003": 700, "1004": 900}  # user -> the tone its phone plays


def first_room_call(
    callers: list[Any], node: Any, stagger: float = 0.5, give_up: float = 1.5, timeout: float = 60
) -> float:
    """Phones dial room 3000 in turn, ``stagger`` s apart; an attempt not answered in ``give_up`` s is hung up.

    A phone dials again only once its last attempt is closed, so no late answer is mistaken for a new
    one. Returns the monotonic time the first attempt was established, and checks it is on ``node``.
    """
    from farm_harness import wait_for

    deadline = time.monotonic() + timeout
    attempts: dict[int, dict[str, Any]] = {}  # caller index -> started, events seen before it, hung up yet
    turn = 0
    next_start = time.monotonic()
    while time.monotonic() < deadline:
        now = time.monotonic()
        for i, attempt in list(attempts.items()):
            phone = callers[i]
            if len(phone.saw("CALL_ESTABLISHED")) > attempt["established"]:
                answered = time.monotonic()
                if not attempt["hung"]:  # a late answer to a hung-up attempt is gone already
                    wait_for(
                        lambda p=phone: any(ch.get("cid_num") == p.user for ch in node.esl.channels()),
                        5,
                        f"{phone.user}'s answered call on {node.name}",
                    )
                for other in callers:
                    other.hangup()
                return answered
            if len(phone.saw("CALL_CLOSED")) > attempt["closed"] or now - attempt["started"] > give_up + 10:
                del attempts[i]
            elif not attempt["hung"] and now - attempt["started"] > give_up:
                phone.hangup()
                attempt["hung"] = True
        if now >= next_start:
            idle = [i for i in range(len(callers)) if i not in attempts]
            if idle:
                i = idle[turn % len(idle)]
                turn += 1
                phone = callers[i]
                attempts[i] = {
                    "started": now,
                    "established": len(phone.saw("CALL_ESTABLISHED")),
                    "closed": len(phone.saw("CALL_CLOSED")),
                    "hung": False,
                }
                phone.dial("3000")
                next_start = now + stagger
        time.sleep(0.02)
    return float("inf")


def nodes_now(ctl: Any) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in ctl.api("GET", "/nodes")}


def placed(ctl: Any) -> str | None:
    return {t["tenant"]: t["node"] for t in ctl.api("GET", "/placement")["tenants"]}.get("acme.test")


def registered_on(node: Any, user: str) -> bool:
    """Does the FreeSWITCH node itself hold a registration for ``user@acme.test``?"""
    try:
        return f"{user}@acme.test" in node.esl.api("sofia status profile internal reg")
    except OSError:
        return False


def one_freeswitch_run(
    ctl: Any, fs: list[Any], phones: dict[str, Any], callers: list[Any], how: str
) -> tuple[tuple[float, float, float, float], str, str]:
    """Crash (SIGKILL) or hang (SIGSTOP) the node hosting acme.test; time the failover, the first call on the
    spare, a phone-to-phone call and every phone registered there. The node then comes back as the spare."""
    from farm_harness import wait_for

    active = next(n for n in fs if n.name == wait_for(lambda: placed(ctl), 30, "acme.test placed"))
    spare = next(n for n in fs if n is not active)
    wait_for(
        lambda: nodes_now(ctl)[spare.name]["spare"] and nodes_now(ctl)[spare.name]["health"] == "up",
        90,
        f"{spare.name} up as the spare",
    )
    wait_for(
        lambda: all(registered_on(active, u) for u in FS_USERS),
        3 * REGINT_S + 30,
        f"every phone registered on {active.name} before the crash",
    )
    before = {f["id"] for f in json.loads(ctl.cli("failover", "list", "--json").stdout)}
    killed, killed_wall = time.monotonic(), time.time()
    if how == "crash":
        active.kill()
    else:
        os.kill(active.process.pid, signal.SIGSTOP)  # heartbeats stop, its sockets stay open
    first = first_room_call(callers, spare) - killed
    wait_for(lambda: not spare.esl.channels(), 15, "the room call to end")

    def decision() -> dict[str, Any] | None:
        rows = [f for f in json.loads(ctl.cli("failover", "list", "--json").stdout) if f["id"] not in before]
        return rows[0] if rows and rows[0]["state"] == "done" else None

    done = wait_for(decision, 30, "the failover record")
    failover_done = datetime.fromisoformat(done["completed_at"]).timestamp() - killed_wall
    caller = phones["1001"]
    wait_for(lambda: registered_on(spare, "1002"), REGINT_S + 90, "1002 registered on the spare")
    established = len(caller.saw("CALL_ESTABLISHED"))
    caller.dial("1002")
    wait_for(lambda: len(caller.saw("CALL_ESTABLISHED")) > established, 30, "1001 -> 1002 on the spare")
    p2p = time.monotonic() - killed
    caller.hangup()
    wait_for(lambda: not spare.esl.channels(), 15, "the call to end")
    # A refresh that fell in the dead window failed: that phone waits its own retry time (libre: 30-60 s).
    wait_for(
        lambda: all(registered_on(spare, u) for u in FS_USERS),
        10 * REGINT_S + 60,
        f"every phone registered on {spare.name}",
    )
    everyone = time.monotonic() - killed
    # It comes back and rejoins as the spare for the next run.
    if how == "crash":
        active.start()
    else:
        os.kill(active.process.pid, signal.SIGCONT)
    return (failover_done, first, p2p, everyone), active.name, spare.name


def freeswitch_runs(server: EmbeddedPostgres, runs: int, workdir: Path) -> dict[str, list[tuple[float, ...]]]:
    """Real FreeSWITCH crash and hang runs, in seconds from the kill: failover done, first call on the spare,
    phone-to-phone call, every phone registered on the spare."""
    from farm_harness import FSFARM, Controller, FreeSwitch, Kamailio, Phone, freeswitch_binary, wait_for

    from controller.kamailio.control import KamailioControl

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
    name = f"bench_fs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = server.conninfo.replace("dbname=postgres", f"dbname={name}")
    home = workdir / "freeswitch"
    ctl = Controller(
        dsn,
        home,
        env={
            "FSFARM_KAMAILIO_CTL": str(home / "kamailio" / "ctl"),
            "FSFARM_SIP_PROXIES": "127.0.0.1",
            "FSFARM_LOG_LEVEL": "INFO",
        },
    ).start()
    kam = None
    fs = [FreeSwitch(ctl, "fs1", home / "fs1"), FreeSwitch(ctl, "spare1", home / "spare1")]
    phones: dict[str, Any] = {}
    results: dict[str, list[tuple[float, ...]]] = {"crash": [], "hang": []}

    try:
        kam = Kamailio(ctl, home / "kamailio")
        ctl.cli(*fs[0].node_add_args())
        ctl.cli(*fs[1].node_add_args("--spare"))
        ctl.cli("tenant", "add", "acme.test")
        for user in FS_USERS:
            ctl.cli("user", "add", "-t", "acme.test", user, "--password", f"pw-{user}-long")
        ctl.cli("conference", "add", "-t", "acme.test", "3000")
        for node in fs:
            node.start(wait=False)
        for node in fs:
            node.wait_ready()
        wait_for(lambda: all(n["health"] == "up" for n in nodes_now(ctl).values()), 60, "both nodes up")
        control = KamailioControl(kam.ctl)
        wait_for(lambda: "acme.test" in control.domains(), 60, "Kamailio routing acme.test")
        for user, tone in FS_USERS.items():
            phones[user] = Phone(home, user, "acme.test", f"pw-{user}-long", kam.address, tone, regint=REGINT_S)
            phones[user].wait_registered(30)
        callers = [phones[u] for u in ("1001", "1003", "1004")]
        for how, results_of in results.items():
            for i in range(runs):
                result, killed_name, spare_name = one_freeswitch_run(ctl, fs, phones, callers, how)
                results_of.append(result)
                print(
                    f"  freeswitch {how} run {i + 1}: {killed_name} {'killed' if how == 'crash' else 'stopped'}; "
                    f"failover done after {result[0]:.2f} s, first call answered by {spare_name} after "
                    f"{result[1]:.2f} s, phone-to-phone call after {result[2]:.2f} s, all {len(FS_USERS)} phones "
                    f"registered there after {result[3]:.2f} s (regint {REGINT_S} s)",
                    flush=True,
                )
        return results
    finally:
        for phone in phones.values():
            phone.process.kill()
            phone.process.wait()
        ctl.stop()  # first, so stopping the nodes is not taken for a crash
        for node in fs:
            node.stop()
        if kam is not None:
            kam.stop()


def line(name: str, value: float, unit: str, reference: float, target: str) -> str:
    ratio = value / reference
    return f"bench: {name} {value:.3g} {unit} (reference {reference:.3g}, ratio {ratio:.3f}, target {target})"


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
    real: dict[str, list[tuple[float, ...]]] = {}
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
    for how, target in (("crash", "< 2 s"), ("hang", "< 5 s")):
        if not real.get(how):
            continue
        standin = statistics.median(r[0] for r in results[how])
        done, first, p2p, everyone = (statistics.median(r[k] for r in real[how]) for k in range(4))
        print(
            f"freeswitch {how}: failover done (placement moved, Kamailio reloaded) {done:.2f} s, "
            f"first new call answered by the spare {first:.2f} s (stand-in nodes: {standin:.2f} s), "
            f"phone-to-phone call once the callee re-registered {p2p:.2f} s (regint {REGINT_S} s), every phone "
            f"registered on the spare {everyone:.2f} s (worst {max(r[3] for r in real[how]):.2f} s), "
            f"medians of {len(real[how])} runs"
        )
        print(line(f"failover_freeswitch_{how}_median", first, "s", standin, target))
        print(line(f"failover_freeswitch_{how}_worst", max(r[1] for r in real[how]), "s", standin, target))
        print(
            line(f"failover_freeswitch_{how}_phone_to_phone_median", p2p, "s", float(REGINT_S), f"< {REGINT_S + 2} s")
        )
        print(
            line(
                f"failover_freeswitch_{how}_all_registered_worst",
                max(r[3] for r in real[how]),
                "s",
                float(REGINT_S),
                f"< {REGINT_S + 2} s",
            )
        )


if __name__ == "__main__":
    main()
