"""A PostgreSQL outage: how long a request waits before it is told 503, and how soon it is served again.

Side by side in one run, on one embedded PostgreSQL that is stopped and started again: fsfarm's
``Database`` (gives up once the server refuses connections, serves callers on a direct connection
while the pool is still reconnecting) against the reference, the same pool that simply waits its
whole timeout (``outage_wait`` equal to the 10 s timeout, which is what fsfarm did before).
Figures: median seconds until ``Unavailable`` during the outage, and seconds from the server
being back to the first answered query. ``--quick`` takes fewer samples.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from controller.errors import Unavailable


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until_refused(db: Database, samples: int) -> float:
    times = []
    for _ in range(samples):
        start = time.monotonic()
        try:
            with db.transaction() as conn:
                conn.execute("SELECT 1")
            raise RuntimeError("answered during the outage")
        except Unavailable:
            times.append(time.monotonic() - start)
    return statistics.median(times)


def until_served(db: Database) -> float:
    start = time.monotonic()
    while True:
        try:
            with db.transaction() as conn:
                conn.execute("SELECT 1")
            return time.monotonic() - start
        except Unavailable:
            continue


def line(name: str, value: float, unit: str, reference: float, target: str) -> str:
    ratio = value / reference if reference else float("inf")
    return f"bench: {name} {value:.3g} {unit} (reference {reference:.3g}, ratio {ratio:.2f}, target {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    samples = 2 if args.quick else 5
    logging.disable(logging.WARNING)  # the pool logs every failed reconnect
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="fsfarm-bench-outage-")) / "data", port=free_port())
    server.start()
    ours = Database(server.conninfo, max_size=4)
    reference = Database(server.conninfo, max_size=4, outage_wait=10.0)
    try:
        for db in (ours, reference):
            with db.transaction() as conn:
                conn.execute("SELECT 1")
        server.stop()
        refused = until_refused(ours, samples)
        refused_ref = until_refused(reference, samples)
        time.sleep(5)  # long enough for the pools' reconnect backoff to grow, as in a real outage
        server.start()
        back = until_served(ours)
        back_ref = until_served(reference)
    finally:
        ours.close()
        reference.close()
        server.stop()
    print(line("outage_answer", refused, "s", refused_ref, "< 1 s"))
    print(line("outage_served_again", back, "s", back_ref, "< 2 s"))


if __name__ == "__main__":
    main()
