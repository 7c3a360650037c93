"""The failover loop: notice dead nodes, decide once, move their tenants and rooms to a spare.

Like Patroni's HA loop, one ``run_cycle()`` looks at the farm once, acts at most once per dead
node, and returns one plain sentence saying what it did and why; the caller logs it.

Death is the ESL watcher's verdict (``health = down``: heartbeats missed and the reconnect
failed), or ``suspect`` (heartbeats missed) confirmed by Kamailio's failing OPTIONS pings. The
decision is a row in ``failovers``, unique per (node, incident): several controllers may run
this loop, one advisory lock lets one of them act, and the unique key catches the rest.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.assignment import reassign
from controller.database import Database
from controller.domain import AdminState, FailoverState, Node, NodeHealth
from controller.errors import FarmError
from controller.kamailio.control import KamailioControl
from controller.stores import changes, conferences, failovers, nodes, placements, tenants
from controller.stores.changes import Notice
from controller.takeover import Takeover

log = logging.getLogger(__name__)

FAILOVER_LOCK = 0x6661696C  # "fail"
REDISPATCH_AFTER = 60.0  # seconds a queued failover may stay unfinished before it is queued again

Dispatch = Callable[[UUID], None]
AfterMove = Callable[[Database, failovers.Failover], dict[str, Any]]
Release = Callable[[Database], list[str]]


@dataclass(frozen=True)
class Verdict:
    """A node found dead this cycle, and why."""

    node: Node
    reason: str


def dead_nodes(all_nodes: Sequence[Node], unreachable_sip: set[str]) -> list[Verdict]:
    """Pure: which non-spare nodes count as dead given ESL health and Kamailio's witness."""
    verdicts = []
    for node in all_nodes:
        if node.spare or node.admin_state == AdminState.DISABLED:
            continue
        if node.health == NodeHealth.DOWN:
            verdicts.append(Verdict(node, f"the ESL watcher declared it down ({node.health_reason or 'no reason'})"))
        elif node.health == NodeHealth.SUSPECT and node.sip_address in unreachable_sip:
            verdicts.append(
                Verdict(
                    node,
                    f"it missed heartbeats ({node.health_reason or 'suspect'}) and Kamailio's OPTIONS pings fail too",
                )
            )
    return verdicts


def choose_spare(all_nodes: Sequence[Node]) -> Node | None:
    """Pure: the spare to take over: healthy first, then the biggest, then by name."""
    candidates = [
        n for n in all_nodes if n.spare and n.admin_state == AdminState.ACTIVE and n.health != NodeHealth.DOWN
    ]
    order = {NodeHealth.UP: 0, NodeHealth.UNKNOWN: 1, NodeHealth.SUSPECT: 2}
    candidates.sort(key=lambda n: (order.get(n.health, 3), -n.capacity, n.name))
    return candidates[0] if candidates else None


def incident_of(node: Node) -> str:
    """The death this decision is about: the node's health timestamp identifies it."""
    return node.health_at.isoformat() if node.health_at else "unknown"


@dataclass
class FailoverLoop:
    """One controller's failover loop; ``run_cycle`` is called every ``interval`` seconds."""

    db: Database
    controller_id: str = field(default_factory=lambda: f"controller-{uuid.uuid4().hex[:8]}")
    kamailio: KamailioControl | None = None
    dispatch: Dispatch | None = None  # runs the move (a Celery task); None: inline
    after_move: Sequence[AfterMove] = ()
    interval: float = 0.5
    takeover: Takeover | None = None  # None: the heir never takes the dead node's address
    release: Release | None = None  # gives adopted addresses back once their recovered calls are over

    def run_cycle(self) -> str:
        sentence = self._run_cycle()
        if self.release is None:
            return sentence
        try:
            released = self.release(self.db)
        except FarmError as exc:
            released = [f"could not check adopted addresses: {exc.message}"]
        return "; ".join([sentence, *released]) if released else sentence

    def _run_cycle(self) -> str:
        try:
            unreachable = self.kamailio.unreachable() if self.kamailio else set()
        except FarmError:
            unreachable = set()  # Kamailio is a witness, not a precondition
        try:
            return self._cycle(unreachable)
        except FarmError as exc:
            return f"did nothing this cycle: {exc.message}"

    def _cycle(self, unreachable: set[str]) -> str:
        decided: list[tuple[failovers.Failover, str]] = []
        with self.db.transaction() as conn:
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", [FAILOVER_LOCK]).fetchone()
            if not got or not got["got"]:
                return "another controller holds the failover lock; watching only"
            # Work a crash or a database blip left half done goes first: its unique key would block a new decision.
            unfinished = failovers.unfinished(conn)
            all_nodes = nodes.list_all(conn)
            rejoined = self._rejoin_as_spares(conn, all_nodes)
            rejoined += self._place_the_unplaced(conn)
            verdicts = dead_nodes(all_nodes, unreachable)
            for verdict in verdicts:
                node = verdict.node
                if not placements.tenants_on_node(conn, node.id) and not placements.count_rooms_on(conn, node.id):
                    continue
                taken = {f.spare_id for f, _ in decided}  # two deaths in one cycle need two spares
                spare = choose_spare([n for n in all_nodes if n.id not in taken])
                row = failovers.decide(
                    conn,
                    uuid.uuid4(),
                    node.id,
                    incident_of(node),
                    spare.id if spare else None,
                    verdict.reason,
                    self.controller_id,
                    node.health_at,
                )
                if row is not None:
                    target = f"spare {spare.name}" if spare else "the surviving nodes (no spare is free)"
                    decided.append((row, f"node {node.name}: {verdict.reason}; moving its work to {target}"))
        sentences = [*rejoined]
        names = {n.id: n.name for n in all_nodes}
        for row in unfinished:
            name = names.get(row.node_id, row.node_name or str(row.node_id))
            if self.dispatch is not None:
                # A queued task may still be on its way: hand it to the workers again only once it is overdue.
                stamp = row.updated_at or row.created_at
                if stamp is None or (datetime.now(UTC) - stamp).total_seconds() > REDISPATCH_AFTER:
                    self.dispatch(row.id)
                    sentences.append(f"queued again the failover of node {name}, left {row.state}")
                continue
            done = execute(self.db, row.id, self.kamailio, self.after_move, self.takeover)
            sentences.append(
                f"resumed the unfinished failover of node {name} (it was left {row.state}): "
                f"{done.tenants_moved} tenant(s) moved, generation {done.generation}"
            )
        for row, sentence in decided:
            if self.dispatch is not None:
                self.dispatch(row.id)
                sentences.append(sentence + " (queued)")
            else:
                done = execute(self.db, row.id, self.kamailio, self.after_move, self.takeover)
                sentences.append(sentence + f": {done.tenants_moved} tenant(s) moved, generation {done.generation}")
        if sentences:
            return "; ".join(sentences)
        down = [n.name for n in all_nodes if n.health == NodeHealth.DOWN and not n.spare]
        if down:
            # Only what is true now: whether a failover ever ran for them is in `fsfarm failover list`.
            return f"node(s) {', '.join(down)} are down and host no tenant or room; nothing to do"
        return f"all {len(all_nodes)} node(s) are alive or spare; nothing to do"

    def _rejoin_as_spares(self, conn: psycopg.Connection[Any], all_nodes: Sequence[Node]) -> list[str]:
        """A failed-over node that is healthy again becomes a spare, so its tenants do not ping-pong.

        Only while another node can take tenants: a farm must never be left with spares and no active node.
        """
        out = []
        for node in all_nodes:
            if node.spare or node.health != NodeHealth.UP or placements.tenants_on_node(conn, node.id):
                continue
            if not any(n.id != node.id and n.placeable for n in all_nodes):
                continue
            history = failovers.for_node(conn, node.id)
            if (
                history
                and history[-1].state == FailoverState.DONE
                and history[-1].updated_at
                and node.health_at
                and node.health_at > history[-1].updated_at
            ):
                nodes.update(conn, node.id, {"spare": True})
                changes.announce(conn, Notice.NODE)
                out.append(
                    f"node {node.name} is healthy again after its failover; it rejoins as a spare "
                    "so its tenants do not move back and forth"
                )
        return out

    def _place_the_unplaced(self, conn: psycopg.Connection[Any]) -> list[str]:
        """Tenants left on no node (every node was down when placement last ran) go to a node that is back."""
        unplaced = placements.unplaced_tenants(conn)
        if not unplaced or not any(n.placeable for n in nodes.list_all(conn)):
            return []
        generation = reassign(conn, f"{len(unplaced)} tenant(s) were on no node and a node can take them")
        if generation is None:
            return []
        return [f"{len(unplaced)} tenant(s) were on no node; placed them (generation {generation.generation})"]


TAKEN = "address taken: "
KEPT = "address kept: "


def _takeover_verdict(db: Database, failover_id: UUID, takeover: Takeover | None) -> str:
    """Before the move: may the spare take the dead node's address? (fences it when told how)."""
    with db.transaction() as conn:
        row = failovers.get(conn, failover_id)
        if row is None or row.state != FailoverState.DECIDED or row.spare_id is None:
            return ""
        dead, heir = nodes.get(conn, row.node_id), nodes.get(conn, row.spare_id)
    if dead is None or heir is None:
        return ""
    if takeover is None:
        return KEPT + "this controller does not move addresses"
    verdict = takeover.decide(dead, heir, crashed=dead.health == NodeHealth.DOWN)
    return (TAKEN if verdict.allowed else KEPT) + verdict.sentence


def execute(
    db: Database,
    failover_id: UUID,
    kamailio: KamailioControl | None = None,
    after_move: Sequence[AfterMove] = (),
    takeover: Takeover | None = None,
) -> failovers.Failover:
    """Carry out a decided failover; safe to run again after a crash at any point.

    First ``takeover`` decides whether the spare may take the dead node's SIP and media address
    (fencing the node when told how). The move is one transaction (tenants, rooms, the two nodes'
    addresses swapped when allowed, placement generation, state 'moved'); a retry after it committed
    skips it, so nothing moves twice. Then Kamailio is reloaded and the ``after_move`` steps run
    (flush the spare's caches, adopt the dead node's calls, recreate rooms), and the row is 'done'.
    """
    verdict = _takeover_verdict(db, failover_id, takeover)
    with db.transaction() as conn:
        row = failovers.get(conn, failover_id, lock=True)
        if row is None:
            raise FarmError(f"no failover {failover_id}")
        if row.state == FailoverState.DECIDED:
            placements.lock(conn)
            moved_tenants = placements.tenants_on_node(conn, row.node_id)
            rooms = placements.count_rooms_on(conn, row.node_id)
            dead = nodes.get(conn, row.node_id)
            if row.spare_id:
                # The spare takes the dead node's place wholesale: same tenants, same rooms.
                nodes.update(conn, row.spare_id, {"spare": False, "admin_state": AdminState.ACTIVE})
                placements.move_node(conn, row.node_id, row.spare_id)
                # Pins follow too: the spare stands in for the dead node, so what was kept together stays so.
                tenants.repin(conn, row.node_id, row.spare_id)
                conferences.repin(conn, row.node_id, row.spare_id)
                if verdict.startswith(TAKEN) and dead is not None:
                    # The heir answers at the dead node's address too (an extra SIP profile there) until
                    # the calls it recovers there are over.
                    nodes.update(conn, dead.id, {"heir_id": row.spare_id})
                    changes.announce(conn, Notice.NODE)
            if dead and dead.health != NodeHealth.DOWN:
                # Declared dead on a witness: make placement see it as dead too.
                nodes.set_health(conn, dead.id, NodeHealth.DOWN, row.reason)
            generation = reassign(conn, f"failover of node {dead.name if dead else row.node_id}: {row.reason}")
            if generation is None:
                # Placement rows were rewritten above; stamp them with a generation anyway
                # (reassign announced nothing, so announce here; otherwise it already did).
                generation = placements.record(
                    conn, f"failover of {dead.name if dead else row.node_id}", {}, {}, len(moved_tenants)
                )
                changes.announce(conn, Notice.PLACEMENT)
            row = failovers.update(
                conn,
                row.id,
                {
                    "state": FailoverState.MOVED,
                    "tenants_moved": len(moved_tenants),
                    "rooms_total": rooms,
                    "generation": generation.generation,
                    "takeover": verdict,
                },
            )
            assert row is not None
    if row.state == FailoverState.DONE:
        return row
    outcome: dict[str, Any] = {}
    reloaded: list[str] = []
    # Kamailio's reload (new calls) and the after-move steps (the calls in progress) run side by side.
    reload = threading.Thread(target=lambda: reloaded.append(reload_kamailio(kamailio)), daemon=True)
    if kamailio is not None:
        reload.start()
    for step in after_move:
        try:
            outcome.update(step(db, row))
        except Exception as exc:  # a failed extra step is reported, the move stands
            log.exception("failover step %s failed", getattr(step, "__name__", step))
            outcome["error"] = f"{getattr(step, '__name__', 'step')}: {exc}"
    if kamailio is not None:
        reload.join()
        outcome["kamailio"] = reloaded[0] if reloaded else "reload did not finish"
    with db.transaction() as conn:
        done = failovers.update(
            conn, row.id, {**outcome, "state": FailoverState.DONE, "completed_at": datetime.now(UTC)}
        )
        assert done is not None
    return done


def reload_kamailio(kamailio: KamailioControl, attempts: int = 3) -> str:
    """Reload Kamailio's routes; a failure is reported, never fatal (the placement is stored)."""
    last = ""
    for _ in range(attempts):
        try:
            held = kamailio.reload()
            return f"reloaded ({len(held)} domains)"
        except FarmError as exc:
            last = exc.message
    return f"reload failed after {attempts} attempts: {last}"
