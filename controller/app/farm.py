"""The farm as one process runs it: every loop, worker and server built one way for every command.

``fsfarm up``, ``fsfarm failover watch``, ``fsfarm workers``, ``fsfarm ivr serve`` and the Celery
worker all start from a ``Farm``: the settings read once, the database opened once, and each part
given the cross-room steps it needs (commands to a node, re-bridging legs, after-move steps) as
plain callables, so the rooms never import each other.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import UUID

import gevent
from flask import Flask

from controller import runtime
from controller.app.web import create_app
from controller.config import Settings
from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from controller.database.switch import SwitchDatabase
from controller.domain import AdminState, NodeHealth
from controller.drain import DrainLoop
from controller.failover import AfterMove, FailoverLoop
from controller.join import activate_on_first_heartbeat
from controller.kamailio.control import KamailioControl
from controller.kamailio.sync import KamailioSync
from controller.metrics import Series
from controller.mixers import MixerLoop
from controller.storage.base import Storage
from controller.storage.selection import open_storage
from controller.storage.sounds import PromptsOnce
from controller.storage.sweep import SweepLoop
from controller.stores.changes import Change
from controller.stores.live_calls import count_on_node
from controller.takeover import Takeover
from esl_workers.commands import run_api
from esl_workers.inbound import WorkerConfig, Workers, start_workers
from esl_workers.ivr import serve_ivr
from esl_workers.ivr.server import IvrServer
from esl_workers.recovery import after_move_steps, rebridge_room, release_addresses
from xmlcurl.cache import flush_orders

log = logging.getLogger(__name__)


@dataclass
class Farm:
    """Settings, the database, and the builders of every long-running part."""

    settings: Settings
    db: Database
    owned_postgres: EmbeddedPostgres | None = None  # the embedded server this process started (stopped on close)
    controller_id: str | None = None
    _closed: bool = field(default=False, init=False)

    @classmethod
    def open(cls, settings: Settings | None = None, *, apply_migrations: bool = True) -> Farm:
        """Open the farm database (migrated unless told otherwise) with this process's settings."""
        settings = settings or runtime.settings()
        server = runtime.embedded(settings)
        owned = None if settings.database_url or server.running() else server
        return cls(settings, runtime.open_database(settings, apply_migrations=apply_migrations), owned)

    def close(self) -> None:
        """Close the pool, then stop the embedded PostgreSQL if this process started it."""
        if self._closed:
            return
        self._closed = True
        self.db.close()
        if self.owned_postgres is not None:
            self.owned_postgres.stop()

    # ------------------------------------------------------------------ shared parts

    @cached_property
    def storage(self) -> Storage:
        """Where recordings, voicemail and prompts are kept (FSFARM_STORAGE)."""
        return open_storage(self.settings.storage.url, self.settings.state_dir)

    def kamailio_control(self) -> KamailioControl | None:
        """Kamailio's JSON-RPC control when FSFARM_KAMAILIO_CTL names it, else None."""
        if not self.settings.kamailio_ctl:
            return None
        return KamailioControl(self.settings.kamailio_ctl)

    @cached_property
    def switch(self) -> SwitchDatabase | None:
        """Where the nodes keep FreeSWITCH's own state (FSFARM_SWITCH_DATABASE_URL; None: each node's disk)."""
        return SwitchDatabase.for_farm(self.db.conninfo, self.settings.switch_database_url)

    def after_move(self) -> tuple[AfterMove, ...]:
        """What runs once a failover's move is committed: flush the new node's caches, adopt the dead node's
        calls and registrations, recover its rooms."""
        return after_move_steps(self.settings.sip.proxies, self.switch, self.settings.sip.profile)

    def takeover(self) -> Takeover:
        """Whether a spare may take a dead node's address: the operator's fence and address commands."""
        return Takeover(self.settings.failover)

    def dispatch(self) -> Callable[[UUID], None] | None:
        """With a Celery broker, failovers are carried out as tasks; without one, inline."""
        if not self.settings.tasks.broker:
            return None
        from controller.app.tasks import dispatch_failover

        return dispatch_failover

    # ------------------------------------------------------------------ loops (one cycle at a time)

    def failover_loop(self, *, interval: float = 0.5, dispatch: Callable[[UUID], None] | None = None) -> FailoverLoop:
        """The failover loop, with Kamailio as witness, the after-move steps and the task dispatch."""
        extra = {"controller_id": self.controller_id} if self.controller_id else {}
        return FailoverLoop(
            self.db,
            kamailio=self.kamailio_control(),
            dispatch=dispatch or self.dispatch(),
            after_move=self.after_move(),
            takeover=self.takeover(),
            release=functools.partial(release_addresses, profile=self.settings.sip.profile),
            interval=interval,
            **extra,
        )

    def mixer_loop(self) -> MixerLoop:
        """Keep HD rooms on live mixers; a dead mixer's rooms move and their legs are re-bridged over ESL."""
        return MixerLoop(self.db, rebridge=rebridge_room)

    def drain_loop(self) -> DrainLoop:
        """Disable each draining node once no call is left on it."""
        return DrainLoop(self.db, live_calls=count_on_node)

    def storage_loops(self) -> list[SweepLoop | PromptsOnce]:
        """The storage sweep (files of deleted tenants) and the one-off voicemail prompts for bare nodes."""
        return [SweepLoop(self.db, self.storage), PromptsOnce(self.storage)]

    # ------------------------------------------------------------------ workers and servers

    def esl_workers(self, metrics: Series | None = None) -> Workers:
        """Start one inbound-ESL watcher per node; a joined node is activated on its first heartbeat (each
        event's lag recorded in ``metrics`` when given)."""
        shared = bool(self.settings.storage.shared_mount)
        return start_workers(
            self.db,
            WorkerConfig.from_settings(self.settings),
            storage=self.storage if shared else None,  # recorded voicemail is registered where the API serves it
            on_node_up=activate_on_first_heartbeat,
            metrics=metrics,
        )

    def ivr_server(self, scripts: Path | None = None, host: str | None = None, port: int | None = None) -> IvrServer:
        """Start the outbound-ESL IVR server (FSFARM_IVR_HOST/PORT/SCRIPTS unless given)."""
        scripts = scripts or self.settings.ivr_scripts
        scripts.mkdir(parents=True, exist_ok=True)
        return serve_ivr(
            self.db,
            self.settings,
            scripts,
            host=host if host is not None else self.settings.ivr.host,
            port=port if port is not None else self.settings.ivr.port,
        )

    def kamailio_sync(self) -> KamailioSync | None:
        """Keep Kamailio's domain routes as placed (None without FSFARM_KAMAILIO_CTL)."""
        control = self.kamailio_control()
        if control is None:
            return None
        return KamailioSync(self.db.conninfo, control).start()

    def web_app(self) -> Flask:
        """The WSGI app: the API blueprints and every room's (xml_curl, calls), on this farm's database."""
        return create_app(self.db, self.settings, self.switch)

    def config_push(self) -> Callable[[Change], None]:
        """After a change notice, make the nodes it concerns drop cached config and load new gateways (ESL).

        Runs after this process's xml_curl snapshot took the change, so what a node fetches next is current.
        """

        def send(node: Any, commands: tuple[str, ...]) -> None:
            for command in commands:
                try:
                    run_api(node, command, timeout=5.0, check=False)
                except Exception as exc:  # a node that is down fetches everything afresh when it starts
                    log.info("config push to node %s (%s) failed: %s", node.name, command, exc)
                    return

        profile = self.settings.sip.profile

        def on_change(change: Change) -> None:
            with self.db.transaction() as conn:
                orders = flush_orders(conn, change, sip_profile=profile)
            for order in orders:
                if order.node.health == NodeHealth.UP and order.node.admin_state != AdminState.DISABLED:
                    gevent.spawn(send, order.node, order.commands)

        return on_change
