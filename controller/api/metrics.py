"""``GET /metrics``: the farm in Prometheus's text format, for a farm-admin or a scrape-only ``metrics`` token.

The farm-wide series (nodes, calls, registrations, placement, spares, failovers, tenants) are read
from the database at each scrape by ``FarmCollector``; the process's own counters (API requests,
xml_curl latency, the ESL room's counters where it runs here) come from ``controller.metrics.Series``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.bearer import metrics_reader
from controller.database import Database
from controller.domain import AdminState, FailoverState, NodeHealth
from controller.errors import FarmError
from controller.metrics import EXTENSION_KEY, Series
from controller.stores import failovers, live_calls, node_stats, nodes, placements, registrations, tenants

log = logging.getLogger(__name__)

blueprint = Blueprint("metrics", __name__)

MAX_TENANTS = 50  # tenants labelled by domain (the busiest by calls, then registrations); the rest are "other"
OTHER = "other"
NO_TENANT = "none"  # calls and bindings no tenant owns (e.g. an unknown realm)
ESL_COUNTERS = {  # the ESL room's per-node counters exported, with their help text
    "events": "ESL events ingested from the node",
    "cdrs_written": "CDRs written to the database",
    "cdrs_spooled": "CDRs written to the on-disk spool while PostgreSQL was away",
    "dropped_while_db_down": "Events dropped while PostgreSQL was away",
    "failed_events": "Events whose processing failed",
    "connects": "ESL connections made to the node",
}


class FarmCollector(Collector):
    """The farm's state, read from the stores at each scrape (one read-only transaction)."""

    def __init__(self, db: Database, series: Series) -> None:
        self.db = db
        self.series = series

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("fsfarm_database_up", "1 when the controller could read the farm database")
        started = time.perf_counter()
        try:
            found = list(self._farm())
        except FarmError as exc:  # a scrape during a PostgreSQL outage still says so rather than failing
            log.warning("metrics: cannot read the farm database: %s", exc)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from found
        took = GaugeMetricFamily("fsfarm_metrics_read_seconds", "Time to read the farm's series for this scrape")
        took.add_metric([], time.perf_counter() - started)
        yield took
        yield from self._esl()

    def _farm(self) -> Iterator[Metric]:
        with self.db.transaction() as conn:
            all_nodes = nodes.list_all(conn)
            domains = {t.id: t.domain for t in tenants.list_all(conn)}
            calls = live_calls.counts(conn)
            bindings = registrations.counts(conn)
            hosted = placements.tenants_per_node(conn)
            latest = placements.latest(conn)
            stats = {r["node_id"]: r for r in node_stats.list_all(conn)}
            history = failovers.summary(conn)

        health = GaugeMetricFamily(
            "fsfarm_node_health",
            "1 for the node's current health (unknown, up, suspect, down)",
            labels=["node", "health"],
        )
        node_up = GaugeMetricFamily("fsfarm_node_up", "1 when the node's ESL watcher judges it up", labels=["node"])
        state = GaugeMetricFamily(
            "fsfarm_node_admin_state",
            "1 for the node's admin state (active, draining, disabled)",
            labels=["node", "state"],
        )
        spare = GaugeMetricFamily("fsfarm_node_spare", "1 when the node is held back as a spare", labels=["node"])
        capacity = GaugeMetricFamily("fsfarm_node_capacity", "The node's placement weight", labels=["node"])
        node_tenants = GaugeMetricFamily("fsfarm_node_tenants", "Tenants placed on the node", labels=["node"])
        node_calls = GaugeMetricFamily("fsfarm_node_live_calls", "Channels up on the node", labels=["node"])
        node_regs = GaugeMetricFamily("fsfarm_node_registrations", "SIP device bindings on the node", labels=["node"])
        cps = GaugeMetricFamily(
            "fsfarm_node_calls_per_second", "Sessions per second in the node's last heartbeat", labels=["node"]
        )
        beat = GaugeMetricFamily(
            "fsfarm_node_heartbeat_age_seconds", "Seconds since the node's last heartbeat was stored", labels=["node"]
        )
        per_node_calls = _per_node(calls)
        per_node_regs = _per_node(bindings)
        for node in all_nodes:
            for value in NodeHealth:
                health.add_metric([node.name, value.value], 1 if node.health == value else 0)
            node_up.add_metric([node.name], 1 if node.health == NodeHealth.UP else 0)
            for admin in AdminState:
                state.add_metric([node.name, admin.value], 1 if node.admin_state == admin else 0)
            spare.add_metric([node.name], 1 if node.spare else 0)
            capacity.add_metric([node.name], node.capacity)
            node_tenants.add_metric([node.name], hosted.get(node.id, 0))
            node_calls.add_metric([node.name], per_node_calls.get(node.id, 0))
            node_regs.add_metric([node.name], per_node_regs.get(node.id, 0))
            row = stats.get(node.id)
            if row is not None:
                cps.add_metric([node.name], row["sessions_per_sec"])
                if row["heartbeat_age"] is not None:
                    beat.add_metric([node.name], max(0.0, row["heartbeat_age"]))
        yield from (health, node_up, state, spare, capacity, node_tenants, node_calls, node_regs, cps, beat)

        free = GaugeMetricFamily(
            "fsfarm_spares_free",
            "Spares a failover could take now: active, not down, hosting no tenant",
            value=sum(
                1
                for n in all_nodes
                if n.spare
                and n.admin_state == AdminState.ACTIVE
                and n.health != NodeHealth.DOWN
                and not hosted.get(n.id)
            ),
        )
        generation = GaugeMetricFamily(
            "fsfarm_placement_generation", "The newest placement generation", value=latest.generation if latest else 0
        )
        yield from (free, generation)

        total = CounterMetricFamily(
            "fsfarm_failovers", "Failover decisions taken, by their state now", labels=["state"]
        )
        for value in FailoverState:
            total.add_metric([value.value], history["states"].get(value.value, 0))
        yield total
        decision = GaugeMetricFamily(
            "fsfarm_failover_last_decision_seconds", "The newest failover: from the node declared down to the decision"
        )
        completion = GaugeMetricFamily(
            "fsfarm_failover_last_completion_seconds", "The newest failover: from the node declared down to done"
        )
        if history["decision"] is not None:
            decision.add_metric([], max(0.0, history["decision"]))
        if history["completion"] is not None:
            completion.add_metric([], max(0.0, history["completion"]))
        stuck = GaugeMetricFamily(
            "fsfarm_failover_unfinished_seconds",
            "Age of the oldest failover still decided or moved (0 when none)",
            value=history["unfinished_age"],
        )
        yield from (decision, completion, stuck)

        tenant_calls = GaugeMetricFamily("fsfarm_tenant_live_calls", "Channels up of the tenant", labels=["tenant"])
        tenant_regs = GaugeMetricFamily(
            "fsfarm_tenant_registrations", "SIP device bindings of the tenant", labels=["tenant"]
        )
        for label, (n_calls, n_regs) in _per_tenant(calls, bindings, domains).items():
            tenant_calls.add_metric([label], n_calls)
            tenant_regs.add_metric([label], n_regs)
        yield from (tenant_calls, tenant_regs)

    def _esl(self) -> Iterator[Metric]:
        read = self.series.esl
        if read is None:
            return
        per_node = read()
        for name, help_text in ESL_COUNTERS.items():
            family = CounterMetricFamily(f"fsfarm_esl_{name}", help_text, labels=["node"])
            for node, counters in per_node.items():
                family.add_metric([node], counters.get(name, 0))
            yield family
        depth = GaugeMetricFamily("fsfarm_cdr_spool_depth", "CDRs waiting in the node's on-disk spool", labels=["node"])
        for node, counters in per_node.items():
            depth.add_metric([node], counters.get("spool_depth", 0))
        yield depth


def _per_node(counted: list[dict[str, Any]]) -> dict[UUID, int]:
    totals: dict[UUID, int] = {}
    for row in counted:
        totals[row["node_id"]] = totals.get(row["node_id"], 0) + int(row["n"])
    return totals


def _per_tenant(
    calls: list[dict[str, Any]], bindings: list[dict[str, Any]], domains: dict[UUID, str]
) -> dict[str, tuple[int, int]]:
    """(calls, registrations) per tenant domain: the MAX_TENANTS busiest by name, the rest summed as "other"."""
    totals: dict[str, list[int]] = {}
    for index, counted in enumerate((calls, bindings)):
        for row in counted:
            label = domains.get(row["tenant_id"], NO_TENANT) if row["tenant_id"] is not None else NO_TENANT
            totals.setdefault(label, [0, 0])[index] += int(row["n"])
    ranked = sorted(totals, key=lambda d: (-totals[d][0], -totals[d][1], d))
    kept = {d: (totals[d][0], totals[d][1]) for d in ranked[:MAX_TENANTS]}
    rest = ranked[MAX_TENANTS:]
    if rest:
        kept[OTHER] = (sum(totals[d][0] for d in rest), sum(totals[d][1] for d in rest))
    return kept


def series(app: Flask | None = None) -> Series:
    """The app's process-level series (built by the app factory)."""
    return cast(Series, (app or current_app).extensions[EXTENSION_KEY])


@blueprint.get("/metrics")
@metrics_reader
def metrics() -> Any:
    """The farm's and this process's series, in Prometheus's text exposition format."""
    return Response(generate_latest(series().registry), mimetype=CONTENT_TYPE_LATEST)


def _count(response: Response) -> Response:
    rule = request.url_rule
    series().api_requests.labels(
        rule.rule if rule is not None else "unmatched", request.method, response.status_code
    ).inc()
    return response


def register(app: Flask) -> None:
    """Serve ``/metrics`` and count every request the app answers by route template, method and status."""
    found = series(app)
    found.registry.register(FarmCollector(app.extensions["fsfarm.db"], found))
    app.register_blueprint(blueprint)
    app.after_request(_count)
