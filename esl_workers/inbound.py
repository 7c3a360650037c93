"""One supervised inbound ESL connection per node: events in, live state and CDRs out to PostgreSQL.

``start_workers(db, settings)`` watches every registered node (and nodes added later) from the
current process; it needs a gevent hub and works in a monkey-patched process (``fsfarm up``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import gevent
import gevent.event
import gevent.lock
import psycopg
from greenswitch.esl import NotConnectedError

from controller.config import Settings
from controller.database import Database
from controller.domain import ESL_PORT, AdminState, HostPort, Node, NodeHealth
from controller.errors import FarmError, Unavailable
from controller.metrics import Series
from controller.storage.base import Storage
from controller.stores import legs_up, live_calls, nodes
from esl_workers import calls, cdr, commands, conferences, liveness, registrations, voicemail
from esl_workers.connection import FarmEvent, FarmInboundESL
from esl_workers.enforce import Enforcer
from esl_workers.protocol import Event
from esl_workers.spool import CdrSpool
from esl_workers.tenancy import TenantCache

log = logging.getLogger(__name__)

# Runs in the transaction that records a node as up (the wiring passes controller.join's activation).
NodeUpHook = Callable[[psycopg.Connection[Any], UUID], object]

SUBSCRIBED_EVENTS = (
    "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE HEARTBEAT "
    "BACKGROUND_JOB CUSTOM sofia::register sofia::unregister sofia::expire conference::maintenance vm::maintenance"
)


@dataclass(frozen=True)
class WorkerConfig:
    """Timings of the watchers; ``from_settings`` takes the FSFARM_ESL_* overrides."""

    spool_dir: Path
    heartbeat_interval: float = 20.0  # FreeSWITCH's default; the observed gap replaces it after two beats
    check_interval: float = 0.25
    reconcile_interval: float = 60.0
    backoff_min: float = 0.2
    backoff_max: float = 10.0
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    db_retry_interval: float = 2.0
    node_refresh_interval: float = 5.0
    event_format: str = "json"
    shared_mount: str = ""  # where nodes mount shared storage: recorded voicemail under it is registered

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """The watchers' view of the farm's settings (FSFARM_ESL_*, FSFARM_SHARED_MOUNT)."""
        return cls(
            spool_dir=settings.esl_spool,
            heartbeat_interval=settings.esl.heartbeat_interval,
            reconcile_interval=settings.esl.reconcile_interval,
            backoff_max=settings.esl.backoff_max,
            shared_mount=settings.storage.shared_mount,
        )


@dataclass
class Counters:
    events: int = 0
    foreign: int = 0
    cdrs_written: int = 0
    cdrs_spooled: int = 0
    dropped_while_db_down: int = 0
    failed_events: int = 0
    connects: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Ingest:
    """Turns a batch of one node's events into database writes (CDRs spooled while PostgreSQL is away)."""

    def __init__(self, db: Database, node: Node, config: WorkerConfig) -> None:
        self.db = db
        self.node = node
        self.config = config
        self.tenants = TenantCache()
        self.spool = CdrSpool(config.spool_dir / f"cdr-{node.id}.jsonl")
        self.db_down_until = 0.0
        self.counters = Counters()
        self.on_db_back: Callable[[], None] | None = None
        self.storage: Storage | None = None  # set by the caller: where recorded voicemail lands
        self.enforcer: Enforcer | None = None  # set by the caller: re-times billed legs after each batch
        self.metrics: Series | None = None  # set by the caller: where each event's lag is recorded
        self.shared_mount = config.shared_mount
        self._warned_foreign = 0.0
        self._lock = gevent.lock.RLock()  # the spool replay tick and the event batches write in turn

    def accept(self, event: Event) -> bool:
        """Events from another switch on this socket are refused: never stored under the wrong node."""
        switch = event.get("FreeSWITCH-Switchname")
        if not switch or switch == self.node.switchname:
            return True
        self.counters.foreign += 1
        now = time.monotonic()
        if now - self._warned_foreign > 10:
            self._warned_foreign = now
            log.warning(
                "node %s: event %s from unknown switch %r (expected %r) dropped; %d so far",
                self.node.name,
                event.name,
                switch,
                self.node.switchname,
                self.counters.foreign,
            )
        return False

    def _tenant_ids(self, conn: psycopg.Connection[Any], domains: set[str]) -> dict[str, UUID | None]:
        return {d: self.tenants.resolve(conn, d) for d in domains if d}

    def _apply(self, conn: psycopg.Connection[Any], event: Event) -> None:
        node_id = self.node.id
        change = calls.from_event(event)
        if change is not None:
            if change.call is None:
                live_calls.remove(conn, node_id, change.channel_uuid)
            else:
                live_calls.upsert(conn, node_id, change.call, self.tenants.resolve(conn, change.call.tenant_domain))
        reg = registrations.from_event(event)
        if reg is not None:
            registrations.apply(conn, node_id, reg, self.tenants.resolve(conn, reg.realm))
        member = conferences.from_event(event)
        if member is not None:
            domain = conferences.domain_of_room(member.conference_name) or event.get("Caller-Context")
            conferences.apply(conn, node_id, member, self.tenants.resolve(conn, domain))
        stats = liveness.stats_from_event(event)
        if stats is not None:
            liveness.store_stats(conn, node_id, stats)
        if event.name == "BACKGROUND_JOB":
            commands.finish_job(conn, event.get("Job-UUID"), event.body or "")

    def _write_cdrs(self, conn: psycopg.Connection[Any], cdrs: list[cdr.Cdr]) -> int:
        ids = self._tenant_ids(conn, {c.tenant_domain for c in cdrs})
        return cdr.insert_many(conn, self.node.id, cdrs, ids)

    def replay_spool(self) -> int:
        """Insert every spooled CDR in order, then empty the spool; raises Unavailable if the DB is away."""
        pending = self.spool.pending()
        if not pending:
            self.spool.clear()
            return 0
        with self.db.transaction() as conn:
            written = self._write_cdrs(conn, pending)
        self.spool.clear()
        self.counters.cdrs_written += written
        log.info("node %s: replayed %d spooled CDR(s), %d new", self.node.name, len(pending), written)
        return written

    def retry_spool(self) -> None:
        """Replay the spool if PostgreSQL may be back (called periodically when no events arrive)."""
        if not self.spool or time.monotonic() < self.db_down_until:
            return
        with self._lock:
            try:
                self.replay_spool()
            except Unavailable:
                self.db_down_until = time.monotonic() + self.config.db_retry_interval
                return
        if self.on_db_back is not None:
            self.on_db_back()

    def handle(self, events: list[Event]) -> None:
        """Store one batch of the node's events (or spool its CDRs), then record each event's lag."""
        with self._lock:
            accepted = [e for e in events if self.accept(e)]
            self._handle(accepted)
            self._record_lag(accepted)

    def _record_lag(self, events: list[Event]) -> None:
        if self.metrics is None:
            return
        now = time.time()  # Event-Date-Timestamp is the node's wall clock, in microseconds since the epoch
        for event in events:
            stamp = event.get("Event-Date-Timestamp")
            if stamp.isdigit():
                self.metrics.esl_lag(self.node.name, now - int(stamp) / 1_000_000)

    def _handle(self, events: list[Event]) -> None:
        self.counters.events += len(events)
        cdrs = [c for c in map(cdr.from_event, events) if c is not None]
        now = time.monotonic()
        if now < self.db_down_until:
            self._spool(cdrs, len(events) - len(cdrs))
            return
        try:
            was_spooling = bool(self.spool)
            if was_spooling:
                self.replay_spool()
            self._write(events, cdrs)
            self._register_voicemail(events)
            self._enforce(events)
            if was_spooling and self.on_db_back is not None:
                self.on_db_back()
        except Unavailable as exc:
            log.warning(
                "node %s: database unreachable (%s); spooling CDRs to %s",
                self.node.name,
                exc.detail or exc.message,
                self.spool.path,
            )
            self.db_down_until = time.monotonic() + self.config.db_retry_interval
            self._spool(cdrs, len(events) - len(cdrs))

    def _enforce(self, events: list[Event]) -> None:
        """After the batch (and its CDRs) committed: re-time the accounts whose billed legs answered or ended."""
        if self.enforcer is None:
            return
        try:
            self.enforcer.after_commit(self.node, events)
        except FarmError as exc:  # the legs keep their node-side limits; the next answer or hangup re-times
            log.warning("node %s: billed legs not re-timed (%s)", self.node.name, exc.message)

    def _register_voicemail(self, events: list[Event]) -> None:
        """Recordings are read from shared storage after the batch commits, off the ingest path."""
        if self.storage is None or not self.shared_mount:
            return
        for event in events:
            deposit = voicemail.from_event(event, self.shared_mount)
            if deposit is not None:
                gevent.spawn(voicemail.register, self.db, self.storage, deposit)

    def _spool(self, cdrs: list[cdr.Cdr], others: int) -> None:
        self.counters.cdrs_spooled += self.spool.append(cdrs)
        self.counters.dropped_while_db_down += others  # live state is rebuilt by the reconcile afterwards

    def _write(self, events: list[Event], cdrs: list[cdr.Cdr]) -> None:
        try:
            with self.db.transaction() as conn, conn.pipeline():  # one round trip per batch, not per row
                for event in events:
                    self._apply(conn, event)
                self._write_cdrs(conn, cdrs)
            self.counters.cdrs_written += len(cdrs)  # rows skipped as duplicates are counted too
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise Unavailable("the database cannot be reached", str(exc)) from exc
            log.warning(
                "node %s: batch of %d events failed (%s); retrying one by one", self.node.name, len(events), exc
            )
            self._write_one_by_one(events)

    def _write_one_by_one(self, events: list[Event]) -> None:
        with self.db.transaction() as conn:
            for event in events:
                try:
                    with conn.transaction():
                        self._apply(conn, event)
                        c = cdr.from_event(event)
                        if c is not None:
                            self.counters.cdrs_written += self._write_cdrs(conn, [c])
                except psycopg.Error as exc:
                    if isinstance(exc, psycopg.OperationalError):
                        raise
                    self.counters.failed_events += 1
                    log.error(
                        "node %s: event %s (uuid %s) could not be stored: %s",
                        self.node.name,
                        event.name,
                        event.get("Unique-ID") or event.get("Job-UUID"),
                        exc,
                    )


class NodeWatcher:
    """Keeps one node's ESL connection up, feeds its events to ``Ingest`` and judges its health."""

    def __init__(self, db: Database, node: Node, config: WorkerConfig) -> None:
        self.db = db
        self.node = node
        self.config = config
        self.ingest = Ingest(db, node, config)
        self.on_node_up: NodeUpHook | None = None  # set by Workers: what the wiring runs when a node comes up
        self.ingest.on_db_back = self.request_reconcile
        self.link = liveness.Link(
            connected=False, heartbeat_interval=config.heartbeat_interval, seen_alive=node.seen_alive_at is not None
        )
        self.written_health: NodeHealth | None = None
        self.verdict = liveness.Verdict(NodeHealth.UNKNOWN, "not started")
        self.conn: FarmInboundESL | None = None
        self._stopping = gevent.event.Event()
        self._reconcile_now = gevent.event.Event()
        self._last_beat_stamp: int | None = None
        self._greenlets: list[gevent.Greenlet] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> NodeWatcher:
        self._greenlets = [gevent.spawn(self._supervise), gevent.spawn(self._judge)]
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        if self.conn is not None:
            self.conn.stop(timeout=1.0)
        gevent.joinall(self._greenlets, timeout=timeout)
        for g in self._greenlets:
            if not g.dead:
                g.kill(block=True, timeout=timeout)

    @property
    def greenlets(self) -> list[gevent.Greenlet]:
        extra = []
        if self.conn is not None:
            extra = [g for g in (self.conn._receive_events_greenlet, self.conn._process_events_greenlet) if g]
        return [*self._greenlets, *extra]

    def request_reconcile(self) -> None:
        self._reconcile_now.set()

    # ---------------------------------------------------------------- connection

    def _supervise(self) -> None:
        backoff = self.config.backoff_min
        esl = HostPort.parse(self.node.esl_address, ESL_PORT)
        while not self._stopping.is_set():
            conn = FarmInboundESL(
                esl.host,
                esl.port,
                self.node.esl_password,
                timeout=self.config.connect_timeout,
                label=f"node {self.node.name}",
            )
            conn.command_timeout = self.config.command_timeout
            conn.batch_handler = self._on_batch
            self.conn = conn
            try:
                conn.connect()
                conn.send(f"event {self.config.event_format} {SUBSCRIBED_EVENTS}")
                self.ingest.counters.connects += 1
                now = time.monotonic()
                self.link = replace(
                    self.link, connected=True, connected_at=now, last_heartbeat_at=None, failures=0, last_error=""
                )
                self._last_beat_stamp = None
                backoff = self.config.backoff_min
                log.info("node %s: ESL connected to %s", self.node.name, esl)
                self._serve(conn)
                reason = conn.close_reason or "closed"
                self.link = replace(self.link, connected=False, last_error=reason)
                if not self._stopping.is_set():
                    log.warning("node %s: ESL connection lost: %s", self.node.name, reason)
            except (NotConnectedError, OSError) as exc:
                self.link = replace(
                    self.link,
                    connected=False,
                    failures=self.link.failures + 1,
                    last_error=str(exc) or type(exc).__name__,
                )
                log.info("node %s: ESL connect failed (%s); retry in %.1fs", self.node.name, exc, backoff)
            finally:
                conn.stop(timeout=1.0)
            if self._stopping.wait(timeout=backoff * random.uniform(0.8, 1.2)):
                break
            backoff = min(backoff * 2, self.config.backoff_max)

    def _serve(self, conn: FarmInboundESL) -> None:
        self._reconcile(conn)
        while not self._stopping.is_set() and not conn.closed.is_set():
            self._reconcile_now.clear()
            due = time.monotonic() + self.config.reconcile_interval
            while not (conn.closed.is_set() or self._stopping.is_set() or self._reconcile_now.is_set()):
                left = due - time.monotonic()
                if left <= 0:
                    break
                gevent.wait(
                    [conn.closed, self._stopping, self._reconcile_now],
                    count=1,
                    timeout=min(left, self.config.db_retry_interval),
                )
                self.ingest.retry_spool()
            if conn.closed.is_set() or self._stopping.is_set():
                return
            self._reconcile(conn)

    def _reconcile(self, conn: FarmInboundESL) -> None:
        """Align the live-call table with ``show channels``: zombies out, missed channels in."""
        try:
            body = conn.api("show channels as json")
            present = calls.from_show_channels(body)
            with self.db.transaction() as tx:
                ids = {c.tenant_domain: self.ingest.tenants.resolve(tx, c.tenant_domain) for c in present}
                added, removed = live_calls.reconcile(tx, self.node.id, present, ids)
                legs_up.drop_missing(tx, self.node.id, [c.channel_uuid for c in present])
            if added or removed:
                log.info(
                    "node %s: reconcile added %d missed call(s), removed %d zombie(s)", self.node.name, added, removed
                )
            if self.ingest.enforcer is not None:
                self.ingest.enforcer.node_reconciled(self.node)
        except (NotConnectedError, Unavailable, ValueError) as exc:
            log.warning("node %s: reconcile skipped: %s", self.node.name, exc)

    def _on_batch(self, batch: list[FarmEvent]) -> None:
        events = [e.event for e in batch if e.event is not None]
        for event in events:
            if event.name == "HEARTBEAT" and self.ingest.accept(event):
                self._note_heartbeat(event)
        self.ingest.handle(events)

    def _note_heartbeat(self, event: Event) -> None:
        stamp = int(event.get("Event-Date-Timestamp") or 0)
        interval = self.link.heartbeat_interval
        if self._last_beat_stamp and stamp > self._last_beat_stamp:
            interval = (stamp - self._last_beat_stamp) / 1_000_000
        self._last_beat_stamp = stamp
        self.link = replace(self.link, last_heartbeat_at=time.monotonic(), heartbeat_interval=interval)

    # ---------------------------------------------------------------- health

    def _judge(self) -> None:
        while not self._stopping.wait(timeout=self.config.check_interval):
            self.judge_once()

    def judge_once(self) -> liveness.Verdict:
        verdict = liveness.assess(self.link, time.monotonic())
        self.verdict = verdict
        if verdict.health == NodeHealth.DOWN and self.link.connected and self.conn is not None:
            log.warning("node %s: %s; dropping the silent connection", self.node.name, verdict.reason)
            self.conn.stop(timeout=1.0)
        if verdict.health != self.written_health:
            try:
                with self.db.transaction() as tx:
                    nodes.set_health(tx, self.node.id, verdict.health, verdict.reason)
                    if verdict.health == NodeHealth.UP and self.on_node_up is not None:
                        # A node that joined by itself takes tenants only once it is heard from.
                        self.on_node_up(tx, self.node.id)
                log.info("node %s is %s: %s", self.node.name, verdict.health, verdict.reason)
                self.written_health = verdict.health
                if verdict.health == NodeHealth.UP:
                    self.link = replace(self.link, seen_alive=True)
            except Unavailable:
                pass  # written on a later tick, once the database is back
        return verdict


class Workers:
    """The handle ``start_workers`` returns: one watcher per node, kept in step with the nodes table."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        storage: Storage | None = None,
        on_node_up: NodeUpHook | None = None,
        metrics: Series | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.watchers: dict[UUID, NodeWatcher] = {}
        self.storage = storage
        self.on_node_up = on_node_up
        self.enforcer = Enforcer(db, lambda node, command: commands.run_api(node, command, config.command_timeout))
        self.metrics = metrics
        self._stopping = gevent.event.Event()
        self._refresher: gevent.Greenlet | None = None

    def refresh(self) -> None:
        """Start watchers for new nodes, restart changed ones, stop removed or disabled ones."""
        with self.db.transaction() as conn:
            wanted = {n.id: n for n in nodes.list_all(conn) if n.admin_state != AdminState.DISABLED}
        for node_id, watcher in list(self.watchers.items()):
            node = wanted.get(node_id)
            same = node is not None and (node.esl_address, node.esl_password, node.switchname) == (
                watcher.node.esl_address,
                watcher.node.esl_password,
                watcher.node.switchname,
            )
            if not same:
                watcher.stop()
                del self.watchers[node_id]
        for node_id, node in wanted.items():
            if node_id not in self.watchers:
                watcher = NodeWatcher(self.db, node, self.config)
                watcher.ingest.storage = self.storage
                watcher.ingest.enforcer = self.enforcer
                watcher.ingest.metrics = self.metrics
                watcher.on_node_up = self.on_node_up
                self.watchers[node_id] = watcher.start()

    def _refresh_loop(self) -> None:
        while not self._stopping.wait(timeout=self.config.node_refresh_interval):
            try:
                self.refresh()
            except Unavailable as exc:
                log.warning("cannot list nodes: %s", exc.detail or exc.message)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every watcher and the refresher; returns once no greenlet of ours is left."""
        self._stopping.set()
        if self._refresher is not None:
            self._refresher.kill(block=True, timeout=timeout)
        for watcher in list(self.watchers.values()):
            watcher.stop(timeout=timeout)
        self.watchers.clear()

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "node": w.node.name,
                "health": w.verdict.health,
                "reason": w.verdict.reason,
                "connected": w.link.connected,
                "events": w.ingest.counters.events,
                "cdrs_spooled": w.ingest.counters.cdrs_spooled,
            }
            for w in self.watchers.values()
        ]

    def counters(self) -> dict[str, dict[str, int]]:
        """Per node name: this process's ingest counters and its CDR spool's depth (for the metrics)."""
        return {
            w.node.name: {
                "events": w.ingest.counters.events,
                "cdrs_written": w.ingest.counters.cdrs_written,
                "cdrs_spooled": w.ingest.counters.cdrs_spooled,
                "dropped_while_db_down": w.ingest.counters.dropped_while_db_down,
                "failed_events": w.ingest.counters.failed_events,
                "connects": w.ingest.counters.connects,
                "spool_depth": w.ingest.spool.depth(),
            }
            for w in list(self.watchers.values())
        }


def start_workers(
    db: Database,
    config: WorkerConfig,
    *,
    storage: Storage | None = None,
    on_node_up: NodeUpHook | None = None,
    metrics: Series | None = None,
) -> Workers:
    """Watch every node from this (gevent) process; call ``.stop()`` on the result to shut down.

    ``storage`` is where recorded voicemail is registered (the storage the API serves it from);
    ``on_node_up(conn, node_id)`` runs in the transaction that records a node as up; ``metrics``
    gets each event's lag (``/metrics`` reads the counters from ``Workers.counters``).
    """
    workers = Workers(db, config, storage, on_node_up, metrics)
    try:
        workers.refresh()
    except Unavailable as exc:
        log.warning("cannot list nodes yet (%s); will retry", exc.detail or exc.message)
    workers._refresher = gevent.spawn(workers._refresh_loop)
    return workers
