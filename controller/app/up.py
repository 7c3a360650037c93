"""``fsfarm up``: one process with the API, xml_curl, the ESL workers, the IVR server and every loop.

The process is gevent-patched by the ``fsfarm`` launcher (``controller.app.green``) before this
module is imported; everything it runs is built by ``Farm``, the same way the other commands do.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import click
import gevent
from gevent.pywsgi import WSGIServer

from controller import provisioning, runtime
from controller.app.cycles import Stoppable, run_cycles, stop_all
from controller.app.farm import Farm
from controller.config import Settings
from controller.database import Database
from controller.errors import FarmError, Unavailable
from controller.metrics import EXTENSION_KEY as METRICS_KEY
from controller.metrics import Series
from controller.stores import nodes, tokens
from xmlcurl.web import start as start_xmlcurl
from xmlcurl.web import stop as stop_xmlcurl

log = logging.getLogger("fsfarm")


def ensure_admin_token(db: Database, state_dir: Path) -> Path:
    """On the first start, issue a farm-admin token and keep it in the state dir (mode 600)."""
    path = state_dir / "admin-token"
    with db.transaction() as conn:
        have_admin = any(t.scope == "farm-admin" and not t.revoked for t in tokens.list_all(conn))
    if not have_admin or not path.exists():
        value, _ = provisioning.create_token(db, "farm-admin", label="created by fsfarm up")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
        os.chmod(path, 0o600)
    return path


def start_services(farm: Farm, probes: dict[str, Any], metrics: Series | None = None) -> list[Stoppable]:
    """Start the failover, mixer, drain and storage loops, the ESL watchers, the IVR server and Kamailio sync.

    ``probes`` (the app's status probes) gets the Kamailio sync's last outcome, for `fsfarm status`;
    ``metrics`` (the app's series) gets the ESL watchers' counters and event lag, for `/metrics`.
    """
    handles: list[Stoppable] = [
        run_cycles(farm.failover_loop(), "fsfarm.failover"),
        run_cycles(farm.mixer_loop(), "fsfarm.mixers"),
        run_cycles(farm.drain_loop(), "fsfarm.drain"),
    ]
    workers = farm.esl_workers(metrics)
    handles.append(workers)
    if metrics is not None:
        metrics.esl = workers.counters
    handles += [run_cycles(loop, "fsfarm.storage") for loop in farm.storage_loops()]
    handles.append(farm.ivr_server())
    sync = farm.kamailio_sync()
    if sync is not None:
        probes["kamailio"] = lambda: sync.status
        handles.append(sync)
    return handles


def _bind(host: str, port: int, what: str) -> socket.socket:
    """Bind ``host:port`` now, or say in one line that it is taken (another ``fsfarm up``, most likely)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gevent does: TIME_WAIT is no conflict
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Unavailable(
                f"port {port} ({what}) on {host} is already in use: is another fsfarm up running?", {"port": port}
            ) from None
        raise Unavailable(f"cannot listen on {host}:{port} ({what}): {exc.strerror}", {"port": port}) from None
    return sock


def _quiet_logging() -> None:
    """Flush and close every log handler while the interpreter is whole, and forget them.

    Left to interpreter teardown, the weakref callback of a module-level handler (Flask's
    default one, logging's last resort) takes a lock through gevent's patched ``get_ident``
    after gevent is gone: ``TypeError: 'NoneType' object is not callable``.
    """
    logging.shutdown()
    logging._handlerList.clear()  # type: ignore[attr-defined]  # no weakref left, so no callback at teardown


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    """Run the controller until SIGTERM or SIGINT, then stop everything it started, in reverse order."""
    settings = settings or runtime.settings()
    ivr_host, ivr_port = settings.ivr.host, settings.ivr.port
    try:
        # Both ports are checked before anything starts: a second `fsfarm up` then changes nothing.
        # Bound but not listening until everything runs: clients are refused, not left hanging, meanwhile.
        listener = _bind(host, port, "the API and xml_curl")
        try:
            _bind(ivr_host, ivr_port, "the IVR server").close()
        except Unavailable:
            listener.close()
            raise
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        _serve(listener, host, port, settings)
    finally:
        _quiet_logging()


def prepare_switch_database(farm: Farm) -> None:
    """Create the nodes' shared FreeSWITCH database and schemas now, so a node's first start finds them."""
    if farm.switch is None:
        return
    with farm.db.transaction() as conn:
        ids = [n.id for n in nodes.list_all(conn)]
    try:
        farm.switch.ensure(ids)
    except FarmError as exc:
        # Nodes then keep their state on their own disks until it is fixed: say so, keep serving.
        log.warning("%s", exc.message)


def _serve(listener: socket.socket, host: str, port: int, settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    farm = Farm.open(settings)  # the embedded server is stopped at the end only if this process started it
    token_path = ensure_admin_token(farm.db, settings.state_dir)
    prepare_switch_database(farm)
    app = farm.web_app()
    start_xmlcurl(app, on_change=farm.config_push())  # load the farm snapshot now, not on the first request
    services = start_services(farm, app.extensions.setdefault("fsfarm.status", {}), app.extensions[METRICS_KEY])
    listener.listen(256)
    server = WSGIServer(listener, app, log=None, error_log=log)
    where = "FSFARM_DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.state_dir}"
    click.echo(f"fsfarm controller on http://{host}:{port} (database: {where})")
    shared = f", or the shared FSFARM_XMLCURL_PASSWORD as {settings.xmlcurl_user}" if settings.xmlcurl_password else ""
    click.echo(f"farm-admin token: {token_path}   xml_curl basic auth: each node's own credentials{shared}")
    old_password = settings.state_dir / "xmlcurl-password"
    if old_password.exists() and not settings.xmlcurl_password:
        # Written by fsfarm before per-node credentials: nodes bootstrapped then still send it.
        click.echo(
            f"warning: nodes bootstrapped before per-node credentials send the password in {old_password}, "
            "no longer accepted: run `fsfarm freeswitch bootstrap` for each, or set FSFARM_XMLCURL_PASSWORD to it",
            err=True,
        )
    runtime.record_listen(settings, host, port)
    if host.startswith("127.") or host in ("localhost", "::1"):
        click.echo(
            f"listening on loopback only: for nodes on other machines start with `--host 0.0.0.0` and set "
            f"FSFARM_CONTROLLER_ADDRESS to an address they reach (now {settings.controller_address})"
        )
    elif settings.controller_address.startswith("127.") or settings.controller_address == "localhost":
        click.echo(
            f"FSFARM_CONTROLLER_ADDRESS is {settings.controller_address}: `fsfarm freeswitch bootstrap` "
            "points nodes there, so only nodes on this machine reach it; set it to an address they reach"
        )

    def stop(*_: Any) -> None:
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        log.info("stopping")
        stop_all(services)
        stop_xmlcurl(app)  # before the database closes: the listener would report it lost
        farm.close()
        log.info("stopped")
