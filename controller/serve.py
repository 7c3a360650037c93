"""``fsfarm up``: one process with the API, xml_curl, the ESL workers and the IVR server.

gevent drives the HTTP server and the ESL greenlets; the process is patched here, and only
here, so the library code stays usable from plain threads and tests.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import dataclasses  # noqa: E402
import errno  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import click  # noqa: E402
import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from controller import provisioning, runtime  # noqa: E402
from controller.api import create_app  # noqa: E402
from controller.config import Settings  # noqa: E402
from controller.database import Database  # noqa: E402
from controller.errors import Invalid, Unavailable  # noqa: E402
from controller.stores import tokens  # noqa: E402

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


class _Greenlet:
    """A stoppable handle for a background greenlet."""

    def __init__(self, glet: gevent.Greenlet) -> None:
        self.glet = glet

    def stop(self) -> None:
        self.glet.kill(block=True, timeout=5)


class _CycleLoop(Protocol):
    interval: float

    def run_cycle(self) -> str: ...


def _run_cycles(loop: _CycleLoop, logger: str) -> _Greenlet:
    """Run ``loop`` forever in a greenlet, logging its sentence whenever it changes (Patroni style)."""

    def run() -> None:
        last = ""
        while True:
            sentence = loop.run_cycle()
            if sentence != last:
                logging.getLogger(logger).info("%s", sentence)
                last = sentence
            gevent.sleep(loop.interval)

    return _Greenlet(gevent.spawn(run))


def _failover_loop(db: Database) -> _Greenlet:
    """The failover loop, one cycle every half second."""
    from controller.failover import FailoverLoop
    from controller.kamailio.control import KamailioControl
    from controller.tasks import after_move, dispatch_failover

    ctl = os.environ.get("FSFARM_KAMAILIO_CTL")
    return _run_cycles(
        FailoverLoop(
            db,
            kamailio=KamailioControl(ctl) if ctl else None,
            after_move=after_move(),
            dispatch=dispatch_failover if os.environ.get("FSFARM_CELERY_BROKER") else None,
        ),
        "fsfarm.failover",
    )


def _mixer_loop(db: Database) -> _Greenlet:
    """Keep HD rooms on the mixers placement chose; move a dead mixer's rooms and re-bridge their legs."""
    from controller.mixers import MixerLoop, rebridge_over_esl

    return _run_cycles(MixerLoop(db, rebridge=rebridge_over_esl), "fsfarm.mixers")


def _drain_loop(db: Database) -> _Greenlet:
    """Disable each draining node once the ESL watcher counts no call left on it."""
    from controller.drain import DrainLoop
    from esl_workers.calls import count_on_node

    return _run_cycles(DrainLoop(db, live_calls=count_on_node), "fsfarm.drain")


def _push_config(db: Database) -> Any:
    """After a change notice, make the nodes it concerns drop cached config and load new gateways (over ESL).

    Runs after this process' xml_curl snapshot took the change, so what the node fetches next is current.
    """
    from controller.stores.changes import Change
    from esl_workers.commands import run_api
    from xmlcurl.cache import flush_orders

    def send(node: Any, commands: tuple[str, ...]) -> None:
        for command in commands:
            try:
                run_api(node, command, timeout=5.0, check=False)
            except Exception as exc:  # a node that is down fetches everything afresh when it starts
                log.info("config push to node %s (%s) failed: %s", node.name, command, exc)
                return

    def on_change(change: Change) -> None:
        with db.transaction() as conn:
            orders = flush_orders(conn, change)
        for order in orders:
            if order.node.health == "up" and order.node.admin_state != "disabled":
                gevent.spawn(send, order.node, order.commands)

    return on_change


def _room_services(db: Database, settings: Settings, probes: dict[str, Any]) -> list[Any]:
    """Start the failover, mixer and drain loops, ESL watchers, IVR server and (when configured) Kamailio sync.

    ``probes`` (the app's status probes) gets the Kamailio sync's last outcome, for `fsfarm status`."""
    from controller.storage.selection import open_storage
    from controller.storage.sounds import PromptsOnce
    from controller.storage.sweep import SweepLoop
    from esl_workers.inbound import start_workers
    from esl_workers.ivr import serve_ivr

    storage = open_storage(os.environ.get("FSFARM_STORAGE"), settings.state_dir)
    handles: list[Any] = [
        _failover_loop(db),
        _mixer_loop(db),
        _drain_loop(db),
        start_workers(db, settings),
        _run_cycles(SweepLoop(db, storage), "fsfarm.storage"),
        _run_cycles(PromptsOnce(storage), "fsfarm.storage"),
    ]  # voicemail prompts for bare nodes
    scripts = Path(os.environ.get("FSFARM_IVR_SCRIPTS", settings.state_dir / "ivr"))
    scripts.mkdir(parents=True, exist_ok=True)
    handles.append(
        serve_ivr(
            db,
            settings,
            scripts,
            host=os.environ.get("FSFARM_IVR_HOST", "127.0.0.1"),
            port=int(os.environ.get("FSFARM_IVR_PORT", "8084")),
        )
    )
    ctl = os.environ.get("FSFARM_KAMAILIO_CTL")
    if ctl:
        from controller.kamailio.control import KamailioControl
        from controller.kamailio.sync import KamailioSync

        sync = KamailioSync(db.conninfo, KamailioControl(ctl)).start()
        probes["kamailio"] = lambda: sync.status  # for `fsfarm status`
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


def _env_port(name: str, default: int) -> int:
    """A port from the environment, or one line saying why it is not one."""
    value = os.environ.get(name, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise Invalid(f"{name}: the port must be a number from 1 to 65535, not {value!r}", {"field": name})
    return int(value)


def _quiet_logging() -> None:
    """Flush and close every log handler while the interpreter is whole, and forget them.

    Left to interpreter teardown, the weakref callback of a module-level handler (Flask's
    default one, logging's last resort) takes a lock through gevent's patched ``get_ident``
    after gevent is gone: ``TypeError: 'NoneType' object is not callable``.
    """
    logging.shutdown()
    logging._handlerList.clear()  # type: ignore[attr-defined]  # no weakref left, so no callback at teardown


def serve(host: str, port: int) -> None:
    """Run the controller until SIGTERM or SIGINT, then stop everything it started, in reverse order."""
    ivr_host = os.environ.get("FSFARM_IVR_HOST", "127.0.0.1")
    ivr_port = _env_port("FSFARM_IVR_PORT", 8084)
    try:
        # Both ports are checked before anything starts: a second `fsfarm up` then changes nothing.
        # Bound but not listening until everything runs: clients are refused, not left hanging, meanwhile.
        listener = _bind(host, port, "the API and xml_curl")
        try:
            _bind(ivr_host, ivr_port, "the IVR server").close()
        except Unavailable:
            listener.close()
            raise
        logging.basicConfig(
            level=os.environ.get("FSFARM_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        _serve(listener, host, port)
    finally:
        _quiet_logging()


def _serve(listener: socket.socket, host: str, port: int) -> None:
    settings = Settings.from_env()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(settings, xmlcurl_password=runtime.xmlcurl_password(settings))
    # The embedded server is ours to stop only if this process started it.
    owned = None if settings.database_url or runtime.embedded(settings).running() else runtime.embedded(settings)
    db = runtime.open_database(settings)
    token_path = ensure_admin_token(db, settings.state_dir)
    app = create_app(db, settings)
    from xmlcurl.web import start as start_xmlcurl
    from xmlcurl.web import stop as stop_xmlcurl

    start_xmlcurl(app, on_change=_push_config(db))  # load the farm snapshot now, not on the first request
    services = _room_services(db, settings, app.extensions.setdefault("fsfarm.status", {}))
    listener.listen(256)
    server = WSGIServer(listener, app, log=None, error_log=log)
    where = "FSFARM_DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.state_dir}"
    click.echo(f"fsfarm controller on http://{host}:{port} (database: {where})")
    click.echo(
        f"farm-admin token: {token_path}   xml_curl basic auth: {settings.xmlcurl_user} / "
        f"{settings.state_dir / 'xmlcurl-password'}"
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
        for handle in services:
            handle.stop()
        stop_xmlcurl(app)  # before the database closes: the listener would report it lost
        db.close()
        if owned is not None:
            owned.stop()
        log.info("stopped")
