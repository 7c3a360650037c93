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

from controller.database.embedded import EmbeddedPostgres  # noqa: E402
from controller.domain import a1_hash  # noqa: E402
from sql.migrate import migrate  # noqa: E402

SHARED = Path(os.environ.get("FSFARM_SHARED_DIR", REPO.parent / "shared"))
FIXTURE = SHARED / "fixtures/freeswitch/xml_curl/requests.jsonl"
AUTH = "Basic " + base64.b64encode(b"freeswitch:s3cret").decode()
TARGET_P99_MS = 10.0
TARGET_RPS = 2000.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(conninfo: str, n_nodes: int, n_tenants: int, users_per_tenant: int) -> tuple[list, list]:
    """COPY the farm straight into the tables: nodes, tenants, their placement, users, one room each."""
    import psycopg

    nodes = [(uuid.uuid4(), f"node{i}", f"10.1.0.{i + 1}") for i in range(n_nodes)]
    tenants = [(uuid.uuid4(), f"t{i}.bench.test", nodes[i % n_nodes]) for i in range(n_tenants)]
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy("COPY nodes (id, name, switchname, sip_address, esl_address, esl_password, rtp_port_min,"
                      " rtp_port_max, capacity) FROM STDIN") as copy:
            for nid, name, ip in nodes:
                copy.write_row((nid, name, name, f"{ip}:5060", f"{ip}:8021", "ClueCon", 16384, 32768, 1000))
        with cur.copy("COPY tenants (id, domain, name) FROM STDIN") as copy:
            for tid, domain, _ in tenants:
                copy.write_row((tid, domain, domain))
        cur.execute("INSERT INTO placement_generations (id, generation, reason, moved) VALUES (%s, 1, 'bench', 0)",
                    [uuid.uuid4()])
        with cur.copy("COPY tenant_placements (tenant_id, node_id, generation) FROM STDIN") as copy:
            for tid, _, node in tenants:
                copy.write_row((tid, node[0], 1))
        with cur.copy("COPY users (id, tenant_id, extension, display_name, a1_hash, vm_a1_hash) FROM STDIN") as copy:
            for tid, domain, _ in tenants:
                for u in range(users_per_tenant):
                    ext = str(1000 + u)
                    copy.write_row((uuid.uuid4(), tid, ext, f"User {ext}", a1_hash(ext, domain, "pw"),
                                    a1_hash(ext, domain, "1234")))
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
            changes = {**host, "user": ext, "domain": domain, "key_value": domain, "sip_auth_username": ext,
                       "sip_auth_realm": domain}
            template = auth
        else:
            dest = "3000" if rng.random() < 0.1 else str(1000 + rng.randrange(users_per_tenant))
            changes = {**host, "Caller-Context": domain, "Hunt-Context": domain, "Caller-Destination-Number": dest,
                       "Hunt-Destination-Number": dest}
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
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}/xmlcurl"], capture_output=True, text=True, check=True).stdout
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
    out = subprocess.run([sys.executable, str(REPO / "bench" / "openloop.py"), "--port", str(port), "--rate",
                          str(rate), "--seconds", str(seconds), "--procs", "2", "--bodies", str(bodies_file),
                          "--auth", AUTH], capture_output=True, text=True, check=True).stdout
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


def start_gunicorn(tmp: Path, conninfo: str, port: int, ttl: float, entries: int = 200_000) -> subprocess.Popen[bytes]:
    (tmp / "fsfarm_bench_wsgi.py").write_text(
        "from controller.api import create_app\n"
        "from controller.config import Settings\n"
        "from controller.database import Database\n"
        "import os\n"
        "def app():\n"
        "    return create_app(Database(os.environ['BENCH_DSN'], max_size=8), Settings.from_env())\n")
    env = {**os.environ, "BENCH_DSN": conninfo, "FSFARM_XMLCURL_PASSWORD": "s3cret",
           "FSFARM_XMLCURL_USER": "freeswitch", "FSFARM_XMLCURL_CACHE_TTL": str(ttl),
           "FSFARM_XMLCURL_CACHE_ENTRIES": str(entries), "PYTHONPATH": f"{tmp}:{REPO}"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2", "--worker-connections", "200",
                             "-b", f"127.0.0.1:{port}", "--log-level", "warning", "fsfarm_bench_wsgi:app()"],
                            env=env, cwd=tmp)
    wait_port(port)
    return proc


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run on 10,000 users")
    args = parser.parse_args()
    n_tenants, per_tenant = (100, 100) if args.quick else (1000, 100)
    seconds = 5 if args.quick else 20
    connections = 16
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-bench-xmlcurl-"))
    pg = EmbeddedPostgres(tmp / "pg", port=free_port(), dbname="fsfarm_bench")
    pg.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate(pg.conninfo)
        t0 = time.monotonic()
        _, tenants = load(pg.conninfo, 10, n_tenants, per_tenant)
        print(f"loaded {n_tenants * per_tenant} users in {n_tenants} tenants on 10 nodes "
              f"in {time.monotonic() - t0:.1f} s", flush=True)
        request_bodies = bodies(tenants, per_tenant, 4000)
        script = tmp / "requests.lua"
        wrk_script(script, request_bodies)
        generator = "wrk" if shutil.which("wrk") else "python"
        bodies_file = tmp / "bodies.json"
        bodies_file.write_text(json.dumps(request_bodies))
        fixed: dict[str, dict[str, float]] = {}

        results = {}
        # cold: nothing cached (TTL 0), every request looks up node, placement and answer in PostgreSQL;
        # miss: answers never stored (0 entries) but node and placement cached: the cost of a real miss;
        # cached: every answer served from the process cache after the warm-up.
        for label, ttl, entries in (("cold", 0.0, 200_000), ("miss", 300.0, 0), ("cached", 300.0, 200_000)):
            port = free_port()
            proc = start_gunicorn(tmp, pg.conninfo, port, ttl, entries)
            procs.append(proc)
            drive(port, request_bodies, script, 2, connections)  # warm-up: imports, pools, cache
            results[label] = drive(port, request_bodies, script, seconds, connections)
            print(f"{label}: {results[label]}", flush=True)
            fixed[label] = open_loop(port, bodies_file, seconds, TARGET_RPS)
            print(f"{label} at {TARGET_RPS:.0f} req/s: {fixed[label]}", flush=True)
            stop(proc)

        import urllib.request

        port = free_port()
        proc = start_gunicorn(tmp, pg.conninfo, port, 300.0)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/xmlcurl", data=request_bodies[0].encode(),
                                     headers={"Authorization": AUTH})
        answer = urllib.request.urlopen(req).read()
        stop(proc)
        nginx_port = free_port()
        proc = start_nginx(tmp, nginx_port, answer)
        procs.append(proc)
        drive(nginx_port, request_bodies, script, 2, connections)
        ceiling = drive(nginx_port, request_bodies, script, seconds, connections)
        print(f"nginx: {ceiling}", flush=True)
        fixed["nginx"] = open_loop(nginx_port, bodies_file, seconds, TARGET_RPS)
        print(f"nginx at {TARGET_RPS:.0f} req/s: {fixed['nginx']}", flush=True)
        stop(proc)
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"load generators: {generator} with {connections} connections (saturation), and bench/openloop.py "
          f"at a fixed {TARGET_RPS:.0f} req/s; {seconds} s per run")
    ref = fixed["nginx"]
    for label in ("cold", "miss", "cached"):
        r, f = results[label], fixed[label]
        print(f"bench: xmlcurl_{label}_throughput {r['rps']:.0f} req/s (reference {ceiling['rps']:.0f}, "
              f"ratio {r['rps'] / ceiling['rps']:.3f}, target {TARGET_RPS:.0f})")
        print(f"bench: xmlcurl_{label}_wrk_p50 {r['p50']:.2f} ms (reference {ceiling['p50']:.2f}, "
              f"ratio {r['p50'] / ceiling['p50']:.1f}, target {TARGET_P99_MS:.0f})")
        print(f"bench: xmlcurl_{label}_wrk_p99 {r['p99']:.2f} ms (reference {ceiling['p99']:.2f}, "
              f"ratio {r['p99'] / ceiling['p99']:.1f}, target {TARGET_P99_MS:.0f})")
        print(f"bench: xmlcurl_{label}_achieved_at_2000 {f['achieved']:.0f} req/s (reference {ref['achieved']:.0f}, "
              f"ratio {f['achieved'] / ref['achieved']:.3f}, target {TARGET_RPS:.0f})")
        print(f"bench: xmlcurl_{label}_errors_at_2000 {f['errors']:.0f} requests (reference {ref['errors']:.0f}, "
              f"ratio {f['errors'] / max(ref['errors'], 1):.1f}, target 0)")
        for pct in ("p50", "p99", "p999"):
            print(f"bench: xmlcurl_{label}_{pct}_at_2000 {f[pct]:.2f} ms (reference {ref[pct]:.2f}, "
                  f"ratio {f[pct] / ref[pct]:.1f}, target {TARGET_P99_MS:.0f})")


if __name__ == "__main__":
    main()
