"""Tell every controller process that stored configuration changed (PostgreSQL NOTIFY), and listen.

The notification is sent at commit, only if the transaction commits, so a listener (the
xml_curl answer cache and snapshot, the Kamailio sync) never acts on a change that was rolled
back. ``Notice`` names every kind of change; ``ChangeListener`` is the one LISTEN loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "fsfarm_config"


class Notice(StrEnum):
    """What kind of thing changed; the values are the ``what`` of the JSON payload."""

    NODE = "node"
    MIXER = "mixer"
    PLACEMENT = "placement"
    TENANT = "tenant"
    USER = "user"
    CONFERENCE = "conference"
    IVR = "IVR"
    GATEWAY = "gateway"
    NUMBER = "number"
    UNKNOWN = "unknown"  # an unreadable notice: anything may have changed


@dataclass(frozen=True)
class Change:
    """One ``fsfarm_config`` notice: what kind of thing changed, and in which tenant (None: farm-wide)."""

    what: Notice
    tenant: UUID | None

    @classmethod
    def parse(cls, payload: str | Mapping[str, Any]) -> Change:
        """Parse a notice; anything unreadable, or of a kind not in ``Notice``, is a farm-wide UNKNOWN."""
        try:
            data = json.loads(payload) if isinstance(payload, str) else dict(payload)
            what = Notice(data.get("what"))
            tenant = data.get("tenant")
            return cls(what, UUID(tenant) if tenant else None)
        except (ValueError, TypeError, AttributeError):
            return cls(Notice.UNKNOWN, None)


def announce(conn: psycopg.Connection[Any], what: Notice, tenant_id: UUID | None = None) -> None:
    """Queue a change notice, sent when ``conn``'s transaction commits (None tenant: farm-wide)."""
    if not isinstance(what, Notice):
        raise TypeError(f"announce() takes a Notice, not {what!r}")
    payload = json.dumps({"what": what.value, "tenant": str(tenant_id) if tenant_id else None})
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


class ChangeListener:
    """LISTEN on ``fsfarm_config`` in a daemon thread (a greenlet under gevent) and hand over each notice.

    After every (re)connect ``on_connected()`` runs before any notice: notices sent while away are
    lost, so it must assume anything changed. ``on_change(change)`` runs per notice, in order. When
    the connection drops, or a callback raises, ``on_lost(exc)`` runs and the listener reconnects
    after ``retry_seconds``; ``stop()`` ends it and calls ``on_lost(None)``. ``conninfo`` and
    ``retry_seconds`` are read at each attempt.
    """

    def __init__(
        self,
        conninfo: str,
        on_change: Callable[[Change], None],
        on_connected: Callable[[], None] | None = None,
        on_lost: Callable[[Exception | None], None] | None = None,
        retry_seconds: float = 1.0,
        name: str = "fsfarm-listen",
    ) -> None:
        self.conninfo = conninfo
        self.retry_seconds = retry_seconds
        self.name = name
        self.listening = threading.Event()  # set while LISTEN is active and on_connected has run
        self._on_change = on_change
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # From here notices wait on this connection; whatever came before must be re-read.
                    if self._on_connected is not None:
                        self._on_connected()
                    self.listening.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self._on_change(Change.parse(notice.payload))
            except Exception as exc:  # the database went away (or a callback failed): report, retry
                self.listening.clear()
                if self._on_lost is not None:
                    self._on_lost(exc)
                if not self._stop.is_set():
                    log.warning("%s: change listener lost PostgreSQL (%s); retrying", self.name, exc)
                    self._stop.wait(self.retry_seconds)
        self.listening.clear()
        if self._on_lost is not None:
            self._on_lost(None)
