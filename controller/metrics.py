"""The controller's process-level Prometheus series (core: xml_curl and the ESL room record into them, the API
serves them).

One ``Series`` per app, each with its own registry, so several apps in one process (the tests) never
share counts; the farm-wide series read from the database at scrape time are added by ``controller.api.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

EXTENSION_KEY = "fsfarm.metrics"

# mod_xml_curl's sections; anything else a client sends is counted as "other" (a bounded label set).
XMLCURL_SECTIONS = frozenset({"configuration", "directory", "dialplan", "phrases", "languages", "chatplan"})

# Per node name: the ESL room's counters of this process (events, cdrs_spooled, spool_depth...), when it runs here.
EslCounters = Callable[[], Mapping[str, Mapping[str, int]]]


class Series:
    """The series this process counts itself: API requests, xml_curl latency and snapshot loads, ESL event lag
    (plus the ESL room's counters, if wired)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.api_requests = Counter(
            "fsfarm_api_requests",
            "HTTP requests the controller answered, by route template (never the raw path), method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.xmlcurl_seconds = Histogram(
            "fsfarm_xmlcurl_request_seconds",
            "Time to answer one mod_xml_curl POST, by section and outcome",
            ["section", "outcome"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.snapshot_generation = Gauge(
            "fsfarm_xmlcurl_snapshot_generation",
            "Loads applied to this process's xml_curl snapshot since it started (0: never loaded)",
            registry=self.registry,
        )
        self.snapshot_seconds = Histogram(
            "fsfarm_xmlcurl_snapshot_load_seconds",
            "Time to load the xml_curl snapshot, by scope (all, farm, tenant)",
            ["scope"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.esl_lag_seconds = Histogram(
            "fsfarm_esl_event_lag_seconds",
            "From an event's Event-Date-Timestamp on the node to the controller having handled it, by node",
            ["node"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.esl: EslCounters | None = None  # set by the wiring where the ESL watchers run in this process

    def xmlcurl(self, section: str, outcome: str, seconds: float) -> None:
        """Record one xml_curl answer (a section outside mod_xml_curl's is "other")."""
        if section and section not in XMLCURL_SECTIONS:
            section = "other"
        self.xmlcurl_seconds.labels(section or "none", outcome).observe(seconds)

    def snapshot_loaded(self, scope: str, seconds: float, generation: int) -> None:
        """Record one xml_curl snapshot load (``scope``: ``all``, ``farm`` or ``tenant``) and the generation it made."""
        self.snapshot_seconds.labels(scope).observe(seconds)
        self.snapshot_generation.set(generation)

    def esl_lag(self, node: str, seconds: float) -> None:
        """Record one ESL event's lag on ``node`` (a node's clock ahead of ours counts as no lag)."""
        self.esl_lag_seconds.labels(node).observe(max(0.0, seconds))
