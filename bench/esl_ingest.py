"""Ingest benchmark: one ESL worker eating a recorded event stream at full speed over loopback.

Run by hand: ``python bench/esl_ingest.py`` (``--quick`` for a short run). It starts a real
PostgreSQL (EmbeddedPostgres, free port, temp dir), a replay server in a child process that
streams the recorded FreeSWITCH events (channel uuids made unique per repetition, so every CDR is
a new row), and measures in this process:

* our worker (``start_workers``: framing, parsing, live calls, CDRs, stats, all written to
  PostgreSQL) on the ``event plain ALL`` recording and on the ``event json`` recording;
* the reference: plain greenswitch 0.0.19 ``InboundESL`` parsing the same plain stream with a
  counting handler and no database at all (it cannot parse the JSON stream).

CPU per event is this process's user+system time over the run divided by events (PostgreSQL's
own CPU is not included). Ends with one ``bench:`` line per figure.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = Path("/work/shared/fixtures/freeswitch/esl")
SENTINEL = "ffffffff-ffff-4fff-bfff-ffffffffffff"
UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def recorded_frames(name: str) -> list[bytes]:
    """The event frames of a recording (after auth and subscription replies), as raw bytes."""
    lines = (FIXTURES / name).read_text().splitlines()
    blob = b"".join(json.loads(line)["data"].encode() for line in lines if json.loads(line)["dir"] == "recv")
    frames, pos = [], 0
    while pos < len(blob):
        head = blob.index(b"\n\n", pos)
        m = re.search(rb"Content-Length: (\d+)", blob[pos:head])
        end = head + 2 + (int(m.group(1)) if m else 0)
        frames.append(blob[pos:end])
        pos = end
    return [f for f in frames if b"text/event-" in f.split(b"\n\n", 1)[0]]


def build_stream(frames: list[bytes], reps: int) -> tuple[list[bytes], int, int]:
    """Frames repeated ``reps`` times with channel uuids unique per repetition, plus a final sentinel CDR."""
    core = {u for f in frames for u in UUID_RE.findall(f)}
    out = []
    for rep in range(reps):
        tag = f"{rep:06x}".encode()
        mapping = {u: u[:-6] + tag for u in core}
        pattern = re.compile(b"|".join(re.escape(u) for u in core))
        out.extend(pattern.sub(lambda m, mp=mapping: mp[m.group(0)], f) for f in frames)  # type: ignore[misc]
    last_cdr = next(f for f in reversed(frames) if b"CHANNEL_HANGUP_COMPLETE" in f)
    channel = re.search(rb'Unique-ID(?:": "|":"|: )([0-9a-f-]{36})', last_cdr)
    assert channel is not None
    out.append(last_cdr.replace(channel.group(1), SENTINEL.encode()))
    events = len(out)
    cdrs = sum(
        1
        for f in out
        if b"CHANNEL_HANGUP_COMPLETE" in f.split(b"\n\n", 2)[1][:400]
        or b'"Event-Name":"CHANNEL_HANGUP_COMPLETE"' in f[:200]
    )
    return out, events, cdrs


def replay_server(frames: list[bytes], port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Child process: speak inbound ESL to one client at a time and stream ``frames`` as fast as TCP allows."""
    server = socket.create_server(("127.0.0.1", 0))
    port_queue.put(server.getsockname()[1])
    while True:
        sock, _ = server.accept()
        lock = threading.Lock()

        def write(data: bytes, sock: socket.socket = sock, lock: threading.Lock = lock) -> None:
            with lock:
                sock.sendall(data)

        def stream(write: object = write) -> None:
            batch: list[bytes] = []
            size = 0
            for frame in frames:
                batch.append(frame)
                size += len(frame)
                if size > 65536:
                    write(b"".join(batch))  # type: ignore[operator]
                    batch, size = [], 0
            write(b"".join(batch))  # type: ignore[operator]

        try:
            write(b"Content-Type: auth/request\n\n")
            buf = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    text = raw.decode()
                    if text.startswith("auth "):
                        write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
                    elif text.startswith("event "):
                        write(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled\n\n")
                        threading.Thread(target=stream, daemon=True).start()
                    elif text.startswith("api "):
                        body = b'{"row_count":0}'
                        write(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body))
                    else:
                        write(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
        except OSError:
            pass
        finally:
            sock.close()


def start_replay(frames: list[bytes]) -> tuple[multiprocessing.Process, int]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    proc = multiprocessing.get_context("fork").Process(target=replay_server, args=(frames, queue), daemon=True)
    proc.start()
    return proc, int(queue.get(timeout=10))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_reference(frames: list[bytes], events: int) -> tuple[float, float]:
    """greenswitch 0.0.19 as shipped, parsing the stream, counting events, no database."""
    from greenswitch.esl import InboundESL

    proc, port = start_replay(frames)
    try:
        seen = [0]
        done = gevent.event.Event()

        def count(_event: object) -> None:
            seen[0] += 1
            if seen[0] >= events:
                done.set()

        esl = InboundESL("127.0.0.1", port, "ClueCon")
        esl.connect()
        esl.register_handle("*", count)
        t0, c0 = time.perf_counter(), cpu()
        esl.send("event plain ALL")
        done.wait(timeout=600)
        elapsed, used = time.perf_counter() - t0, cpu() - c0
        esl._run = False
        esl.sock.close()
        return seen[0] / elapsed, used / max(seen[0], 1) * 1e6
    finally:
        proc.kill()


def run_ours(
    db: object, settings: object, frames: list[bytes], events: int, fmt: str, node_name: str
) -> tuple[float, float, int]:
    from controller import provisioning
    from esl_workers.inbound import WorkerConfig, start_workers

    proc, port = start_replay(frames)
    try:
        with db.transaction() as conn:  # type: ignore[attr-defined]
            conn.execute("DELETE FROM nodes")  # one node at a time: switchnames are unique
        provisioning.add_node(
            db,
            {
                "name": node_name,
                "switchname": "vm",
                "sip_address": "127.0.0.1:5060",  # type: ignore[arg-type]
                "esl_address": f"127.0.0.1:{port}",
                "esl_password": "ClueCon",
            },
        )
        config = WorkerConfig(
            spool_dir=Path(tempfile.mkdtemp()), reconcile_interval=3600, event_format=fmt, node_refresh_interval=3600
        )
        handle = start_workers(db, config)  # type: ignore[arg-type]
        watcher = next(iter(handle.watchers.values()))
        while not watcher.link.connected:
            gevent.sleep(0.001)
        t0, c0 = time.perf_counter(), cpu()
        while True:
            with db.transaction() as conn:  # type: ignore[attr-defined]
                if conn.execute("SELECT 1 FROM esl_cdrs WHERE channel_uuid = %s", (SENTINEL,)).fetchone():
                    break
            gevent.sleep(0.02)
        elapsed, used = time.perf_counter() - t0, cpu() - c0
        got = watcher.ingest.counters.events
        handle.stop()
        with db.transaction() as conn:  # type: ignore[attr-defined]
            stored = conn.execute("SELECT count(*) AS n FROM esl_cdrs").fetchone()["n"]
        if got != events:
            print(f"warning: worker counted {got} events, stream had {events}", file=sys.stderr)
        return got / elapsed, used / max(got, 1) * 1e6, int(stored)
    finally:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few thousand events)")
    args = parser.parse_args()
    from needs import check  # bench/needs.py, beside this script

    check(modules=["greenswitch"], postgres=True)
    logging.basicConfig(level=logging.ERROR)
    reps = 20 if args.quick else 200

    from controller import secrets
    from controller.config import Settings
    from controller.database import Database
    from controller.database.embedded import EmbeddedPostgres
    from sql.migrate import migrate

    plain, plain_events, _ = build_stream(recorded_frames("inbound-plain-all-events.jsonl"), reps)
    js, json_events, _ = build_stream(recorded_frames("inbound-json-events.jsonl"), reps * 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-bench-"))
    pg = EmbeddedPostgres(tmp / "pg", port=port, dbname="fsfarm")
    pg.start()
    try:
        migrate(pg.conninfo)
        db = Database(pg.conninfo, max_size=4)
        secrets.use(os.urandom(secrets.KEY_BYTES))  # the bench's own database: any key this process holds
        settings = Settings(
            database_url=None,
            state_dir=tmp,
            embedded_pg_port=port,
            xmlcurl_user="freeswitch",
            xmlcurl_password="",
            controller_address="127.0.0.1",
        )
        provisioning_tenant(db)
        ref_rate, ref_cpu = run_reference(plain, plain_events)
        our_rate, our_cpu, plain_stored = run_ours(db, settings, plain, plain_events, "plain", "bench-plain")
        json_rate, json_cpu, json_stored = run_ours(db, settings, js, json_events, "json", "bench-json")
        db.close()
    finally:
        pg.stop()
    print(
        f"plain stream: {plain_events} events, {plain_stored} CDRs stored; "
        f"json stream: {json_events} events, {json_stored} CDRs stored"
    )
    print(
        f"bench: ingest_plain_events_per_s {our_rate:.0f} events/s "
        f"(reference {ref_rate:.0f}, ratio {our_rate / ref_rate:.2f}, target 5000)"
    )
    print(
        f"bench: ingest_plain_cpu_per_event {our_cpu:.1f} us "
        f"(reference {ref_cpu:.1f}, ratio {our_cpu / ref_cpu:.2f}, target 200)"
    )
    print(
        f"bench: ingest_json_events_per_s {json_rate:.0f} events/s "
        f"(reference {ref_rate:.0f}, ratio {json_rate / ref_rate:.2f}, target 5000)"
    )
    print(
        f"bench: ingest_json_cpu_per_event {json_cpu:.1f} us "
        f"(reference {ref_cpu:.1f}, ratio {json_cpu / ref_cpu:.2f}, target 200)"
    )


def provisioning_tenant(db: object) -> None:
    from controller import provisioning

    provisioning.add_tenant(db, {"domain": "acme.test"})  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
