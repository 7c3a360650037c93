"""Finishing a drain: a draining node is disabled once its last call has ended.

``fsfarm node drain`` moves the node's tenants at once, so new calls go to other nodes, while calls
in progress stay on it (in-dialog requests follow Record-Route). ``DrainLoop.run_cycle()``, run by
``fsfarm up`` every second, disables each draining node the ESL watcher counts no call on (or that
is down: its calls died with it) and returns one sentence saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from controller.database import Database
from controller.domain import AdminState, NodeHealth
from controller.errors import FarmError
from controller.stores import changes, nodes
from controller.stores.changes import Notice

LiveCalls = Callable[[psycopg.Connection[Any], UUID], int]


@dataclass
class DrainLoop:
    """Disable drained nodes; ``live_calls`` counts a node's calls (the ESL watcher's live-call store)."""

    db: Database
    live_calls: LiveCalls
    interval: float = 1.0

    def run_cycle(self) -> str:
        try:
            return self._cycle()
        except FarmError as exc:
            return f"drain check waits: {exc.message}"

    def _cycle(self) -> str:
        sentences = []
        with self.db.transaction() as conn:
            for node in nodes.list_all(conn):
                if node.admin_state != AdminState.DRAINING:
                    continue
                left = 0 if node.health == NodeHealth.DOWN else self.live_calls(conn, node.id)
                if left:
                    sentences.append(f"node {node.name} is draining: {left} call leg(s) still up on it")
                    continue
                nodes.update(conn, node.id, {"admin_state": AdminState.DISABLED})
                changes.announce(conn, Notice.NODE)
                why = "it is down" if node.health == NodeHealth.DOWN else "its last call ended"
                sentences.append(f"node {node.name} is drained ({why}); disabled")
        return "; ".join(sentences) if sentences else "no node is draining"
