"""Keep a running Kamailio's routes in step with placement: reload on every change, and check.

Listens on the ``fsfarm_config`` channel; a change that can move routes (placement, nodes,
tenants, numbers) triggers one reload (changes arriving together are folded into one), then
the domains Kamailio holds are compared with the database. A failed or incomplete reload is
retried with backoff and reported in ``status``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import psycopg

from controller.errors import FarmError
from controller.kamailio.control import KamailioControl
from controller.stores.changes import CHANNEL

log = logging.getLogger(__name__)

ROUTING_CHANGES = {"placement", "node", "tenant", "number"}


def expected_domains(conn: psycopg.Connection[object]) -> dict[str, str]:
    rows = conn.execute("SELECT key_name, key_value FROM kamailio_domains").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}  # type: ignore[index]


@dataclass
class KamailioSync:
    """A thread (a greenlet under gevent) that reloads Kamailio after routing changes."""

    conninfo: str
    control: KamailioControl
    status: str = "not started"
    reloads: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> KamailioSync:
        self._thread = threading.Thread(target=self._run, name="kamailio-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def sync_once(self) -> str:
        """Reload and verify; return the sentence describing the outcome."""
        try:
            held = self.control.reload()
        except FarmError as exc:
            return f"reload failed: {exc.message}"
        with psycopg.connect(self.conninfo) as conn:
            want = expected_domains(conn)
            want_nodes = {str(r[0]) for r in conn.execute("SELECT destination FROM kamailio_dispatcher")}
        self.reloads += 1
        try:
            held_nodes = set(self.control.destinations())
        except FarmError as exc:
            return f"reload failed: {exc.message}"
        if held_nodes != want_nodes:
            return f"reloaded but Kamailio holds {len(held_nodes)} of {len(want_nodes)} node destinations"
        if held != want:
            missing = sorted(set(want) - set(held))[:5]
            return f"reloaded but Kamailio holds {len(held)} of {len(want)} domains (missing {missing})"
        return f"reloaded; Kamailio routes {len(want)} domains as placed"

    def _run(self) -> None:
        backoff = 0.5
        pending = True  # sync once at start: Kamailio may have been started before us
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        if pending:
                            self.status = self.sync_once()
                            log.info("kamailio: %s", self.status)
                            pending = not self.status.startswith("reloaded;")
                            if pending:
                                time.sleep(backoff)
                                backoff = min(backoff * 2, 10.0)
                                continue
                            backoff = 0.5
                        for notice in conn.notifies(timeout=0.5, stop_after=1):
                            pending = pending or _routing(notice.payload)
                        if pending:
                            # Fold a burst of changes (one provisioning call sends several) into one reload.
                            for notice in conn.notifies(timeout=0.05):
                                pending = pending or _routing(notice.payload)
            except psycopg.OperationalError as exc:
                self.status = f"database unreachable ({exc}); retrying"
                time.sleep(1.0)


def _routing(payload: str) -> bool:
    try:
        return json.loads(payload).get("what") in ROUTING_CHANGES
    except (ValueError, AttributeError):
        return False
