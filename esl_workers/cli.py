"""``fsfarm workers``, ``fsfarm ivr serve``, ``fsfarm call ...``, ``fsfarm conference-cmd``, ``fsfarm node-cmd``."""

from __future__ import annotations

import atexit
import json
import logging
import signal
from pathlib import Path
from typing import Any

import click

from controller.errors import NotFound


def _green() -> None:
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    from esl_workers.cooperative import ensure_green_psycopg

    ensure_green_psycopg()


def _database() -> tuple[Any, Any]:
    from controller import runtime
    from controller.config import Settings
    from controller.database import Database

    settings = Settings.from_env()
    # runtime.conninfo borrows the embedded server (stopped again at exit unless `fsfarm up` runs it).
    db = Database(runtime.conninfo(settings))
    atexit.register(db.close)  # registered after the embedded server's stop, so it runs before it
    return db, settings


def _tenant(db: Any, ref: str) -> Any:
    from controller.stores import tenants

    with db.transaction() as conn:
        tenant = tenants.get(conn, ref)
    if tenant is None:
        raise NotFound(f"no tenant {ref!r}")
    return tenant


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _run_until_signal(handle: Any) -> None:
    import gevent
    import gevent.event

    done = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    gevent.signal_handler(signal.SIGINT, done.set)
    done.wait()
    handle.stop()


@click.command("workers")
@click.option("--verbose", "-v", is_flag=True, help="Log every connection change and replay.")
def workers_command(verbose: bool) -> None:
    """Watch every node over inbound ESL until Ctrl-C.

    Health, live calls, CDRs, registrations and conference rooms (`fsfarm up` runs this too).
    """
    _green()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from esl_workers.inbound import start_workers

    db, settings = _database()
    handle = start_workers(db, settings)
    click.echo(f"watching {len(handle.watchers)} node(s); Ctrl-C to stop")
    _run_until_signal(handle)


@click.group("ivr")
def ivr_group() -> None:
    """The outbound-ESL IVR server and its scripts."""


@ivr_group.command("serve")
@click.option(
    "--scripts",
    "scripts_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of IVR scripts (*.py with @ivr).",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8084, show_default=True, type=int, help="Port nodes' `socket` applications dial.")
def ivr_serve(scripts_dir: Path, host: str, port: int) -> None:
    """Run the outbound-ESL IVR server until Ctrl-C.

    FreeSWITCH's `socket <controller>:8084 async full` connects to it (`fsfarm up` runs one too).
    """
    _green()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from esl_workers.ivr import serve_ivr

    db, settings = _database()
    server = serve_ivr(db, settings, scripts_dir, host, port)
    click.echo(f"IVR server on {host}:{server.port}; scripts: {', '.join(server.library.names()) or 'none yet'}")
    _run_until_signal(server)


@ivr_group.command("check")
@click.argument("scripts_dir", type=click.Path(file_okay=False, path_type=Path))
def ivr_check(scripts_dir: Path) -> None:
    """Load every IVR script once and list what it registers.

    Exits 1 if a script fails to load.
    """
    from esl_workers.ivr.loader import ScriptLibrary

    library = ScriptLibrary(scripts_dir)
    library.refresh()
    failed = False
    for script in library.files.values():
        if script.error:
            failed = True
            click.echo(f"{script.path}: FAILED\n{script.error}", err=True)
        else:
            click.echo(f"{script.path}: {', '.join(sorted(script.handlers)) or 'no @ivr'}")
    if failed:
        raise SystemExit(1)


@click.group("call")
def call_group() -> None:
    """Place, hang up or transfer a tenant's calls."""


@call_group.command("originate")
@click.argument("tenant")
@click.argument("from_ext")
@click.argument("to")
@click.option("--wait", default=0.0, help="Seconds to wait for the job's result.")
def call_originate(tenant: str, from_ext: str, to: str, wait: float) -> None:
    """Click-to-call: ring FROM_EXT in TENANT, then connect it to TO."""
    from esl_workers import commands

    db, _ = _database()
    _print(commands.originate(db, _tenant(db, tenant), from_ext, to, wait=wait))


@call_group.command("hangup")
@click.argument("tenant")
@click.argument("call_uuid")
@click.option("--cause", default="NORMAL_CLEARING", show_default=True, help="Q.850 hangup cause name.")
def call_hangup(tenant: str, call_uuid: str, cause: str) -> None:
    """Hang up a live call (channel uuid) of TENANT."""
    from esl_workers import commands

    db, _ = _database()
    _print(commands.hangup(db, _tenant(db, tenant), call_uuid, cause).public())


@call_group.command("transfer")
@click.argument("tenant")
@click.argument("call_uuid")
@click.argument("to")
@click.option("--bleg", is_flag=True, help="Move the other party instead.")
def call_transfer(tenant: str, call_uuid: str, to: str, bleg: bool) -> None:
    """Transfer a live call of TENANT to extension TO."""
    from esl_workers import commands

    db, _ = _database()
    _print(commands.transfer(db, _tenant(db, tenant), call_uuid, to, "-bleg" if bleg else "").public())


@click.command("conference-cmd")
@click.argument("tenant")
@click.argument("room")
@click.argument(
    "action",
    type=click.Choice(
        sorted(["list", "mute", "unmute", "deaf", "undeaf", "kick", "lock", "unlock", "record", "norecord"])
    ),
)
@click.option("--member", default="", help="Member id (default: all) for mute/unmute/deaf/undeaf/kick.")
@click.option("--path", default="", help="Recording file for record/norecord.")
def conference_cmd(tenant: str, room: str, action: str, member: str, path: str) -> None:
    """Run a conference command on a room's node.

    ACTION runs on the node hosting TENANT's ROOM.
    """
    from esl_workers import commands

    db, _ = _database()
    _print(commands.conference(db, _tenant(db, tenant), room, action, member, path).public())


@click.command("node-cmd")
@click.argument("node")
@click.argument("name", type=click.Choice(["reloadxml", "xml_flush_cache", "sofia_rescan"]))
@click.argument("arg", required=False, default="")
def node_cmd(node: str, name: str, arg: str) -> None:
    """Reload XML, flush caches or rescan SIP on a node.

    reloadxml, xml_flush_cache [section] or sofia_rescan [profile] on NODE.
    """
    from esl_workers import commands

    db, _ = _database()
    _print(commands.node_command(db, node, name, arg).public())


commands = [workers_command, ivr_group, call_group, conference_cmd, node_cmd]
