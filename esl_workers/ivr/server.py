"""The outbound ESL server: FreeSWITCH's ``socket <controller>:8084 async full`` connects here.

One greenlet per call. Which IVR runs: the channel variable ``fsfarm_ivr`` if the dialplan set
it, else the tenant's number (target_type ``ivr``) or IVR extension matching the dialled number.
A script that raises, or outlives the per-call timeout, only ends its own call: the caller
hears the error prompt, the call is hung up and the traceback is logged with the call uuid.

The IVR a channel names must be one its tenant owns (and the ids the dialplan set must agree):
forged channel data naming another tenant's IVR is refused and logged. A connection that does
not answer ``connect`` within ``connect_timeout`` is closed (nothing waits on a silent socket).

When the script returns the call is hung up, unless it went back to the dialplan (a transfer):
then it is left alone. Either way the server then sends ``exit`` and closes the socket, so
FreeSWITCH's listener lets go of the channel at once (with ``linger`` it would hold a hung-up
channel until the socket closes, and a transferred one would stay controlled by us).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import gevent.server

from controller.config import Settings
from controller.database import Database
from controller.errors import Unavailable
from controller.stores import ivrs, numbers, tenants
from esl_workers.connection import FarmOutboundSession
from esl_workers.ivr.loader import ScriptLibrary
from esl_workers.ivr.session import CallEnded, Session
from esl_workers.tenancy import domain_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IvrConfig:
    call_timeout: float = 3600.0  # a script still running after this is stopped and the call ended
    step_timeout: float = 300.0
    error_prompt: str = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
    linger_wait: float = 5.0  # seconds FreeSWITCH gets to close the socket after our "exit"
    max_calls: int = 1000
    connect_timeout: float = 10.0  # a connection silent this long after accept is closed

    @classmethod
    def from_settings(cls, settings: Settings) -> IvrConfig:
        """The IVR server's view of the farm's settings (FSFARM_IVR_*)."""
        return cls(call_timeout=settings.ivr.call_timeout, error_prompt=settings.ivr.error_prompt)


@dataclass(frozen=True)
class Route:
    name: str
    tenant: str
    options: dict[str, Any]


def _refused(channel: dict[str, str], why: str) -> None:
    log.warning(
        "IVR call %s refused: %s (tenant %r, fsfarm_ivr %r)",
        channel.get("Unique-ID", "unknown"),
        why,
        domain_of(channel),
        channel.get("variable_fsfarm_ivr", ""),
    )


def resolve(db: Database | None, channel: dict[str, str]) -> Route | None:
    """Which IVR this call is for, and its options from the tenant's Ivr row.

    None when there is none, or when the channel names an IVR its tenant does not own (refused,
    logged). Without a database (or while it is unreachable) the call is routed on ``fsfarm_ivr``.
    """
    wanted = channel.get("variable_fsfarm_ivr", "")
    domain = domain_of(channel)
    dest = channel.get("Caller-Destination-Number", "")
    if db is None:
        return Route(wanted, domain, {}) if wanted else None
    try:
        with db.transaction() as conn:
            tenant = tenants.by_domain(conn, domain) if domain else None
            if tenant is None:
                number = numbers.by_number(conn, dest) if dest else None
                tenant = tenants.get(conn, number.tenant_id) if number else None
            if tenant is None:
                if wanted:
                    _refused(channel, "the channel's tenant is unknown")
                return None
            if channel.get("variable_fsfarm_tenant_id", str(tenant.id)) != str(tenant.id):
                _refused(channel, "fsfarm_tenant_id is not the channel's tenant")
                return None
            if not wanted and dest:
                number = numbers.store.get(conn, tenant.id, dest)
                if number is not None and number.target_type == "ivr":
                    wanted = number.target
                else:
                    wanted = next((i.name for i in ivrs.store.list(conn, tenant.id) if i.extension == dest), "")
            if not wanted:
                return None
            row = ivrs.store.get(conn, tenant.id, wanted)
            if row is None:
                _refused(channel, f"tenant {tenant.domain} has no IVR {wanted!r}")
                return None
            if channel.get("variable_fsfarm_ivr_id", str(row.id)) != str(row.id):
                _refused(channel, f"fsfarm_ivr_id is not the id of {tenant.domain}'s IVR {wanted!r}")
                return None
            return Route(wanted, tenant.domain, dict(row.options))
    except Unavailable:
        log.warning("database unreachable: routing on fsfarm_ivr only")
        return Route(wanted, domain, {}) if wanted else None


class IvrServer:
    """The handle ``serve_ivr`` returns; ``stop()`` closes the listener and ends running calls."""

    def __init__(
        self, db: Database | None, library: ScriptLibrary, host: str, port: int, config: IvrConfig | None = None
    ) -> None:
        self.db = db
        self.library = library
        self.config = config or IvrConfig()
        self.calls = gevent.pool.Pool(self.config.max_calls)
        self.server = gevent.server.StreamServer((host, port), self._accept, spawn=self.calls)
        self.handled = 0
        self.failed = 0

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def start(self) -> IvrServer:
        self.server.start()
        log.info(
            "IVR server listening on %s:%d, scripts in %s", self.server.server_host, self.port, self.library.directory
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout=timeout)
        self.calls.kill(block=True, timeout=timeout)

    def _accept(self, sock: Any, address: Any) -> None:
        conn = FarmOutboundSession(address, sock)
        conn.command_timeout = self.config.connect_timeout
        conn.goodbye = False  # in outbound mode FreeSWITCH closes after linger; "exit" is not ours to send
        call = "unknown"
        try:
            channel = conn.connect()
            conn.command_timeout = FarmOutboundSession.command_timeout  # the call's own steps have their timeouts
            call = channel.get("Unique-ID", "unknown")
            conn.label = f"ivr call {call}"
            conn.send("myevents")
            conn.send("linger")
            self.run_call(conn, channel)
        except Exception:
            log.exception("IVR call %s: outbound socket failed", call)
        finally:
            self._release(conn)
            sock.close()  # ours once accepted: never left for the garbage collector to close

    def _release(self, conn: FarmOutboundSession) -> None:
        """Let go of the channel: "exit" ends FreeSWITCH's listener, which then closes the socket."""
        if conn.connected:
            try:
                conn.send("exit", timeout=2.0)
            except Exception:
                pass  # FreeSWITCH already closed it
        conn.closed.wait(timeout=self.config.linger_wait)
        conn.stop(timeout=1.0)

    def run_call(self, conn: FarmOutboundSession, channel: dict[str, str]) -> None:
        route = resolve(self.db, channel)
        session = Session(
            conn,
            channel,
            tenant=route.tenant if route else domain_of(channel),
            options=route.options if route else {},
            step_timeout=self.config.step_timeout,
        )
        handler = self.library.get(route.name) if route else None
        self.handled += 1
        if handler is None:
            self.failed += 1
            log.error(
                "IVR call %s: no script for %r (destination %s)",
                session.uuid,
                route.name if route else "",
                session.destination,
            )
            self._fail(session)
            return
        try:
            with gevent.Timeout(self.config.call_timeout, TimeoutError(f"script ran over {self.config.call_timeout}s")):
                handler(session)
        except CallEnded:
            self._log_left(session, route.name if route else "")
            return
        except BaseException as exc:
            if isinstance(exc, gevent.GreenletExit):
                raise
            self.failed += 1
            log.error("IVR call %s: script %r failed", session.uuid, route.name if route else "", exc_info=True)
            self._fail(session)
            return
        if session.transferred:
            self._log_left(session, route.name if route else "")
            return
        try:
            session.hangup()
        except CallEnded:
            pass

    def _log_left(self, session: Session, name: str) -> None:
        if session.transferred:
            log.info("IVR call %s: script %r returned; the call went on in the dialplan", session.uuid, name)

    def _fail(self, session: Session) -> None:
        """The caller hears the error prompt, then the call is cleared; never raises."""
        try:
            with gevent.Timeout(30, False):
                session.playback(self.config.error_prompt)
            session.hangup("NORMAL_TEMPORARY_FAILURE")
        except Exception:
            pass


def serve_ivr(
    db: Database | None,
    settings: Settings | None,
    scripts_dir: Path | str,
    host: str = "0.0.0.0",
    port: int = 8084,
    config: IvrConfig | None = None,
) -> IvrServer:
    """Start the outbound ESL server in this (gevent) process; returns a handle with ``stop()``."""
    if config is None:
        config = IvrConfig.from_settings(settings) if settings is not None else IvrConfig()
    return IvrServer(db, ScriptLibrary(scripts_dir), host, port, config).start()
