"""``fsfarm status``: one screen saying what is wrong with the farm and what to do, in plain sentences.

``findings(reading)`` is a pure function from a ``FarmReading`` to sentences; ``read_farm`` takes the
reading (the database, plus the live facts the running controller's rooms report through
``app.extensions[PROBES_KEY]``: the xml_curl snapshot, the CDR spools, Kamailio sync).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import AdminState, MixerAdminState, MixerHealth, NodeHealth
from controller.stores import mixers as mixer_store
from controller.stores import nodes as node_store
from controller.stores import placements
from controller.stores import tenants as tenant_store

# app.extensions key: name -> callable returning that room's live facts as plain JSON values.
PROBES_KEY = "fsfarm.status"
# A spool that has not changed for this long while PostgreSQL answers is not draining (retries run every 2 s).
SPOOL_STUCK_SECONDS = 30.0


@dataclass(frozen=True)
class NodeFact:
    name: str
    esl_address: str
    spare: bool
    admin_state: AdminState
    health: NodeHealth
    health_reason: str
    seen_alive: bool
    tenants: int


@dataclass(frozen=True)
class MixerFact:
    name: str
    admin_state: MixerAdminState
    health: MixerHealth


@dataclass(frozen=True)
class SpoolFact:
    node: str
    cdrs: int
    idle_seconds: float  # since the spool file last changed
    path: str


@dataclass(frozen=True)
class FarmReading:
    """What status judges: the farm's rows plus what the running controller knows (None: not known)."""

    nodes: tuple[NodeFact, ...] = ()
    tenants: int = 0
    unplaced: tuple[str, ...] = ()  # enabled tenants on no node
    mixers: tuple[MixerFact, ...] = ()
    controller: str | None = None  # why no controller answered (not running); None: it answered or refused
    unasked: str | None = None  # a running controller refused to answer (its live facts are missing)
    kamailio: str | None = None  # the Kamailio sync's last outcome; None: no Kamailio configured
    snapshot_ready: bool | None = None  # xml_curl answers from its in-memory snapshot; None: not in use
    spools: tuple[SpoolFact, ...] = ()

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warning" or "error"
    text: str

    def public(self) -> dict[str, str]:
        return {"level": self.level, "text": self.text}


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def findings(reading: FarmReading) -> list[Finding]:
    """Everything wrong with the farm, worst first, each with what to do; one "all is well" when nothing is."""
    out: list[Finding] = []
    if reading.controller is not None:
        out.append(
            Finding(
                "error",
                f"The controller is not running ({reading.controller}): start it with "
                "`fsfarm up`; until then no node gets its configuration and nobody watches them.",
            )
        )
    if reading.unasked is not None:
        out.append(
            Finding(
                "warning",
                f"The running controller would not answer ({reading.unasked}): what only it knows (the xml_curl "
                "snapshot, CDR spools, Kamailio sync) is left out of this status.",
            )
        )
    if not reading.nodes:
        out.append(
            Finding(
                "warning",
                "No FreeSWITCH node is registered: add one with `fsfarm node add NAME --sip "
                "HOST --esl HOST:8021 --esl-password PASSWORD`.",
            )
        )
    for node in reading.nodes:
        if node.admin_state == AdminState.DISABLED:
            continue
        if node.health == NodeHealth.DOWN and node.seen_alive:
            said = f" Its watcher said: {node.health_reason}." if node.health_reason else ""
            out.append(
                Finding(
                    "error",
                    f"Node {node.name} is down: restart FreeSWITCH there (`fsfarm freeswitch bootstrap --node "
                    f"{node.name}` prints the command line); the controller watches it again at once.{said}",
                )
            )
        elif node.health == NodeHealth.SUSPECT and node.seen_alive:
            out.append(
                Finding(
                    "warning",
                    f"Node {node.name} is suspect ({node.health_reason or 'heartbeats late'}): it is failed over "
                    "if it stays silent, or at once when Kamailio's pings to it fail too; check its load and network.",
                )
            )
        elif not node.seen_alive and node.health != NodeHealth.UP:
            out.append(
                Finding(
                    "warning",
                    f"Node {node.name} has never been seen alive: start FreeSWITCH on it "
                    f"(`fsfarm freeswitch bootstrap --node {node.name}` prints the command "
                    f"line) and check that the controller reaches its ESL at "
                    f"{node.esl_address}.",
                )
            )
    if reading.unplaced:
        count = len(reading.unplaced)
        out.append(
            Finding(
                "error",
                f"{count} tenant{'s are' if count > 1 else ' is'} on no node "
                f"({_names(list(reading.unplaced))}): {'their' if count > 1 else 'its'} phones "
                "cannot register; add a node or bring one back up and they are placed at once.",
            )
        )
    workers = [n for n in reading.nodes if n.admin_state == AdminState.ACTIVE and not n.spare]
    free_spares = [
        n
        for n in reading.nodes
        if n.spare and n.admin_state == AdminState.ACTIVE and n.health == NodeHealth.UP and n.tenants == 0
    ]
    if workers and not free_spares:
        out.append(
            Finding(
                "warning",
                "No free spare node: if a node fails its tenants go to the remaining nodes, "
                "or to none; add one with `fsfarm node add NAME ... --spare` and start it.",
            )
        )
    if reading.kamailio is not None and not reading.kamailio.startswith("reloaded;"):
        out.append(
            Finding(
                "error",
                f"Kamailio is out of sync with placement ({reading.kamailio}): phones may be "
                "sent to the wrong node; check FSFARM_KAMAILIO_CTL and run `fsfarm kamailio "
                "reload`.",
            )
        )
    for spool in reading.spools:
        if spool.cdrs and spool.idle_seconds >= SPOOL_STUCK_SECONDS:
            out.append(
                Finding(
                    "error",
                    f"{spool.cdrs} CDR{'s' if spool.cdrs > 1 else ''} from node {spool.node} "
                    f"have waited {spool.idle_seconds:.0f} s in {spool.path} and are not "
                    "draining into PostgreSQL: the controller log says why each replay failed.",
                )
            )
    if reading.snapshot_ready is False:
        out.append(
            Finding(
                "warning",
                "xml_curl answers from PostgreSQL, not from its in-memory snapshot (the "
                "change listener lost the database): answers stay correct but slower; it "
                "reloads by itself once the database answers again.",
            )
        )
    for mixer in reading.mixers:
        if mixer.admin_state == MixerAdminState.ACTIVE and mixer.health == MixerHealth.DOWN:
            out.append(
                Finding(
                    "error",
                    f"Mixer {mixer.name} is down: its HD rooms moved to the other mixers or "
                    "their nodes; restart `fsfarm mixer` there.",
                )
            )
    if not out:
        up = [n for n in reading.nodes if n.health == NodeHealth.UP]
        spares = f", {len(free_spares)} free spare{'s' if len(free_spares) > 1 else ''}" if free_spares else ""
        out.append(
            Finding(
                "ok",
                f"All is well: {len(up)} node{'s' if len(up) != 1 else ''} up{spares}, "
                f"{reading.tenants} tenant{'s' if reading.tenants != 1 else ''} placed.",
            )
        )
    return out


def healthy(found: list[Finding]) -> bool:
    return all(f.level == "ok" for f in found)


def ask_probes(probes: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each room's live facts, by probe name (what ``read_farm`` takes as ``live``)."""
    return {name: probe() for name, probe in probes.items()}


def read_farm(
    conn: psycopg.Connection[Any],
    live: Mapping[str, Any] | None,
    controller: str | None = None,
    unasked: str | None = None,
) -> FarmReading:
    """The reading status judges: the database's rows, and ``live`` facts when the controller gave them."""
    nodes = node_store.list_all(conn)
    names = {n.id: n.name for n in nodes}
    where = {p.tenant_id: p.node_id for p in placements.tenant_placements(conn)}
    enabled = [t for t in tenant_store.list_all(conn) if t.enabled]
    counts: dict[str, int] = {}
    for node_id in where.values():
        if node_id in names:
            counts[names[node_id]] = counts.get(names[node_id], 0) + 1
    facts = live or {}
    spool_nodes = {str(n.id): n.name for n in nodes}
    return FarmReading(
        nodes=tuple(
            NodeFact(
                n.name,
                n.esl_address,
                n.spare,
                n.admin_state,
                n.health,
                n.health_reason,
                n.seen_alive_at is not None or n.health == NodeHealth.UP,
                counts.get(n.name, 0),
            )
            for n in nodes
        ),
        tenants=len(enabled) - sum(1 for t in enabled if where.get(t.id) not in names),
        unplaced=tuple(sorted(t.domain for t in enabled if where.get(t.id) not in names)),
        mixers=tuple(MixerFact(m.name, m.admin_state, m.health) for m in mixer_store.list_all(conn)),
        controller=controller,
        unasked=unasked,
        kamailio=facts.get("kamailio"),
        snapshot_ready=facts.get("snapshot"),
        spools=tuple(
            SpoolFact(
                spool_nodes.get(s["node_id"], s["node_id"]),
                int(s["cdrs"]),
                max(0.0, time.time() - float(s["changed_at"])),
                str(s["path"]),
            )
            for s in facts.get("cdr_spool", [])
        ),
    )


def placement_warning(domain: str, node: str | None, health: NodeHealth | None, seen_alive: bool) -> str | None:
    """What ``tenant add`` warns when the new tenant is not on a live node (None when it is)."""
    if node is None:
        return (
            f"tenant {domain} is on no node: no node can take it (none registered, all down, or only "
            "spares); its phones cannot register until one is added or comes back"
        )
    if health == NodeHealth.UP:
        return None
    if not seen_alive:
        return (
            f"tenant {domain} is placed on node {node}, which has never been seen alive: start FreeSWITCH "
            f"there (`fsfarm freeswitch bootstrap --node {node}` prints the command line)"
        )
    return f"tenant {domain} is placed on node {node}, which is {health} now: its phones cannot register yet"


def tenant_warnings(conn: psycopg.Connection[Any], tenant_id: UUID, domain: str) -> tuple[str | None, list[str]]:
    """The node a tenant is placed on (its name, or None) and the warnings ``tenant add`` gives about it."""
    node_id = placements.tenant_node(conn, tenant_id)
    node = node_store.get(conn, node_id) if node_id else None
    warning = placement_warning(
        domain,
        node.name if node else None,
        node.health if node else None,
        bool(node and node.seen_alive_at is not None),
    )
    return (node.name if node else None), ([warning] if warning else [])
