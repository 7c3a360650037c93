"""Open-loop HTTP load at a fixed offered rate, latency measured from each request's scheduled send time.

wrk keeps N connections busy (closed loop): when the server stalls, wrk stops sending, and the stall
hides in a few samples (coordinated omission). Here every request has a send time fixed in advance
(rate / processes per process, evenly spaced); its latency runs from that time to the last byte of
its answer, so a stall counts against every request that should have been sent during it.

Each process is one ``selectors`` loop over non-blocking keep-alive sockets: a request goes out on an
idle connection, or on a new one (up to ``--max-conns`` per process), else it waits in a backlog,
and its clock is already running.

    python bench/openloop.py --port 8000 --rate 2000 --seconds 20 --bodies bodies.json --auth 'Basic ...'

prints one JSON object: offered/achieved rate, sent, answered, errors, p50/p90/p99/p99.9/max in ms, and a
per-second ``timeline`` (by scheduled send time: answered, p50, p99, max) to find stalls.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Conn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    scheduled: float = 0.0  # send time of the request in flight; 0.0: idle
    need: int = -1  # total bytes of the answer once its headers are in
    closing: bool = False  # the server said "Connection: close": do not reuse
    used: int = 0  # requests answered on this connection
    payload: bytes = b""  # the request in flight, resent once on a fresh connection if a reused one was closed
    retried: bool = False


def request_bytes(path: str, host: str, auth: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def worker(
    port: int, rate: float, seconds: float, start: float, bodies: list[bytes], max_conns: int, offset: float
) -> dict[str, object]:
    sel = selectors.DefaultSelector()
    idle: list[Conn] = []
    conns = 0
    backlog: deque[tuple[float, bytes]] = deque()
    latencies: list[float] = []
    offsets: list[float] = []  # scheduled send time of each answered request, seconds from the start
    errors = 0
    statuses: dict[str, int] = {}
    interval = 1.0 / rate
    total = int(rate * seconds)
    sent = 0
    t0 = time.perf_counter() + (start - time.time()) + offset * interval

    def open_conn() -> Conn:
        nonlocal conns
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conns += 1
        return Conn(sock)

    def send(conn: Conn, scheduled: float, payload: bytes, retried: bool = False) -> None:
        conn.scheduled = scheduled
        conn.payload = payload
        conn.retried = retried
        conn.buf.clear()
        conn.need = -1
        conn.sock.setblocking(True)
        try:
            conn.sock.sendall(payload)
        except OSError:
            pass  # the server closed it: the read side sees EOF and the request is resent once
        conn.sock.setblocking(False)
        sel.modify(conn.sock, selectors.EVENT_READ, conn) if conn.used else sel.register(
            conn.sock, selectors.EVENT_READ, conn
        )

    def dispatch(scheduled: float, payload: bytes) -> None:
        nonlocal conns
        if idle:
            send(idle.pop(), scheduled, payload)
        elif conns < max_conns:
            send(open_conn(), scheduled, payload)
        else:
            backlog.append((scheduled, payload))

    def finished(conn: Conn, ok: bool) -> None:
        nonlocal errors, conns
        if not ok or conn.closing:
            sel.unregister(conn.sock)
            conn.sock.close()
            conns -= 1
            if not ok:
                if conn.used and not conn.buf and not conn.retried:
                    # a keep-alive connection the server closed as we reused it: what any HTTP client
                    # does is resend on a new connection; the clock keeps running from the schedule
                    send(open_conn(), conn.scheduled, conn.payload, retried=True)
                    return
                errors += 1
        else:
            conn.used += 1
            idle.append(conn)  # stays registered: an EOF while idle drops it
        conn.scheduled = 0.0
        if backlog:
            scheduled, payload = backlog.popleft()
            dispatch(scheduled, payload)

    n_bodies = len(bodies)
    while sent < total or conns - len(idle) > 0 or backlog:
        now = time.perf_counter()
        while sent < total and t0 + sent * interval <= now:
            dispatch(t0 + sent * interval, bodies[(sent * 7919 + int(offset * 104729)) % n_bodies])
            sent += 1
        if sent < total:
            timeout = max(0.0, t0 + sent * interval - time.perf_counter())
        else:
            timeout = 1.0
            if time.perf_counter() > t0 + seconds + 30:  # answers that never come count as errors
                errors += conns - len(idle) + len(backlog)
                break
        for key, _ in sel.select(timeout):
            conn: Conn = key.data
            try:
                chunk = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not conn.scheduled:  # an idle connection: the server closed it (keep-alive timeout)
                if not chunk:
                    sel.unregister(conn.sock)
                    conn.sock.close()
                    idle.remove(conn)
                    conns -= 1
                continue
            if not chunk:
                finished(conn, False)
                continue
            conn.buf += chunk
            if conn.need < 0:
                end = conn.buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = bytes(conn.buf[:end]).decode("latin-1").lower()
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and value.strip() == "close":
                        conn.closing = True
                conn.need = end + 4 + length
                status = head[9:12]
                statuses[status] = statuses.get(status, 0) + 1
                if status != "200":
                    errors += 1
            if len(conn.buf) >= conn.need:
                latencies.append(time.perf_counter() - conn.scheduled)
                offsets.append(conn.scheduled - t0)
                finished(conn, True)
    elapsed = time.perf_counter() - t0
    for conn in idle:
        conn.sock.close()
    return {
        "sent": sent,
        "latencies": latencies,
        "offsets": offsets,
        "errors": errors,
        "statuses": statuses,
        "elapsed": elapsed,
        "connections": conns,
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100.0))]


def timeline(results: list[dict[str, object]]) -> list[dict[str, float]]:
    """Per second of the schedule: requests answered, p50/p99/max latency in ms (where the stalls are)."""
    seconds: dict[int, list[float]] = {}
    for r in results:
        for offset, latency in zip(r["offsets"], r["latencies"], strict=True):  # type: ignore[call-overload]
            seconds.setdefault(max(0, int(offset)), []).append(latency)
    out = []
    for second in sorted(seconds):
        values = sorted(seconds[second])
        out.append(
            {
                "s": second,
                "n": len(values),
                "p50": round(percentile(values, 50) * 1000, 2),
                "p99": round(percentile(values, 99) * 1000, 2),
                "max": round(values[-1] * 1000, 2),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000.0, help="requests per second offered, in total")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--max-conns", type=int, default=64, help="connections per process at most")
    parser.add_argument("--bodies", required=True, help="JSON list of request bodies")
    parser.add_argument("--auth", default="")
    parser.add_argument("--path", default="/xmlcurl")
    parser.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker >= 0:
        with open(args.bodies) as f:
            raw = json.load(f)
        payloads = [request_bytes(args.path, f"127.0.0.1:{args.port}", args.auth, b.encode()) for b in raw]
        result = worker(
            args.port,
            args.rate / args.procs,
            args.seconds,
            args.start,
            payloads,
            args.max_conns,
            args.worker / args.procs,
        )
        json.dump(result, sys.stdout)
        return
    start = time.time() + 1.0  # every process starts on the same schedule
    cmd = [
        sys.executable,
        __file__,
        "--port",
        str(args.port),
        "--rate",
        str(args.rate),
        "--seconds",
        str(args.seconds),
        "--procs",
        str(args.procs),
        "--max-conns",
        str(args.max_conns),
        "--bodies",
        args.bodies,
        "--auth",
        args.auth,
        "--path",
        args.path,
        "--start",
        repr(start),
    ]
    procs = [subprocess.Popen([*cmd, "--worker", str(i)], stdout=subprocess.PIPE) for i in range(args.procs)]
    results = [json.loads(p.communicate()[0]) for p in procs]
    latencies = sorted(x for r in results for x in r["latencies"])
    sent = sum(r["sent"] for r in results)
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    elapsed = max(r["elapsed"] for r in results)
    ms = [percentile(latencies, p) * 1000 for p in (50, 90, 99, 99.9)]
    json.dump(
        {
            "offered": args.rate,
            "achieved": len(latencies) / elapsed,
            "sent": sent,
            "answered": len(latencies),
            "errors": sum(r["errors"] for r in results),
            "statuses": statuses,
            "connections": sum(r["connections"] for r in results),
            "p50": ms[0],
            "p90": ms[1],
            "p99": ms[2],
            "p999": ms[3],
            "max": (latencies[-1] * 1000) if latencies else float("nan"),
            "timeline": timeline(results),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
