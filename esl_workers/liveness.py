"""Node liveness: HEARTBEAT events plus the state of the ESL connection give up / suspect / down.

``assess`` is pure: the watcher feeds it what it saw and writes the verdict only when it changes,
so a node is declared down once, with the time and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.domain import NodeHealth
from controller.stores import node_stats
from esl_workers.protocol import Event
from esl_workers.timefmt import from_usec, to_int

SUSPECT_AFTER_BEATS = 1.5  # one heartbeat late: something may be wrong
DOWN_AFTER_BEATS = 3.5  # three heartbeats missed: the node is gone even if the socket looks open


@dataclass(frozen=True)
class Link:
    """What the watcher knows about its node at one instant (monotonic seconds)."""

    connected: bool
    connected_at: float | None = None
    last_heartbeat_at: float | None = None
    heartbeat_interval: float = 1.0
    failures: int = 0  # consecutive failed connection attempts since the last success
    last_error: str = ""
    seen_alive: bool = False  # judged up at least once, by this watcher or an earlier one


@dataclass(frozen=True)
class Verdict:
    health: NodeHealth
    reason: str


def assess(link: Link, now: float) -> Verdict:
    """up, suspect or down, with a one-sentence reason."""
    interval = max(link.heartbeat_interval, 0.001)
    if not link.connected:
        if not link.seen_alive:
            # Refused before it ever ran: not started yet (first start), not a death to fail over.
            return Verdict(NodeHealth.UNKNOWN, f"never seen alive yet: ESL {link.last_error or 'not connected'}")
        if link.failures >= 1:
            return Verdict(NodeHealth.DOWN, f"ESL connection refused or failed ({link.last_error or 'no answer'})")
        return Verdict(NodeHealth.SUSPECT, f"ESL connection lost ({link.last_error or 'closed'}); reconnecting")
    since = link.last_heartbeat_at if link.last_heartbeat_at is not None else link.connected_at
    if since is None:
        return Verdict(NodeHealth.SUSPECT, "ESL connected, no heartbeat yet")
    silence = now - since
    if silence > DOWN_AFTER_BEATS * interval:
        return Verdict(NodeHealth.DOWN, f"no HEARTBEAT for {silence:.1f}s (3 missed at {interval:g}s)")
    if silence > SUSPECT_AFTER_BEATS * interval:
        return Verdict(NodeHealth.SUSPECT, f"HEARTBEAT late by {silence - interval:.1f}s")
    if link.last_heartbeat_at is None:
        return Verdict(NodeHealth.UP, "ESL connected and authenticated")
    return Verdict(NodeHealth.UP, "HEARTBEAT on time")


@dataclass(frozen=True)
class HeartbeatStats:
    session_count: int
    max_sessions: int
    sessions_per_sec: int
    session_peak_5min: int
    idle_cpu: float
    uptime_ms: int
    version: str
    at: datetime | None


def stats_from_event(event: Event) -> HeartbeatStats | None:
    """Session counts and load a HEARTBEAT carries; None for other events."""
    if event.name != "HEARTBEAT":
        return None
    h = event.headers
    try:
        idle = float(h.get("Idle-CPU") or 0)
    except ValueError:
        idle = 0.0
    return HeartbeatStats(
        session_count=to_int(h.get("Session-Count")),
        max_sessions=to_int(h.get("Max-Sessions")),
        sessions_per_sec=to_int(h.get("Session-Per-Sec-Last")),
        session_peak_5min=to_int(h.get("Session-Peak-FiveMin")),
        idle_cpu=idle,
        uptime_ms=to_int(h.get("Uptime-msec")),
        version=h.get("FreeSWITCH-Version", ""),
        at=from_usec(h.get("Event-Date-Timestamp")),
    )


def store_stats(conn: psycopg.Connection[Any], node_id: UUID, s: HeartbeatStats) -> None:
    node_stats.save(
        conn,
        node_id,
        session_count=s.session_count,
        max_sessions=s.max_sessions,
        sessions_per_sec=s.sessions_per_sec,
        session_peak_5min=s.session_peak_5min,
        idle_cpu=s.idle_cpu,
        uptime_ms=s.uptime_ms,
        version=s.version,
        heartbeat_at=s.at,
    )
