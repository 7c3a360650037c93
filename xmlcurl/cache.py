"""Answers cached per (node, section, key), dropped when the database says what changed.

Every controller process keeps its own cache and its own LISTEN connection on ``fsfarm_config``
(``controller.stores.changes.ChangeListener``: a background thread that reconnects; the cache is
cleared after a gap since notices may have been missed). A short TTL is the safety net.
``flush_orders`` tells the ESL room which nodes must drop FreeSWITCH's own caches after a change.
"""

from __future__ import annotations

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
from controller.stores.changes import Change, Notice
from xmlcurl import lookups
from xmlcurl.answers import Answer

RESCAN_NOTICES = frozenset({Notice.GATEWAY, Notice.PLACEMENT, Notice.TENANT, Notice.UNKNOWN})
ACL_NOTICES = frozenset({Notice.NODE, Notice.MIXER, Notice.UNKNOWN})  # acl.conf lists the nodes and mixers


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
        self.invalidate(Change(Notice.UNKNOWN, None))

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
    def apply(self, what: Notice, tenant: UUID | None) -> None: ...
    def lost(self) -> None: ...


class ChangeListener(changes.ChangeListener):
    """The shared ``fsfarm_config`` listener, invalidating the answer cache on every notice.

    With a ``keeper`` (the snapshot): after LISTEN it reloads everything (notices may have been
    missed while away), and each notice is applied to it *before* the cache drops the answers, so
    an answer stored after the drop was built from the new rows. ``on_change`` runs last.
    """

    def __init__(
        self,
        conninfo: str,
        cache: AnswerCache,
        on_change: Callable[[Change], None] | None = None,
        retry_seconds: float = 1.0,
        keeper: Keeper | None = None,
    ) -> None:
        super().__init__(
            conninfo,
            self._changed,
            on_connected=self._connected,
            on_lost=self._lost,
            retry_seconds=retry_seconds,
            name="xmlcurl-listen",
        )
        self.cache = cache
        self.on_change = on_change
        self.keeper = keeper

    def _connected(self) -> None:
        # Start from an empty cache and a full reload; notices committed from now on wait for us.
        self.cache.clear()
        if self.keeper is not None:
            self.keeper.reload_all()
            self.cache.clear()

    def _changed(self, change: Change) -> None:
        if self.keeper is not None:
            self.keeper.apply(change.what, change.tenant)
        self.cache.invalidate(change)
        if self.on_change is not None:
            self.on_change(change)

    def _lost(self, exc: Exception | None) -> None:
        # Keep serving from a cleared cache (and SQL) until the next connect reloads everything.
        if self.keeper is not None:
            self.keeper.lost()
        if exc is not None:
            self.cache.clear()


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
    mixers, an unreadable notice), or one of a tenant placed nowhere (just deleted: its node still
    holds what it fetched), concerns every node.
    """
    if not isinstance(change, Change):
        change = Change.parse(change)
    commands: list[str] = ["xml_flush_cache"]
    if change.what in RESCAN_NOTICES:
        commands.append(f"sofia profile {sip_profile} rescan")  # gateways are loaded at (re)scan
    if change.what in ACL_NOTICES:
        commands.append("reloadacl")
    every = lookups.all_nodes(conn)
    if change.tenant is None:
        targets = every
    else:
        node_id = placements.tenant_node(conn, change.tenant)
        targets = [n for n in every if n.id == node_id] if node_id is not None else every
    return [FlushOrder(node, tuple(commands)) for node in targets]
