"""An in-process, read-only copy of everything an xml_curl answer reads, so answers need no query.

Each worker process holds the whole farm: every tenant with its enabled users (as small tuples
of the fields the directory and dialplan render), rooms, IVRs, gateways and numbers, plus the
farm-level rows (nodes, mixers, where tenants and rooms are placed). It is loaded with a handful of
bulk queries when the change listener connects, and kept current by the ``fsfarm_config``
notices: a tenant's notice reloads that tenant's rows only; a placement/node/mixer notice reloads
the farm-level rows; an unreadable notice, or a reconnect of the listener (notices may have been
missed), reloads everything. While it is not loaded (start, database away) ``ready`` is False and
the web side answers from SQL as before.

Isolation holds here as in SQL: every node-scoped read checks the tenant's placement against the
asking node, and only enabled tenants are found by domain or placement.

Readers never see a half-applied change of one tenant's rows: a tenant's rows are one immutable
``TenantRows`` swapped in with a single assignment. The listener applies a change to the snapshot
*before* it invalidates the answer cache, so an answer cached after the invalidation was built
from the new rows (see ``AnswerCache.put``'s generation check).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from controller.database import Database
from controller.domain import Conference, Gateway, Ivr, Mixer, Node, Number, Tenant
from controller.metrics import Series
from controller.stores import conferences as conference_store
from controller.stores import gateways as gateway_store
from controller.stores import ivrs as ivr_store
from controller.stores import mixers as mixer_store
from controller.stores import nodes as node_store
from controller.stores import numbers as number_store
from controller.stores import placements
from controller.stores import tenants as tenant_store
from controller.stores import users as users_store
from controller.stores.changes import Notice
from controller.stores.children import TenantChildStore

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
FETCH_CHUNK = 1000  # rows fetched and converted between two yields to the gevent hub (~5 ms of work)


class SnapUser(NamedTuple):
    """The fields of an enabled user that the directory and dialplan answers render (no id, no secrets
    beyond the a1-hashes FreeSWITCH needs)."""

    extension: str
    a1_hash: str
    display_name: str
    caller_id_name: str
    caller_id_number: str
    toll_allow: tuple[str, ...]
    accountcode: str
    ring_timeout: int
    voicemail: bool
    vm_a1_hash: str
    vm_email: str


USER_COLUMNS = users_store.ANSWER_COLUMNS  # the store reads these columns, in SnapUser's order


@dataclass(frozen=True)
class TenantRows:
    """One tenant's row and everything of it an answer reads; replaced whole when the tenant changes."""

    tenant: Tenant
    users: dict[str, SnapUser]  # extension -> enabled user
    conferences: dict[str, Conference]  # number -> room
    ivrs_by_extension: dict[str, Ivr]
    ivrs_by_name: dict[str, Ivr]
    gateways: tuple[Gateway, ...]  # by name
    numbers: tuple[Number, ...]


@dataclass(frozen=True)
class FarmRows:
    """The farm-level part: nodes, mixers and the placement of tenants and rooms."""

    nodes: dict[UUID, Node] = field(default_factory=dict)
    by_switchname: dict[str, Node] = field(default_factory=dict)
    mixers: dict[UUID, Mixer] = field(default_factory=dict)
    tenant_node: dict[UUID, UUID | None] = field(default_factory=dict)
    room_place: dict[UUID, tuple[UUID | None, UUID | None]] = field(default_factory=dict)
    by_secret: dict[str, Node] = field(default_factory=dict)  # xml_curl secret hash -> its node


def _yield() -> None:
    time.sleep(0)  # under gevent (monkey-patched) this lets requests run between chunks


class _Interner:
    """Share equal small values (toll_allow tuples, empty and repeated strings) between users."""

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        return self.values.setdefault(value, value)


def _user(row: tuple[Any, ...], intern: _Interner) -> SnapUser:
    ext, a1, display, cid_name, cid_number, toll, account, ring, vm, vm_a1, vm_email = row
    return SnapUser(
        ext,
        a1,
        intern(display),
        intern(cid_name),
        intern(cid_number),
        intern(tuple(toll)),
        intern(account),
        ring,
        vm,
        vm_a1,
        intern(vm_email),
    )


class Snapshot:
    """The farm as the xml_curl answers see it, in memory; the same reads as ``lookups.SqlReads``."""

    def __init__(self) -> None:
        self.ready = False
        self._tenants: dict[UUID, TenantRows] = {}
        self._by_domain: dict[str, UUID] = {}  # enabled tenants only
        self._numbers: dict[str, Number] = {}
        self._rooms: dict[UUID, Conference] = {}
        self._farm = FarmRows()
        # What was loaded, for tests and logs: full loads, farm-level reloads, the latest tenant reloads by id.
        self.full_loads = 0
        self.farm_loads = 0
        self.tenant_loads: deque[UUID] = deque(maxlen=100)
        self.load_seconds = 0.0
        self.generation = 0  # loads of any kind applied since the process started (the metrics' generation)

    # -- loading ---------------------------------------------------------------------------------

    def load_all(self, conn: Conn) -> None:
        """Replace everything with the database's current state, read in one REPEATABLE READ snapshot."""
        started = time.monotonic()
        self.ready = False
        intern = _Interner()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            farm = self._read_farm(conn)
            tenants = tenant_store.list_all(conn)
            users: dict[UUID, dict[str, SnapUser]] = {t.id: {} for t in tenants}
            # FETCH_CHUNK rows in memory at a time, not the whole result (a lower peak RSS).
            for chunk in users_store.answer_rows_all(conn, FETCH_CHUNK):
                for row in chunk:
                    box = users.get(row[0])
                    if box is not None:
                        box[row[1]] = _user(row[1:], intern)
                _yield()
            children = self._read_children(conn, None)
        built = {t.id: self._rows(t, users[t.id], children, t.id) for t in tenants}
        self._tenants = built
        self._by_domain = {r.tenant.domain: tid for tid, r in built.items() if r.tenant.enabled}
        self._numbers = {n.number: n for r in built.values() for n in r.numbers}
        self._rooms = {c.id: c for r in built.values() for c in r.conferences.values()}
        self._farm = farm
        self.full_loads += 1
        self.generation += 1
        self.load_seconds = time.monotonic() - started
        self.ready = True
        log.info(
            "xml_curl snapshot: %d tenants, %d users loaded in %.2f s",
            len(built),
            sum(len(r.users) for r in built.values()),
            self.load_seconds,
        )

    def load_farm(self, conn: Conn) -> None:
        """Reload nodes, mixers and placements (a placement, node or mixer notice)."""
        self._farm = self._read_farm(conn)
        self.farm_loads += 1
        self.generation += 1

    def load_tenant(self, conn: Conn, tenant_id: UUID) -> None:
        """Reload one tenant's rows and placement (a notice naming it); a deleted tenant disappears."""
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = tenant_store.get(conn, tenant_id)
            intern = _Interner()
            users = {row[0]: _user(row, intern) for row in users_store.answer_rows(conn, tenant_id)}
            children = self._read_children(conn, tenant_id)
            placed = placements.tenant_placement(conn, tenant_id)
            rooms = placements.room_places(conn, tenant_id)
        old = self._tenants.get(tenant_id)
        new = self._rows(found, users, children, tenant_id) if found else None
        # Placement first (a copy, swapped whole), then the rows, then the indexes.
        farm = self._farm
        tenant_node = dict(farm.tenant_node)
        room_place = dict(farm.room_place)
        if old is not None:
            for room in old.conferences.values():
                room_place.pop(room.id, None)
        tenant_node.pop(tenant_id, None)
        if new is not None and placed is not None:
            tenant_node[tenant_id] = placed.node_id
        room_place.update(rooms)
        self._farm = FarmRows(farm.nodes, farm.by_switchname, farm.mixers, tenant_node, room_place, farm.by_secret)
        if new is not None:
            self._tenants[tenant_id] = new
            for room in new.conferences.values():
                self._rooms[room.id] = room
            for number in new.numbers:
                self._numbers[number.number] = number
        else:
            self._tenants.pop(tenant_id, None)
        if old is not None:
            kept_rooms = new.conferences if new is not None else {}
            kept_ids = {c.id for c in kept_rooms.values()}
            for room in old.conferences.values():
                if room.id not in kept_ids:
                    self._rooms.pop(room.id, None)
            kept_numbers = {n.number for n in new.numbers} if new is not None else set()
            for number in old.numbers:
                held = self._numbers.get(number.number)
                if number.number not in kept_numbers and held is not None and held.tenant_id == tenant_id:
                    del self._numbers[number.number]
            if self._by_domain.get(old.tenant.domain) == tenant_id and (
                new is None or not new.tenant.enabled or new.tenant.domain != old.tenant.domain
            ):
                del self._by_domain[old.tenant.domain]
        if new is not None and new.tenant.enabled:
            self._by_domain[new.tenant.domain] = tenant_id
        self.tenant_loads.append(tenant_id)
        self.generation += 1

    @staticmethod
    def _read_farm(conn: Conn) -> FarmRows:
        nodes = node_store.list_all(conn)
        mixers = mixer_store.list_all(conn)
        tenant_node = placements.tenant_nodes(conn)
        room_place = placements.room_places(conn)
        return FarmRows(
            {n.id: n for n in nodes},
            {n.switchname: n for n in nodes},
            {m.id: m for m in mixers},
            tenant_node,
            room_place,
            {n.xmlcurl_secret_hash: n for n in nodes if n.xmlcurl_secret_hash},
        )

    @staticmethod
    def _read_children(conn: Conn, tenant_id: UUID | None) -> dict[str, dict[UUID, list[Any]]]:
        """Rooms, IVRs, gateways and numbers grouped by tenant (of one tenant, or of all)."""
        out: dict[str, dict[UUID, list[Any]]] = {}
        kinds: tuple[tuple[str, TenantChildStore[Any]], ...] = (
            ("conferences", conference_store.store),
            ("ivrs", ivr_store.store),
            ("gateways", gateway_store.store),
            ("numbers", number_store.store),
        )
        for kind, store in kinds:
            grouped: dict[UUID, list[Any]] = {}
            for record in store.rows_of(conn, tenant_id):
                grouped.setdefault(record.tenant_id, []).append(record)
            out[kind] = grouped
        return out

    @staticmethod
    def _rows(
        tenant: Tenant, users: dict[str, SnapUser], children: dict[str, dict[UUID, list[Any]]], tenant_id: UUID
    ) -> TenantRows:
        ivrs: list[Ivr] = children["ivrs"].get(tenant_id, [])
        by_extension: dict[str, Ivr] = {}
        for ivr in ivrs:
            if ivr.extension:
                by_extension.setdefault(ivr.extension, ivr)
        return TenantRows(
            tenant=tenant,
            users=users,
            conferences={c.number: c for c in children["conferences"].get(tenant_id, [])},
            ivrs_by_extension=by_extension,
            ivrs_by_name={i.name: i for i in ivrs},
            gateways=tuple(sorted(children["gateways"].get(tenant_id, []), key=lambda g: g.name)),
            numbers=tuple(children["numbers"].get(tenant_id, [])),
        )

    def users_count(self) -> int:
        return sum(len(r.users) for r in list(self._tenants.values()))

    # -- reads (the same as lookups.SqlReads, for one asking node) ---------------------------------

    def node(self, switchname: str) -> Node | None:
        return self._farm.by_switchname.get(switchname)

    def node_by_secret(self, digest: str) -> Node | None:
        """The node whose xml_curl password hashes to ``digest``."""
        return self._farm.by_secret.get(digest)

    def placed_tenant(self, domain: str, node_id: UUID) -> Tenant | None:
        tenant_id = self._by_domain.get(domain.lower())
        return self.tenant_on_node(tenant_id, node_id) if tenant_id is not None else None

    def tenant_on_node(self, tenant_id: UUID, node_id: UUID) -> Tenant | None:
        if self._farm.tenant_node.get(tenant_id) != node_id:
            return None
        found = self._tenants.get(tenant_id)
        return found.tenant if found is not None and found.tenant.enabled else None

    def tenants_on_node(self, node_id: UUID) -> list[Tenant]:
        placed = self._farm.tenant_node
        every = list(self._tenants.values())  # one atomic copy: the listener may add or drop a tenant meanwhile
        return sorted(
            (r.tenant for r in every if r.tenant.enabled and placed.get(r.tenant.id) == node_id), key=lambda t: t.domain
        )

    def gateways_on_node(self, node_id: UUID) -> list[tuple[Tenant, Gateway]]:
        out = [(t, g) for t in self.tenants_on_node(node_id) for g in self._tenants[t.id].gateways]
        return sorted(out, key=lambda tg: (tg[0].domain, tg[1].name))

    def tenant(self, tenant_id: UUID) -> Tenant | None:
        found = self._tenants.get(tenant_id)
        return found.tenant if found is not None else None

    def user(self, tenant_id: UUID, extension: str) -> SnapUser | None:
        found = self._tenants.get(tenant_id)
        return found.users.get(extension) if found is not None else None

    def conference(self, tenant_id: UUID, number: str) -> Conference | None:
        found = self._tenants.get(tenant_id)
        return found.conferences.get(number) if found is not None else None

    def conference_by_id(self, room_id: UUID) -> Conference | None:
        return self._rooms.get(room_id)

    def ivr_by_extension(self, tenant_id: UUID, extension: str) -> Ivr | None:
        found = self._tenants.get(tenant_id)
        return found.ivrs_by_extension.get(extension) if found is not None else None

    def ivr_by_name(self, tenant_id: UUID, name: str) -> Ivr | None:
        found = self._tenants.get(tenant_id)
        return found.ivrs_by_name.get(name) if found is not None else None

    def gateways(self, tenant_id: UUID) -> list[Gateway]:
        found = self._tenants.get(tenant_id)
        return list(found.gateways) if found is not None else []

    def number(self, did: str) -> Number | None:
        candidates = [did, did[1:]] if did.startswith("+") else [did, "+" + did]
        found = [n for n in (self._numbers.get(c) for c in candidates) if n is not None]
        return max(found, key=lambda n: n.number) if found else None

    def conference_place(self, room_id: UUID) -> tuple[Node | None, Mixer | None]:
        farm = self._farm
        node_id, mixer_id = farm.room_place.get(room_id, (None, None))
        return (farm.nodes.get(node_id) if node_id else None, farm.mixers.get(mixer_id) if mixer_id else None)

    def all_nodes(self) -> list[Node]:
        return sorted(self._farm.nodes.values(), key=lambda n: n.name)

    def all_mixers(self) -> list[Mixer]:
        return sorted(self._farm.mixers.values(), key=lambda m: m.name)

    def domains(self) -> Iterable[str]:
        return self._by_domain.keys()


FARM_KINDS = frozenset({Notice.PLACEMENT, Notice.NODE, Notice.MIXER})  # farm-wide notices touching only farm rows


def _trim_heap() -> None:
    """Give the memory the load used only transiently back to the system (glibc keeps it otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class SnapshotKeeper:
    """Keeps a ``Snapshot`` current for the change listener: loaded when it (re)connects, patched per notice
    (each load's time and the generation it made recorded in ``metrics`` when given)."""

    def __init__(self, db: Database, snapshot: Snapshot, freeze_gc: bool = True, metrics: Series | None = None) -> None:
        self.db = db
        self.snapshot = snapshot
        self.freeze_gc = freeze_gc
        self.metrics = metrics

    def _loaded(self, scope: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.snapshot_loaded(scope, time.perf_counter() - started, self.snapshot.generation)

    def reload_all(self) -> None:
        started = time.perf_counter()
        with self.db.reads() as conn:
            self.snapshot.load_all(conn)
        self._loaded("all", started)
        if self.freeze_gc:
            # The snapshot lives as long as the process: keep the collector from walking it again and again.
            gc.collect()
            gc.freeze()
        _trim_heap()

    def apply(self, what: Notice, tenant: UUID | None) -> None:
        """Bring the snapshot up to date with one notice (before the answer cache drops anything)."""
        started = time.perf_counter()
        if tenant is not None:
            with self.db.reads() as conn:
                self.snapshot.load_tenant(conn, tenant)
            self._loaded("tenant", started)
        elif what in FARM_KINDS:
            with self.db.reads() as conn:
                self.snapshot.load_farm(conn)
            self._loaded("farm", started)
        else:  # an unreadable or unknown farm-wide notice: anything may have changed
            self.reload_all()

    def lost(self) -> None:
        """PostgreSQL went away: keep answering from memory, so a database outage does not stop the nodes.

        While the database is away nothing can be written to it; whatever a notice missed meanwhile is
        caught by the full reload the listener runs as soon as it is back (``load_all``).
        """
        if self.snapshot.ready:
            log.warning("xml_curl keeps answering from its snapshot until PostgreSQL is back")
