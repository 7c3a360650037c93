"""The controller's process-level Prometheus series (core: xml_curl records into them, the API serves them).

One ``Series`` per app, each with its own registry, so several apps in one process (the tests) never
share counts; the farm-wide series read from the database at scrape time are added by ``controller.api.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

EXTENSION_KEY = "fsfarm.metrics"

# mod_xml_curl's sections; anything else a client sends is counted as "other" (a bounded label set).
XMLCURL_SECTIONS = frozenset({"configuration", "directory", "dialplan", "phrases", "languages", "chatplan"})

# Per node name: the ESL room's counters of this process (events, cdrs_spooled, spool_depth...), when it runs here.
EslCounters = Callable[[], Mapping[str, Mapping[str, int]]]


class Series:
    """The series this process counts itself: API requests and xml_curl latency (plus the ESL room's, if wired)."""

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
        self.esl: EslCounters | None = None  # set by the wiring where the ESL watchers run in this process

    def xmlcurl(self, section: str, outcome: str, seconds: float) -> None:
        """Record one xml_curl answer (a section outside mod_xml_curl's is "other")."""
        if section and section not in XMLCURL_SECTIONS:
            section = "other"
        self.xmlcurl_seconds.labels(section or "none", outcome).observe(seconds)
