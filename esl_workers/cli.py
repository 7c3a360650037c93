"""``fsfarm ivr check``, ``fsfarm call ...``, ``fsfarm conference-cmd``, ``fsfarm node-cmd``.

The long-running ``fsfarm workers`` and ``fsfarm ivr serve`` are built by the wiring (``controller.cli.services``).
"""

from __future__ import annotations

import atexit
import json
from pathlib import Path
from typing import Any

import click

from controller.errors import NotFound


def _database() -> tuple[Any, Any]:
    from controller import runtime

    settings = runtime.settings()
    # open_database borrows the embedded server (stopped again at exit unless `fsfarm up` runs it).
    db = runtime.open_database(settings, apply_migrations=False)
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


@click.group("ivr")
def ivr_group() -> None:
    """The outbound-ESL IVR server and its scripts."""


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
@click.option(
    "--path", default="", help="Recording file name for record/norecord (it goes in the tenant's recordings folder)."
)
def conference_cmd(tenant: str, room: str, action: str, member: str, path: str) -> None:
    """Run a conference command on a room's node.

    ACTION runs on the node hosting TENANT's ROOM.
    """
    from esl_workers import commands

    db, settings = _database()
    answer = commands.conference(
        db,
        _tenant(db, tenant),
        room,
        action,
        member,
        path,
        shared_mount=settings.storage.shared_mount,
        name_field="path",
    )
    _print(answer.public())


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


commands = [ivr_group, call_group, conference_cmd, node_cmd]
