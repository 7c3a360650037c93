"""Keep a running Kamailio's routes in step with placement: reload on every change, and check.

Hears the ``fsfarm_config`` notices through ``controller.stores.changes.ChangeListener``; a change
that can move routes (placement, nodes, tenants, numbers, an unreadable notice) triggers one reload
(changes arriving together are folded into one), then the domains Kamailio holds are compared with
the database. It also syncs once each time the listener (re)connects, since notices sent meanwhile
were missed. A failed or incomplete reload is retried with backoff and reported in ``status``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import psycopg

from controller.errors import FarmError
from controller.kamailio.control import KamailioControl
from controller.stores import kamailio
from controller.stores.changes import Change, ChangeListener, Notice

log = logging.getLogger(__name__)

ROUTING_CHANGES = frozenset({Notice.PLACEMENT, Notice.NODE, Notice.TENANT, Notice.NUMBER, Notice.UNKNOWN})
FOLD_SECONDS = 0.05  # how long a burst of notices (one provisioning call sends several) is gathered


@dataclass
class KamailioSync:
    """A thread (a greenlet under gevent) that reloads Kamailio after routing changes."""

    conninfo: str
    control: KamailioControl
    status: str = "not started"
    reloads: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _wanted: threading.Event = field(default_factory=threading.Event)  # a sync is due
    _thread: threading.Thread | None = None
    _listener: ChangeListener | None = None

    def start(self) -> KamailioSync:
        self._listener = ChangeListener(
            self.conninfo, self._heard, on_connected=self._wanted.set, on_lost=self._lost, name="kamailio-listen"
        )
        self._listener.start()
        self._thread = threading.Thread(target=self._run, name="kamailio-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()  # wake the sync thread so it sees the stop
        if self._listener is not None:
            self._listener.stop()
        if self._thread:
            self._thread.join(timeout=5)

    def sync_once(self) -> str:
        """Reload and verify; return the sentence describing the outcome."""
        try:
            held = self.control.reload()
        except FarmError as exc:
            return f"reload failed: {exc.message}"
        with psycopg.connect(self.conninfo) as conn:
            want = kamailio.domains(conn)
            want_nodes = kamailio.dispatcher_destinations(conn)
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

    def _heard(self, change: Change) -> None:
        if change.what in ROUTING_CHANGES:
            self._wanted.set()

    def _lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.status = f"database unreachable ({exc}); retrying"

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.wait(FOLD_SECONDS):  # fold a burst of notices into one reload
                return
            self._wanted.clear()
            try:
                self.status = self.sync_once()
            except psycopg.OperationalError as exc:
                self.status = f"database unreachable ({exc}); retrying"
            log.info("kamailio: %s", self.status)
            if self.status.startswith("reloaded;"):
                backoff = 0.5
                continue
            self._wanted.set()  # still due: tried again after the backoff
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
