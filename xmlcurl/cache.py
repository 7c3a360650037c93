"""Answers cached per (node, section, key), dropped when the database says what changed.

Every controller process keeps its own cache and its own LISTEN connection on ``fsfarm_config``
(a background thread that reconnects, and clears everything after a gap since notices may have
been missed). A short TTL is the safety net. ``flush_orders`` tells the ESL room which nodes must
drop FreeSWITCH's own caches after a change.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import psycopg

from controller.domain import Node, Tenant
from controller.stores import changes, placements
from xmlcurl import lookups
from xmlcurl.answers import Answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One ``fsfarm_config`` notice: what kind of thing changed, and in which tenant (None: farm-wide)."""

    what: str
    tenant: UUID | None

    @classmethod
    def parse(cls, payload: str | Mapping[str, Any]) -> Change:
        """Parse a notice; anything unreadable counts as a farm-wide change (the safe reading)."""
        try:
            data = json.loads(payload) if isinstance(payload, str) else dict(payload)
            tenant = data.get("tenant")
            return cls(str(data.get("what") or "unknown"), UUID(tenant) if tenant else None)
        except (ValueError, TypeError, AttributeError):
            return cls("unknown", None)


class AnswerCache:
    """LRU of rendered answers with a TTL; thread-safe, indexed by the tenants each answer depends on."""

    def __init__(
        self, ttl: float = 30.0, max_entries: int = 200_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.generation = 0  # bumped on every invalidation: an answer built before it is not stored
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, Answer]] = OrderedDict()
        self._by_tenant: dict[UUID, set[Hashable]] = {}
        self._farm_wide: set[Hashable] = set()
        self._nodes: dict[str, tuple[float, Node | None]] = {}
        # (node id, domain) -> the enabled tenant with that domain placed on that node, or None
        self._placed: dict[tuple[UUID, str], tuple[float, Tenant | None]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < self.clock():
                self.misses += 1
                if entry is not None:
                    self._drop(key)
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1].body

    def put(self, key: Hashable, answer: Answer, generation: int) -> None:
        """Store unless something changed since ``generation`` was read (the answer may be stale)."""
        with self._lock:
            if generation != self.generation:
                return
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self.clock() + self.ttl, answer)
            if answer.tenants is None:
                self._farm_wide.add(key)
            else:
                for tenant in answer.tenants:
                    self._by_tenant.setdefault(tenant, set()).add(key)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))

    def node(self, switchname: str) -> tuple[bool, Node | None]:
        """(known, node) for a switchname: cached lookups of which node is asking."""
        with self._lock:
            entry = self._nodes.get(switchname)
            if entry is None or entry[0] < self.clock():
                return False, None
            return True, entry[1]

    def put_node(self, switchname: str, node: Node | None, generation: int) -> None:
        with self._lock:
            if generation == self.generation and len(self._nodes) < 10_000:
                self._nodes[switchname] = (self.clock() + self.ttl, node)

    def placed(self, node_id: UUID, domain: str) -> tuple[bool, Tenant | None]:
        """(known, tenant) for a domain asked by a node: the cached placement lookup."""
        with self._lock:
            entry = self._placed.get((node_id, domain))
            if entry is None or entry[0] < self.clock():
                return False, None
            return True, entry[1]

    def put_placed(self, node_id: UUID, domain: str, tenant: Tenant | None, generation: int) -> None:
        with self._lock:
            if generation == self.generation and self.ttl > 0:
                if len(self._placed) >= 100_000:
                    self._placed.clear()
                self._placed[(node_id, domain)] = (self.clock() + self.ttl, tenant)

    def invalidate(self, change: Change) -> int:
        """Drop what ``change`` may affect; return how many answers went."""
        with self._lock:
            self.generation += 1
            if change.tenant is None:
                dropped = len(self._entries)
                self._entries.clear()
                self._by_tenant.clear()
                self._farm_wide.clear()
                self._nodes.clear()
                self._placed.clear()
                return dropped
            # The tenant's own placements, and every "not placed here" (its domain may have moved in).
            for placed_key in [k for k, (_, t) in self._placed.items() if t is None or t.id == change.tenant]:
                del self._placed[placed_key]
            keys = self._by_tenant.pop(change.tenant, set()) | set(self._farm_wide)
            for key in keys:
                self._drop(key)
            return len(keys)

    def clear(self) -> None:
        self.invalidate(Change("resync", None))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        self._farm_wide.discard(key)
        if entry is not None and entry[1].tenants:
            for tenant in entry[1].tenants:
                keys = self._by_tenant.get(tenant)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._by_tenant[tenant]


class Keeper(Protocol):
    """What the listener keeps current besides the cache (``xmlcurl.snapshot.SnapshotKeeper``)."""

    def reload_all(self) -> None: ...
    def apply(self, what: str, tenant: UUID | None) -> None: ...
    def lost(self) -> None: ...


class ChangeListener:
    """LISTEN on ``fsfarm_config`` in a daemon thread and invalidate the cache on every notice.

    With a ``keeper`` (the snapshot): after LISTEN it reloads everything (notices may have been
    missed while away), and each notice is applied to it *before* the cache drops the answers, so
    an answer stored after the drop was built from the new rows.
    """

    def __init__(
        self,
        conninfo: str,
        cache: AnswerCache,
        on_change: Callable[[Change], None] | None = None,
        retry_seconds: float = 1.0,
        keeper: Keeper | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.cache = cache
        self.on_change = on_change
        self.retry_seconds = retry_seconds
        self.keeper = keeper
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="xmlcurl-listen", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {changes.CHANNEL}")
                    # Notices sent while we were away are lost: start from an empty cache and a full
                    # reload; notices committed from now on wait on this connection until we read them.
                    self.cache.clear()
                    if self.keeper is not None:
                        self.keeper.reload_all()
                        self.cache.clear()
                    self.listening.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            change = Change.parse(notice.payload)
                            if self.keeper is not None:
                                self.keeper.apply(change.what, change.tenant)
                            self.cache.invalidate(change)
                            if self.on_change is not None:
                                self.on_change(change)
            except Exception as exc:  # the database went away: keep serving from a cleared cache, retry
                self.listening.clear()
                if self.keeper is not None:
                    self.keeper.lost()
                self.cache.clear()
                if not self._stop.is_set():
                    log.warning("xml_curl change listener lost PostgreSQL (%s); retrying", exc)
                    self._stop.wait(self.retry_seconds)
        self.listening.clear()
        if self.keeper is not None:
            self.keeper.lost()


@dataclass(frozen=True)
class FlushOrder:
    """ESL commands one node must run so FreeSWITCH drops what it cached or loaded before a change."""

    node: Node
    commands: tuple[str, ...]


def flush_orders(
    conn: psycopg.Connection[Any], change: Change | str | Mapping[str, Any], sip_profile: str = "internal"
) -> list[FlushOrder]:
    """Which nodes need ``xml_flush_cache`` (and what else) after a change; the ESL room sends them.

    A tenant's change concerns only the node it is placed on; a farm-wide one (nodes, placement,
    mixers, an unreadable notice) concerns every node.
    """
    if not isinstance(change, Change):
        change = Change.parse(change)
    commands: list[str] = ["xml_flush_cache"]
    if change.what in ("gateway", "placement", "tenant", "unknown"):
        commands.append(f"sofia profile {sip_profile} rescan")  # gateways are loaded at (re)scan
    if change.what in ("node", "mixer", "unknown"):
        commands.append("reloadacl")
    every = lookups.all_nodes(conn)
    if change.tenant is None:
        targets = every
    else:
        node_id = placements.tenant_node(conn, change.tenant)
        targets = [n for n in every if n.id == node_id]
    return [FlushOrder(node, tuple(commands)) for node in targets]
