"""The long-running commands besides ``up``: ``fsfarm workers`` and ``fsfarm ivr serve``.

Each builds its part through ``controller.app.farm.Farm``, exactly as ``fsfarm up`` does, in a
process the launcher patched for gevent.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from controller import runtime


@click.command("workers")
@click.option("--verbose", "-v", is_flag=True, help="Log every connection change and replay.")
def workers_command(verbose: bool) -> None:
    """Watch every node over inbound ESL until Ctrl-C.

    Health, live calls, CDRs, registrations and conference rooms (`fsfarm up` runs this too).
    """
    from controller.app import green
    from controller.app.cycles import wait_for_signal
    from controller.app.farm import Farm

    green.patch()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    farm = Farm.open(runtime.settings(), apply_migrations=False)
    handle = farm.esl_workers()
    click.echo(f"watching {len(handle.watchers)} node(s); Ctrl-C to stop")
    try:
        wait_for_signal()
    finally:
        handle.stop()
        farm.close()


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
    from controller.app import green
    from controller.app.cycles import wait_for_signal
    from controller.app.farm import Farm

    green.patch()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    farm = Farm.open(runtime.settings(), apply_migrations=False)
    server = farm.ivr_server(scripts_dir, host, port)
    click.echo(f"IVR server on {host}:{server.port}; scripts: {', '.join(server.library.names()) or 'none yet'}")
    try:
        wait_for_signal()
    finally:
        server.stop()
        farm.close()


commands: list[click.Command] = [workers_command, ivr_group]
