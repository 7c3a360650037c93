"""Commands for the SIP front and failover: ``fsfarm kamailio ...`` and ``fsfarm failover ...``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import click

from controller import runtime
from controller.cli.admin import json_option, with_db
from controller.cli.output import emit
from controller.database import Database
from controller.kamailio.config import KamailioSettings, db_url_from_conninfo, render
from controller.kamailio.control import KamailioControl
from controller.stores import failovers


@click.group()
def kamailio() -> None:
    """The Kamailio SIP front."""


CTL_HELP = "Kamailio's ctl (JSON-RPC) socket."


@kamailio.command("config")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option(
    "--listen", multiple=True, default=["udp:0.0.0.0:5060"], show_default=True, help="Kamailio listen= (repeatable)."
)
@click.option("--db-url", help="postgres://user:pass@host:port/db Kamailio reads (default: the farm's DSN).")
@click.option("--ctl-socket", default="/run/kamailio/kamailio_ctl", show_default=True, help=CTL_HELP)
@click.option("--ping-interval", default=1, show_default=True, type=int, help="Seconds between OPTIONS pings.")
@click.option("--ws-listen", default="", help="tcp:host:port for browsers' SIP over WebSocket (default: none).")
def kamailio_config(
    out: Path | None, listen: tuple[str, ...], db_url: str | None, ctl_socket: str, ping_interval: int, ws_listen: str
) -> None:
    """Write a kamailio.cfg that routes each tenant's domain to its node."""
    if ws_listen and not ws_listen.startswith("tcp:"):
        raise click.BadParameter("must be tcp:host:port (TLS: put a TLS proxy in front)", param_hint="--ws-listen")
    url = db_url or db_url_from_conninfo(runtime.conninfo(runtime.settings()))
    settings = KamailioSettings(
        db_url=url, listen=" ".join(listen), ctl_socket=ctl_socket, ping_interval=ping_interval, ws_listen=ws_listen
    )
    text = render(settings)
    if out:
        out.write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@kamailio.command("reload")
@click.option("--ctl-socket", default="/run/kamailio/kamailio_ctl", show_default=True, help=CTL_HELP)
def kamailio_reload(ctl_socket: str) -> None:
    """Reload a running Kamailio's routes.

    It then says how many domains Kamailio holds routes for.
    """
    held = KamailioControl(ctl_socket).reload()
    click.echo(f"Kamailio holds routes for {len(held)} domain(s)")


@click.group()
def failover() -> None:
    """Node failover."""


@failover.command("watch")
@click.option("--interval", default=0.5, show_default=True, type=float, help="Seconds between cycles.")
@click.option("--kamailio-ctl", help="Kamailio ctl socket, for reloads and as a second witness.")
def failover_watch(interval: float, kamailio_ctl: str | None) -> None:
    """Run the failover loop on its own (`fsfarm up` runs it too).

    The same loop `fsfarm up` runs (Kamailio witness, cache flush and room recovery after a move,
    Celery dispatch with a broker); it logs one sentence per cycle when something changes.
    """
    from controller.app import green
    from controller.app.cycles import run_cycles, wait_for_signal
    from controller.app.farm import Farm

    green.patch()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = runtime.settings()
    if kamailio_ctl:
        settings = dataclasses.replace(settings, kamailio_ctl=kamailio_ctl)
    farm = Farm.open(settings)
    running = run_cycles(farm.failover_loop(interval=interval), "fsfarm.failover")
    click.echo("failover loop running; Ctrl-C to stop", err=True)
    try:
        wait_for_signal()
    finally:
        running.stop()
        farm.close()


@failover.command("list")
@json_option
@with_db
def failover_list(database: Database, as_json: bool) -> None:
    """Past failover decisions, newest first."""
    with database.transaction() as conn:
        rows = [f.public() for f in failovers.recent(conn)]
    columns = (
        "created_at",
        "node_name",
        "state",
        "tenants_moved",
        "rooms_recreated",
        "legs_recovered",
        "calls_tracked",
        "calls_recovered",
        "registrations_moved",
        "kamailio",
        "takeover",
        "reason",
    )
    emit(rows, columns, as_json)


commands: list[click.Command] = [kamailio, failover]
