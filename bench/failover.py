"""Failover: from a node's death to the first new call answered by the spare, and rooms recovered.

Runs the real chain on loopback, N times for each kind of death: an embedded PostgreSQL, a real
Kamailio 5.6 in front, the ESL watchers connected to stand-in nodes that send FreeSWITCH's
recorded HEARTBEAT once a second, SIP peers answering for each node, and the failover loop.

* crash: the node's ESL socket closes and reconnects are refused (a dead process or host);
* hang: the connection stays open but heartbeats stop (a hang or a partition).

Printed beside the published detection times of Kazoo (~30 s, Kamailio pings) and jambonz
(90 s). ``--quick`` does 3 runs of each instead of 10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import gevent
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' loopback harness

from controller import provisioning
from controller.config import Settings
from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from controller.failover import FailoverLoop
from controller.stores import failovers, nodes
from esl_workers.inbound import WorkerConfig, start_workers
from esl_workers.recovery import AFTER_MOVE
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
    sip = {n: SipNode(n) for n in ("fs1", "fs2", "spare1")}
    esl = {n: EslNode(n) for n in sip}
    kam = None
    workers = None
    looper = None
    try:
        for n in sip:
            provisioning.add_node(db, {"name": n, "sip_address": sip[n].address, "esl_address": esl[n].address,
                                       "esl_password": "ClueCon", "spare": n == "spare1"})
        provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
        provisioning.add_child(db, "conferences", "acme.example", {"number": "3000"})
        with db.transaction() as conn:
            fs1 = nodes.get(conn, "fs1")
            tenant_id = conn.execute("SELECT id FROM tenants").fetchone()["id"]  # type: ignore[index]
            assert fs1 is not None
            for i, user in enumerate(("1001", "1002", "1003"), start=1):
                conn.execute("""INSERT INTO esl_conference_members (id, node_id, conference_name, member_id,
                                    tenant_id, caller_number) VALUES (%s, %s, '3000-acme.example', %s, %s, %s)""",
                             [uuid.uuid4(), fs1.id, i, tenant_id, user])
                conn.execute("""INSERT INTO esl_registrations (id, node_id, tenant_id, realm, username, call_id,
                                    contact, expires_at) VALUES (%s, %s, %s, 'acme.example', %s, %s, %s,
                                    now() + interval '1 hour')""",
                             [uuid.uuid4(), fs1.id, tenant_id, user, uuid.uuid4().hex, f"<sip:{user}@127.0.0.1:9>"])
        settings = Settings(database_url=dsn, state_dir=workdir, embedded_pg_port=0, xmlcurl_user="fs",
                            xmlcurl_password="x", controller_address="127.0.0.1")
        workers = start_workers(db, settings, WorkerConfig(spool_dir=workdir / f"spool-{name}",
                                                           heartbeat_interval=1.0, backoff_max=1.0))
        kam = start_kamailio(dsn)
        kam.control.reload()
        loop = FailoverLoop(db, kamailio=kam.control, after_move=AFTER_MOVE, interval=0.2)

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


def line(name: str, value: float, unit: str, reference: float, target: str) -> str:
    ratio = value / reference
    return f"bench: {name} {value:.3g} {unit} (reference {reference:.3g}, ratio {ratio:.3f}, target {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from needs import check  # bench/needs.py, beside this script

    check(commands=["kamailio"], postgres=True)
    runs = 3 if args.quick else 10
    workdir = Path(tempfile.mkdtemp(prefix="fsfarm-bench-failover-"))
    server = EmbeddedPostgres(workdir / "pg", port=free_port(), dbname="postgres")
    server.start()
    results: dict[str, list[tuple[float, int, int]]] = {"crash": [], "hang": []}
    try:
        for how in results:
            for i in range(runs):
                result = one_run(server, how, workdir)
                results[how].append(result)
                print(f"  {how} run {i + 1}: first call on the spare after {result[0]:.2f} s, "
                      f"{result[1]}/{result[2]} room legs called back", flush=True)
    finally:
        server.stop()
    for how, target, reference in (("crash", "< 2 s", KAZOO_DETECTION_S), ("hang", "< 5 s", KAZOO_DETECTION_S)):
        times = [r[0] for r in results[how]]
        print(f"{how}: median {statistics.median(times):.2f} s, worst {max(times):.2f} s over {len(times)} runs "
              f"(Kazoo notices in ~{KAZOO_DETECTION_S:.0f} s, jambonz in {JAMBONZ_DETECTION_S:.0f} s)")
        print(line(f"failover_{how}_median", statistics.median(times), "s", reference, target))
        print(line(f"failover_{how}_worst", max(times), "s", reference, target))
    legs = [r for rs in results.values() for r in rs]
    recovered = sum(r[1] for r in legs) / max(1, sum(r[2] for r in legs))
    print(line("failover_room_legs_recovered", recovered * 100, "%", 100.0, "100%"))


if __name__ == "__main__":
    main()
