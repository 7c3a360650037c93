"""The web console in Debian's Chromium, measured (run by hand): ``python bench/console.py [--quick]``.

For each page, on a farm with 3 nodes and a tenant of 500 users and 1,000 CDRs, served by the
controller's app on an embedded PostgreSQL: the first contentful paint and the time until the page's
data is drawn (``#page[data-loaded]``), medians of N fresh loads, next to a blank page from the same
server as the reference (the floor of browser + server on this machine); and the bytes a first,
uncached visit loads, next to the largest of them (Pico CSS) as the reference.

Each result ends with ``bench: <name> <value> <unit> (reference <value>, ratio <x>, target <t>)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from console_browser import chromium, serving  # noqa: E402
from testsupport import free_port  # noqa: E402

from controller import provisioning, secrets  # noqa: E402
from controller.app.web import create_app  # noqa: E402
from controller.config import Settings  # noqa: E402
from controller.database import Database  # noqa: E402
from controller.database.embedded import EmbeddedPostgres  # noqa: E402
from controller.stores import cdrs, nodes, tenants  # noqa: E402
from sql.migrate import migrate  # noqa: E402

PAGES = {
    "overview": "/console/overview",
    "nodes": "/console/nodes",
    "placement": "/console/placement",
    "users": "/console/tenants/acme.test/users",
    "cdrs": "/console/tenants/acme.test/cdrs",
}


def line(name: str, value: float, unit: str, reference: float, target: str) -> None:
    ratio = value / reference if reference else float("nan")
    print(f"bench: {name} {value:.0f} {unit} (reference {reference:.0f}, ratio {ratio:.2f}, target {target})")


def seed(db: Database, users: int, records: int) -> None:
    for i in range(3):
        host = f"127.0.0.{71 + i}"
        provisioning.add_node(
            db, {"name": f"fs{i + 1}", "sip_address": host, "esl_address": host, "esl_password": "ClueCon"}
        )
    provisioning.add_tenant(db, {"domain": "acme.test"})
    for n in range(users):
        provisioning.add_child(db, "users", "acme.test", {"extension": str(1000 + n), "password": f"pw-{n}-secret"})
    with db.transaction() as conn:
        tenant = tenants.get(conn, "acme.test")
        node_id = nodes.list_all(conn)[0].id
        start = datetime.now(UTC) - timedelta(days=1)
        for n in range(records):
            at = start + timedelta(seconds=60 * n)
            cdrs.insert(
                conn, node_id, str(uuid.uuid4()), call_uuid=str(uuid.uuid4()), tenant_id=tenant.id,
                direction="inbound", caller_number=str(1000 + n % users), caller_name="", destination="1001",
                other_leg_uuid="", sip_call_id="", started_at=at, answered_at=at, ended_at=at + timedelta(seconds=40),
                duration=40, billsec=38, hangup_cause="NORMAL_CLEARING", variables={},
            )  # fmt: skip


# The first contentful paint, waiting for it when the browser has not reported it yet.
FCP = """() => new Promise((resolve) => {
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) if (e.name === "first-contentful-paint") resolve(e.startTime);
    }).observe({type: "paint", buffered: true});
})"""


def timings(page: Any) -> tuple[float, float]:
    """(first contentful paint, data drawn) in ms since the navigation started."""
    page.wait_for_selector("#page[data-loaded]", timeout=30_000)
    paint = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: NaN}).startTime")
    drawn = page.evaluate("Number(document.getElementById('page').dataset.loaded) - performance.timeOrigin")
    return float(paint), float(drawn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer loads per page")
    args = parser.parse_args()
    from needs import check  # bench/needs.py, beside this script

    check(commands=["chromium"], modules=["playwright"], postgres=True)
    rounds = 3 if args.quick else 10
    secrets.use(os.urandom(secrets.KEY_BYTES))  # a throwaway farm: its own key
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would bury the figures

    work = Path(tempfile.mkdtemp(prefix="fsfarm-bench-console-"))
    pg = EmbeddedPostgres(work / "pg", port=free_port(), dbname="fsfarm_bench")
    pg.start()
    try:
        migrate(pg.conninfo)
        db = Database(pg.conninfo, max_size=8)
        seed(db, users=100 if args.quick else 500, records=200 if args.quick else 1000)
        token, _ = provisioning.create_token(db, "farm-admin", label="bench")
        settings = Settings(database_url=None, state_dir=work / "state", embedded_pg_port=0)
        app = create_app(db, settings)

        @app.get("/bench-blank")
        def blank() -> str:  # the reference: the same server's cheapest page
            return "<!doctype html><html><body><main><h1>blank</h1></main></body></html>"

        with serving(app) as base, chromium() as browser:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/console/login")
            page.fill("#login-token input[name=token]", token)
            page.click("#login-token button")
            page.wait_for_load_state("load")

            blank_paints = []
            for _ in range(rounds):
                page.goto(f"{base}/bench-blank")
                blank_paints.append(float(page.evaluate(FCP)))
            reference = statistics.median(blank_paints)

            for name, path in PAGES.items():
                paints, drawn = [], []
                for _ in range(rounds):
                    page.goto(f"{base}{path}")
                    p, d = timings(page)
                    paints.append(p)
                    drawn.append(d)
                line(f"console_{name}_first_paint", statistics.median(paints), "ms", reference, "<= 500 ms")
                line(f"console_{name}_drawn", statistics.median(drawn), "ms", reference, "<= 1000 ms")

            # A first visit: a new context, nothing cached.
            fresh = browser.new_context()
            first = fresh.new_page()
            sizes: dict[str, int] = {}
            first.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())) if r.ok else None)
            first.goto(f"{base}/console/login")
            first.fill("#login-token input[name=token]", token)
            first.click("#login-token button")
            timings(first)
            total = sum(sizes.values())
            largest = max(sizes.values())
            line("console_first_visit_bytes", total / 1024, "KiB", largest / 1024, "<= 250 KiB")
        db.close()
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
