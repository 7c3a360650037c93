"""Shared storage and node join, measured (run by hand): ``python bench/storage.py [--quick]``.

- prompt upload (WAV check + atomic write) and voicemail download (read) through each backend,
  in MB/s, next to a plain file copy of the same bytes on the same disk as the reference;
- time from running a node's rendered join script to "ready for placement" (the node is active
  and a waiting tenant is placed on it) against a local controller, next to one bare HTTP
  round trip with curl as the reference.

Each result ends with ``bench: <name> <value> <unit> (reference <value>, ratio <x>, target <t>)``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.storage import TenantFiles, prompts
from controller.storage.audio import make_wav
from controller.storage.base import Storage
from controller.storage.gluster import GlusterStorage
from controller.storage.local import LocalStorage


def line(name: str, value: float, unit: str, reference: float, target: str) -> None:
    ratio = value / reference if reference else float("nan")
    print(f"bench: {name} {value:.2f} {unit} (reference {reference:.2f}, ratio {ratio:.2f}, target {target})")


def best_rate(fn: Callable[[int], None], size: int, rounds: int) -> float:
    """MB/s of the fastest of ``rounds`` runs (the least disturbed by the rest of the machine)."""
    best = float("inf")
    for i in range(rounds):
        start = time.perf_counter()
        fn(i)
        best = min(best, time.perf_counter() - start)
    return size / best / 1e6


def plain_rates(data: bytes, rounds: int) -> tuple[float, float]:
    """The references: a plain file copy (for uploads) and a plain file read (for downloads)."""
    folder = Path(tempfile.mkdtemp(prefix="fsfarm-bench-copy-"))
    source = folder / "source.wav"
    source.write_bytes(data)
    try:
        copy = best_rate(lambda i: shutil.copyfile(source, folder / f"copy-{i}.wav"), len(data), rounds)
        read = best_rate(lambda i: (folder / f"copy-{i}.wav").read_bytes(), len(data), rounds)
        return copy, read
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def storage_rates(storage: Storage, data: bytes, rounds: int) -> tuple[float, float]:
    tenant = uuid.uuid4()
    files = TenantFiles(storage, tenant)
    upload = best_rate(lambda i: prompts.upload(storage, tenant, f"bench-{i}.wav", data), len(data), rounds)
    download = best_rate(lambda i: files.get("prompts", f"bench-{i}.wav"), len(data), rounds)
    for i in range(rounds):
        files.delete("prompts", f"bench-{i}.wav")
    return upload, download


def bench_storage(quick: bool) -> None:
    seconds = 60 if quick else 300  # a 5-minute 16 kHz prompt is 9.6 MB
    data = make_wav(seconds, 16000)
    rounds = 3 if quick else 8
    copy_ref, read_ref = plain_rates(data, rounds)
    backends: list[tuple[str, Storage]] = [("local", LocalStorage(tempfile.mkdtemp(prefix="fsfarm-bench-local-")))]
    from tests.storage.glusterd import running_gluster, why_no_gluster

    reason = why_no_gluster()
    context = None
    if reason is None:
        context = running_gluster()
        volume = context.__enter__()
        backends.append(("gluster", GlusterStorage(volume.host, volume.volume, volume.port)))
    else:
        print(f"# gluster backend skipped: {reason}")
    try:
        for name, storage in backends:
            upload, download = storage_rates(storage, data, rounds)
            target = "0.50" if name == "local" else "0.10"
            line(f"prompt_upload_{name}", upload, "MB/s", copy_ref, f">= {target} of plain copy")
            line(f"voicemail_download_{name}", download, "MB/s", read_ref, f">= {target} of plain read")
    finally:
        if context is not None:
            context.__exit__(None, None, None)


def bench_join() -> None:
    from werkzeug.serving import make_server

    from controller import provisioning, secrets
    from controller.app.web import create_app
    from controller.config import Settings
    from controller.database import Database
    from controller.database.embedded import EmbeddedPostgres
    from controller.join import activate_on_first_heartbeat
    from controller.stores import nodes
    from sql.migrate import migrate
    from tests.conftest import free_port
    from tests.terraform.rendering import render

    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-bench-join-"))
    pg = EmbeddedPostgres(tmp / "pg", port=free_port(), dbname="postgres")
    pg.start()
    db = Database(pg.conninfo, max_size=4)
    secrets.use(os.urandom(secrets.KEY_BYTES))  # the bench's own database: any key this process holds
    server = None
    try:
        migrate(pg.conninfo)
        settings = Settings(
            database_url=pg.conninfo,
            state_dir=tmp / "state",
            embedded_pg_port=0,
            xmlcurl_user="freeswitch",
            xmlcurl_password="x",
            controller_address="127.0.0.1",
        )
        port = free_port()
        server = make_server("127.0.0.1", port, create_app(db, settings), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        provisioning.add_tenant(db, {"domain": "waiting.example"})
        token, _ = provisioning.create_token(db, "node-join")
        template = Path(__file__).resolve().parents[1] / "terraform/modules/cloud_init/templates/join.sh.tftpl"
        script = tmp / "join.sh"
        script.write_text(
            render(
                template.read_text(),
                {
                    "controller_url": url,
                    "join_token": token,
                    "node_name": "fs1",
                    "advertise_address": "127.0.0.1",
                    "capacity": "1000",
                    "spare": "false",
                    "conf_dir": str(tmp / "conf"),
                },
            )
        )

        start = time.perf_counter()
        subprocess.run(["sh", str(script)], check=True, capture_output=True, env={**os.environ})
        with db.transaction() as conn:
            node = nodes.get(conn, "fs1")
            assert node is not None
            # The ESL room's first HEARTBEAT for this node.
            nodes.set_health(conn, node.id, "up", "first heartbeat")
            activate_on_first_heartbeat(conn, node.id)
        placed = provisioning.placement_overview(db)["tenants"][0]["node"] == "fs1"
        elapsed = time.perf_counter() - start
        assert placed
        start = time.perf_counter()
        subprocess.run(["curl", "-fsS", "-o", "/dev/null", f"{url}/healthz"], check=True)
        reference = time.perf_counter() - start
        line("join_to_ready", elapsed * 1000, "ms", reference * 1000, "< 2000 ms (without the heartbeat wait)")
    finally:
        if server is not None:
            server.shutdown()
        db.close()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller files and fewer rounds")
    args = parser.parse_args()
    from needs import check  # bench/needs.py, beside this script

    check(commands=["curl"], postgres=True)  # without glusterd the gluster backend is skipped, said so
    bench_storage(args.quick)
    bench_join()


if __name__ == "__main__":
    main()
