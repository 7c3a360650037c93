"""Benchmark the xml_curl endpoint: 100,000 users in 1,000 tenants on 10 nodes, against nginx as the ceiling.

Run by hand: ``python bench/xmlcurl.py [--quick]``. Starts a real PostgreSQL (EmbeddedPostgres) in a temp
dir, bulk-loads it with COPY, serves the controller with gunicorn + 2 gevent workers, drives directory
(sip_auth) and dialplan requests built from the recorded FreeSWITCH fetches, then serves one pre-rendered
answer from nginx the same way. Each server gets two loads:

* wrk (a Python closed-loop generator if wrk is missing), 16 connections always in flight: the
  maximum throughput, and latencies *at saturation* (``*_wrk_p50``/``*_wrk_p99``);
* ``bench/openloop.py``: an open-loop generator offering a fixed 2,000 req/s, latency counted from
  each request's scheduled send time (no coordinated omission): ``*_p50_at_2000``/``*_p99_at_2000``,
  the figures the target is about.

Setups (``--setups``): ``sql_miss`` (no snapshot, answers never cached: one PostgreSQL query per
fetch, the state before the snapshot), ``cold`` (TTL 0: every answer rendered from the snapshot),
``miss`` (answers never stored: the cost of a cache miss with the snapshot), ``cached``. Each gunicorn
worker loads its snapshot at start and reports its load time and RSS; each open-loop run also prints
the seconds whose p99 was over the target (the per-second timeline of ``bench/openloop.py``).

Prints one ``bench:`` line per figure at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller import secrets  # noqa: E402
from controller.database.embedded import EmbeddedPostgres  # noqa: E402
from controller.domain import a1_hash  # noqa: E402
from controller.stores.rows import where  # noqa: E402
from sql.migrate import migrate  # noqa: E402

SHARED = Path(os.environ.get("FSFARM_SHARED_DIR", REPO.parent / "shared"))
FIXTURE = SHARED / "fixtures/freeswitch/xml_curl/requests.jsonl"
AUTH = "Basic " + base64.b64encode(b"freeswitch:s3cret").decode()
TARGET_P99_MS = 10.0
TARGET_RPS = 2000.0
# The farm's key for this run: the loader seals what it COPYs with it, the workers get it as FSFARM_SECRET_KEY.
SECRET_KEY = base64.b64encode(os.urandom(secrets.KEY_BYTES)).decode()
CIPHER = secrets.Cipher(base64.b64decode(SECRET_KEY))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(conninfo: str, n_nodes: int, n_tenants: int, users_per_tenant: int) -> tuple[list, list]:
    """COPY the farm into the tables (secrets sealed): nodes, tenants, their placement, users, one room each."""
    import psycopg

    nodes = [(uuid.uuid4(), f"node{i}", f"10.1.0.{i + 1}") for i in range(n_nodes)]
    tenants = [(uuid.uuid4(), f"t{i}.bench.test", nodes[i % n_nodes]) for i in range(n_tenants)]
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY nodes (id, name, switchname, sip_address, esl_address, esl_password, rtp_port_min,"
            " rtp_port_max, capacity) FROM STDIN"
        ) as copy:
            for nid, name, ip in nodes:
                password = CIPHER.seal("ClueCon", where("nodes", "esl_password", nid))
                copy.write_row((nid, name, name, f"{ip}:5060", f"{ip}:8021", password, 16384, 32768, 1000))
        with cur.copy("COPY tenants (id, domain, name) FROM STDIN") as copy:
            for tid, domain, _ in tenants:
                copy.write_row((tid, domain, domain))
        cur.execute(
            "INSERT INTO placement_generations (id, generation, reason, moved) VALUES (%s, 1, 'bench', 0)",
            [uuid.uuid4()],
        )
        with cur.copy("COPY tenant_placements (tenant_id, node_id, generation) FROM STDIN") as copy:
            for tid, _, node in tenants:
                copy.write_row((tid, node[0], 1))
        with cur.copy("COPY users (id, tenant_id, extension, display_name, a1_hash, vm_a1_hash) FROM STDIN") as copy:
            for tid, domain, _ in tenants:
                for u in range(users_per_tenant):
                    ext, uid = str(1000 + u), uuid.uuid4()
                    copy.write_row(
                        (
                            uid,
                            tid,
                            ext,
                            f"User {ext}",
                            CIPHER.seal(a1_hash(ext, domain, "pw"), where("users", "a1_hash", uid)),
                            CIPHER.seal(a1_hash(ext, domain, "1234"), where("users", "vm_a1_hash", uid)),
                        )
                    )
        with cur.copy("COPY conferences (id, tenant_id, number, name, profile) FROM STDIN") as copy:
            for tid, _, _ in tenants:
                copy.write_row((uuid.uuid4(), tid, "3000", "room", "narrowband"))
        conn.commit()
        cur.execute("ANALYZE")
    return nodes, tenants


def bodies(tenants: list, users_per_tenant: int, count: int) -> list[str]:
    """Request bodies from the recorded sip_auth and dialplan fetches, re-aimed at random users of the farm."""
    recorded = [json.loads(line) for line in FIXTURE.read_text().split("\n") if line.strip()]
    auth = next(r for r in recorded if r["label"] == "directory sip_auth")["body"]
    call = next(r for r in recorded if r["label"] == "dialplan acme.test 1002")["body"]
    rng = random.Random(7)
    out = []
    for i in range(count):
        _, domain, node = rng.choice(tenants)
        ext = str(1000 + rng.randrange(users_per_tenant))
        host = {"hostname": node[1], "FreeSWITCH-Switchname": node[1], "FreeSWITCH-Hostname": node[1]}
        if i % 2 == 0:
            changes = {
                **host,
                "user": ext,
                "domain": domain,
                "key_value": domain,
                "sip_auth_username": ext,
                "sip_auth_realm": domain,
            }
            template = auth
        else:
            dest = "3000" if rng.random() < 0.1 else str(1000 + rng.randrange(users_per_tenant))
            changes = {
                **host,
                "Caller-Context": domain,
                "Hunt-Context": domain,
                "Caller-Destination-Number": dest,
                "Hunt-Destination-Number": dest,
            }
            template = call
        pairs = [(k, changes.get(k, v)) for k, v in parse_qsl(template, keep_blank_values=True)]
        out.append(urlencode(pairs))
    return out


def wrk_script(path: Path, request_bodies: list[str]) -> None:
    lines = ["local bodies = {"]
    for body in request_bodies:
        lines.append(f"[==[{body}]==],")
    lines += [
        "}",
        'wrk.method = "POST"',
        f'wrk.headers["Authorization"] = "{AUTH}"',
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  local body = bodies[math.random(#bodies)]",
        '  return wrk.format(nil, "/xmlcurl", nil, body)',
        "end",
        "init = function(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)) end",
    ]
    path.write_text("\n".join(lines))


def run_wrk(port: int, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/xmlcurl",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rps}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        result[f"p{pct}"] = float(m.group(1)) * scale
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


def run_python(port: int, request_bodies: list[str], seconds: int, connections: int) -> dict[str, float]:
    """A closed-loop load generator in a second process (used when wrk is not installed)."""
    code = f"""
import http.client, json, random, sys, threading, time
bodies = json.load(open(sys.argv[1]))
lat, stop = [], time.monotonic() + {seconds}
def worker():
    c = http.client.HTTPConnection("127.0.0.1", {port})
    while time.monotonic() < stop:
        t = time.perf_counter()
        c.request("POST", "/xmlcurl", random.choice(bodies), {{"Authorization": "{AUTH}",
                  "Content-Type": "application/x-www-form-urlencoded"}})
        c.getresponse().read()
        lat.append(time.perf_counter() - t)
ts = [threading.Thread(target=worker) for _ in range({connections})]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
print(json.dumps({{"rps": len(lat) / {seconds}, "p50": lat[len(lat) // 2] * 1000,
                  "p99": lat[int(len(lat) * 0.99)] * 1000, "errors": 0}}))
"""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(request_bodies, f)
    out = subprocess.run([sys.executable, "-c", code, f.name], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def drive(port: int, request_bodies: list[str], script: Path, seconds: int, connections: int) -> dict[str, float]:
    if shutil.which("wrk"):
        return run_wrk(port, script, seconds, connections)
    return run_python(port, request_bodies, seconds, connections)


def open_loop(port: int, bodies_file: Path, seconds: int, rate: float) -> dict[str, float]:
    """A fixed offered rate from ``bench/openloop.py`` (2 processes), latency from the scheduled send time."""
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "openloop.py"),
            "--port",
            str(port),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--procs",
            "2",
            "--bodies",
            str(bodies_file),
            "--auth",
            AUTH,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


WSGI = """\
import json, os
from controller import secrets
from controller.app.web import create_app
from controller.config import Settings
from controller.database import Database
from xmlcurl.web import service, start


def _rss_mb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) / 1024


def app():
    settings = Settings.from_env()
    secrets.use(secrets.decode_key(settings.secret_key, "FSFARM_SECRET_KEY"))
    application = create_app(Database(os.environ['BENCH_DSN'], max_size=8), settings)
    before = _rss_mb()
    start(application)  # in the worker, after the fork: the listener loads the snapshot now

    def report():
        svc = service(application)
        svc.listener.listening.wait()
        with open(os.environ['BENCH_READY'], 'a') as f:
            f.write(json.dumps({"pid": os.getpid(), "snapshot": svc.snapshot.ready,
                                "load_seconds": svc.snapshot.load_seconds, "users": svc.snapshot.users_count(),
                                "rss_before_mb": before, "rss_after_mb": _rss_mb()}) + "\\n")

    import gevent
    gevent.spawn(report)
    return application
"""


def start_gunicorn(
    tmp: Path,
    conninfo: str,
    port: int,
    ttl: float,
    entries: int = 200_000,
    extra_env: dict[str, str] | None = None,
    workers: int = 2,
) -> tuple[subprocess.Popen[bytes], list]:
    """gunicorn + gevent workers; returns once every worker has loaded its snapshot (or its listener is up)."""
    (tmp / "fsfarm_bench_wsgi.py").write_text(WSGI)
    ready = tmp / f"ready-{port}.jsonl"
    env = {
        **os.environ,
        "BENCH_DSN": conninfo,
        "FSFARM_XMLCURL_PASSWORD": "s3cret",
        "BENCH_READY": str(ready),
        "FSFARM_XMLCURL_USER": "freeswitch",
        "FSFARM_SECRET_KEY": SECRET_KEY,
        "FSFARM_XMLCURL_CACHE_TTL": str(ttl),
        "FSFARM_XMLCURL_CACHE_ENTRIES": str(entries),
        "PYTHONPATH": f"{tmp}:{REPO}",
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gevent",
            "-w",
            str(workers),
            "--worker-connections",
            "200",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "fsfarm_bench_wsgi:app()",
        ],
        env=env,
        cwd=tmp,
    )
    wait_port(port)
    deadline = time.monotonic() + 60
    while not ready.exists() or len(ready.read_text().splitlines()) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn workers never reported ready")
        time.sleep(0.1)
    return proc, [json.loads(line) for line in ready.read_text().splitlines()]


def start_nginx(tmp: Path, port: int, answer: bytes) -> subprocess.Popen[bytes]:
    root = tmp / "nginx"
    (root / "www").mkdir(parents=True)
    (root / "www" / "xmlcurl").write_bytes(answer)
    (root / "nginx.conf").write_text(f"""
worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port};
    # static files refuse POST with 405: answer it with the file instead, as a GET would get it
    location = /xmlcurl {{ root {root}/www; default_type text/xml; error_page 405 =200 $uri; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root)])
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


SETUPS = {
    # sql_miss: no snapshot, answers never stored: every fetch is one PostgreSQL query (node and
    #   placement cached): the per-miss cost before the snapshot;
    # cold: cache TTL 0, nothing cached: every answer rendered from the snapshot;
    # miss: answers never stored (0 entries): what one cache miss costs with the snapshot;
    # cached: every answer served from the process cache after the warm-up.
    "sql_miss": (300.0, 0, {"FSFARM_XMLCURL_SNAPSHOT": "0"}),
    "cold": (0.0, 200_000, {}),
    "miss": (300.0, 0, {}),
    "cached": (300.0, 200_000, {}),
}


def timeline_summary(fixed: dict[str, object]) -> str:
    """The seconds of an open-loop run whose p99 was over the target: where the stalls were."""
    rows = fixed.get("timeline") or []
    slow = [r for r in rows if r["p99"] > TARGET_P99_MS]  # type: ignore[index, union-attr]
    parts = [f"{r['s']}s: n {r['n']} p99 {r['p99']} max {r['max']}" for r in slow]  # type: ignore[index]
    return f"{len(slow)} of {len(rows)} seconds over {TARGET_P99_MS:.0f} ms p99" + (
        ": " + "; ".join(parts) if parts else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run on 10,000 users")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma list of {', '.join(SETUPS)}")
    parser.add_argument("--seconds", type=int, default=0, help="seconds per run (default 5 quick, 20 full)")
    args = parser.parse_args()
    from needs import check  # bench/needs.py, beside this script

    check(commands=["nginx"], modules=["gunicorn"], postgres=True)  # without wrk, drive() uses a Python generator
    n_tenants, per_tenant = (100, 100) if args.quick else (1000, 100)
    seconds = args.seconds or (5 if args.quick else 20)
    setups = [name for name in args.setups.split(",") if name]
    connections = 16
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-bench-xmlcurl-"))
    pg = EmbeddedPostgres(tmp / "pg", port=free_port(), dbname="fsfarm_bench")
    pg.start()
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[dict[str, float]] = []
    try:
        migrate(pg.conninfo)
        t0 = time.monotonic()
        _, tenants = load(pg.conninfo, 10, n_tenants, per_tenant)
        copy_seconds = time.monotonic() - t0
        print(
            f"loaded {n_tenants * per_tenant} users in {n_tenants} tenants on 10 nodes in {copy_seconds:.1f} s",
            flush=True,
        )
        request_bodies = bodies(tenants, per_tenant, 4000)
        script = tmp / "requests.lua"
        wrk_script(script, request_bodies)
        generator = "wrk" if shutil.which("wrk") else "python"
        bodies_file = tmp / "bodies.json"
        bodies_file.write_text(json.dumps(request_bodies))
        fixed: dict[str, dict[str, float]] = {}

        results = {}
        for label in setups:
            ttl, entries, extra = SETUPS[label]
            port = free_port()
            proc, ready = start_gunicorn(tmp, pg.conninfo, port, ttl, entries, extra)
            procs.append(proc)
            print(f"{label} workers: {ready}", flush=True)
            if extra.get("FSFARM_XMLCURL_SNAPSHOT") != "0":
                workers += ready
            drive(port, request_bodies, script, 2, connections)  # warm-up: imports, pools, cache
            results[label] = drive(port, request_bodies, script, seconds, connections)
            print(f"{label}: {results[label]}", flush=True)
            fixed[label] = open_loop(port, bodies_file, seconds, TARGET_RPS)
            timeline = fixed[label].pop("timeline", [])  # type: ignore[misc]
            print(f"{label} at {TARGET_RPS:.0f} req/s: {fixed[label]}", flush=True)
            print(f"{label} timeline: {timeline_summary({'timeline': timeline})}", flush=True)
            stop(proc)

        import urllib.request

        port = free_port()
        proc, _ = start_gunicorn(tmp, pg.conninfo, port, 300.0)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/xmlcurl", data=request_bodies[0].encode(), headers={"Authorization": AUTH}
        )
        answer = urllib.request.urlopen(req).read()
        stop(proc)
        nginx_port = free_port()
        proc = start_nginx(tmp, nginx_port, answer)
        procs.append(proc)
        drive(nginx_port, request_bodies, script, 2, connections)
        ceiling = drive(nginx_port, request_bodies, script, seconds, connections)
        print(f"nginx: {ceiling}", flush=True)
        fixed["nginx"] = open_loop(nginx_port, bodies_file, seconds, TARGET_RPS)
        fixed["nginx"].pop("timeline", None)  # type: ignore[misc]
        print(f"nginx at {TARGET_RPS:.0f} req/s: {fixed['nginx']}", flush=True)
        stop(proc)
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"load generators: {generator} with {connections} connections (saturation), and bench/openloop.py "
        f"at a fixed {TARGET_RPS:.0f} req/s; {seconds} s per run; load average {os.getloadavg()}"
    )
    if workers:
        load_s = max(w["load_seconds"] for w in workers)
        grown = max(w["rss_after_mb"] - w["rss_before_mb"] for w in workers)
        before = max(w["rss_before_mb"] for w in workers)
        users = int(workers[0]["users"])
        print(
            f"snapshot of {users} users per worker: load time (reference: the COPY into PostgreSQL), RSS grown "
            f"by the load, worst worker (reference: the worker's RSS before it)"
        )
        print(
            f"bench: xmlcurl_snapshot_load {load_s:.2f} s (reference {copy_seconds:.2f}, "
            f"ratio {load_s / copy_seconds:.2f}, target 2)"
        )
        print(
            f"bench: xmlcurl_snapshot_rss {grown:.1f} MB (reference {before:.1f}, "
            f"ratio {grown / before:.2f}, target 100)"
        )
    ref = fixed["nginx"]
    for label in setups:
        r, f = results[label], fixed[label]
        print(
            f"bench: xmlcurl_{label}_throughput {r['rps']:.0f} req/s (reference {ceiling['rps']:.0f}, "
            f"ratio {r['rps'] / ceiling['rps']:.3f}, target {TARGET_RPS:.0f})"
        )
        print(
            f"bench: xmlcurl_{label}_wrk_p50 {r['p50']:.2f} ms (reference {ceiling['p50']:.2f}, "
            f"ratio {r['p50'] / ceiling['p50']:.1f}, target {TARGET_P99_MS:.0f})"
        )
        print(
            f"bench: xmlcurl_{label}_wrk_p99 {r['p99']:.2f} ms (reference {ceiling['p99']:.2f}, "
            f"ratio {r['p99'] / ceiling['p99']:.1f}, target {TARGET_P99_MS:.0f})"
        )
        print(
            f"bench: xmlcurl_{label}_achieved_at_2000 {f['achieved']:.0f} req/s (reference {ref['achieved']:.0f}, "
            f"ratio {f['achieved'] / ref['achieved']:.3f}, target {TARGET_RPS:.0f})"
        )
        print(
            f"bench: xmlcurl_{label}_errors_at_2000 {f['errors']:.0f} requests (reference {ref['errors']:.0f}, "
            f"ratio {f['errors'] / max(ref['errors'], 1):.1f}, target 0)"
        )
        for pct in ("p50", "p99", "p999"):
            print(
                f"bench: xmlcurl_{label}_{pct}_at_2000 {f[pct]:.2f} ms (reference {ref[pct]:.2f}, "
                f"ratio {f[pct] / ref[pct]:.1f}, target {TARGET_P99_MS:.0f})"
            )


if __name__ == "__main__":
    main()
