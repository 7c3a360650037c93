"""``fsfarm freeswitch bootstrap``: write a node's minimal local FreeSWITCH configuration."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from controller import runtime
from controller.config import Settings
from controller.database import Database
from controller.database.switch import SwitchDatabase
from controller.errors import Invalid, NotFound
from controller.stores import changes, nodes
from controller.stores.changes import Notice
from xmlcurl import bootstrap
from xmlcurl.options import PATH, XmlCurlOptions


def _database(settings: Settings, dsn: str | None) -> Database:
    # runtime.conninfo borrows the embedded server: stopped again when the command ends, unless `fsfarm up` runs it.
    return runtime.open_database(settings, apply_migrations=False, dsn=dsn, max_size=2)


@click.group("freeswitch")
def freeswitch() -> None:
    """Configure FreeSWITCH nodes from the controller."""


@freeswitch.command("bootstrap")
@click.option("--node", "node_ref", required=True, help="Registered node name (or id).")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="FreeSWITCH conf directory to write; without it the files are printed.",
)
@click.option(
    "--url",
    default=None,
    help="xml_curl URL the node reaches (default: where `fsfarm up` last listened, from "
    "<state dir>/controller.json, else http://FSFARM_CONTROLLER_ADDRESS:8080/xmlcurl).",
)
@click.option(
    "--ca-file",
    default=None,
    help="For an https --url: the CA certificate (path on the node) FreeSWITCH verifies the controller with.",
)
@click.option("--dsn", default=None, help="PostgreSQL DSN (default FSFARM_DATABASE_URL or the embedded server).")
@click.option(
    "--xmlcurl-password",
    default=None,
    help="The node's current xml_curl password (as `node add` or `node rotate-xmlcurl` printed it); "
    "without it new credentials are issued and the node's previous password stops working.",
)
def bootstrap_command(
    node_ref: str, out: Path | None, url: str | None, ca_file: str | None, dsn: str | None, xmlcurl_password: str | None
) -> None:
    """Write a node's local files; print how to start it.

    The files NODE needs, and the FreeSWITCH command line that starts it on them.

    freeswitch.xml and five autoload_configs; everything else the node fetches from the controller over
    xml_curl, with the node's own credentials.
    """
    settings = runtime.settings()
    target = url or _xmlcurl_url(settings)
    if ca_file and not target.lower().startswith("https://"):
        raise Invalid(f"--ca-file is for an https xml_curl URL, not {target}", {"field": "ca_file"})
    db = _database(settings, dsn)
    try:
        with db.transaction() as conn:
            node = nodes.get(conn, node_ref)
            if node is None:
                raise NotFound(f"no node {node_ref!r}: register it first (fsfarm node add)")
            issued = xmlcurl_password is None
            if xmlcurl_password is None:
                # Only the hash is stored: the password can be written only when it is issued.
                node, xmlcurl_password = nodes.issue_xmlcurl_credentials(conn, node)
                changes.announce(conn, Notice.NODE)
            else:
                try:
                    nodes.check_xmlcurl_password(node, xmlcurl_password)
                except Invalid as exc:
                    raise Invalid(f"--xmlcurl-password: {exc.message.partition(': ')[2]}", exc.detail) from None
            switch = SwitchDatabase.for_farm(db.conninfo, settings.switch_database_url)
            if switch is not None:
                switch.ensure([node.id])  # the node's core schema must exist before it starts
            contents = bootstrap.files(
                node,
                target,
                node.xmlcurl_user,
                xmlcurl_password,
                XmlCurlOptions.from_settings(settings, switch),
                ca_file,
                core_dsn=switch.core_dsn(node.id) if switch else "",
            )
            # Written before the commit: files that cannot be written leave the node's current password valid.
            try:
                written = bootstrap.write(out, contents) if out is not None else []
            except OSError as exc:
                raise Invalid(f"--out: cannot write {out}: {exc.strerror or exc}", {"field": "out"}) from None
    finally:
        db.close()
    if out is None:
        for rel, data in contents.items():
            click.echo(f"<!-- {rel} -->")
            click.echo(data.decode())
        return
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"xml_curl: {target}")
    how = "new credentials: its previous password no longer works" if issued else "the password given"
    click.echo(f"xml_curl user: {node.xmlcurl_user} ({how})")
    click.echo("start FreeSWITCH with:")
    click.echo("  " + " ".join(start_command(out.resolve(), settings.freeswitch_bin)))


def _xmlcurl_url(settings: Settings) -> str:
    """Where the node reaches xml_curl: the address and port `fsfarm up` recorded, else the environment's."""
    recorded = runtime.recorded_listen(settings) or {}
    given = settings.given
    address = (
        settings.controller_address if "FSFARM_CONTROLLER_ADDRESS" in given else recorded.get("controller_address")
    )
    port = recorded.get("port") or settings.http_port
    return f"http://{address or settings.controller_address}:{port}{PATH}"


def start_command(conf: Path, binary: str | None = None) -> list[str]:
    """``freeswitch -nonat -nc -conf CONF ...`` with its runtime dirs (created here) under CONF."""
    for name in RUNTIME_DIRS:
        (conf / name).mkdir(parents=True, exist_ok=True)
    binary = "freeswitch" if shutil.which("freeswitch") else binary or "freeswitch"
    args = [binary, "-nonat", "-nc", "-conf", str(conf)]
    for name in RUNTIME_DIRS:
        args += [f"-{name}", str(conf / name)]
    return args


# What FreeSWITCH writes (pid file, core db, log, certificates...): one set per node, so nodes on one machine
# do not collide and nothing is written into the installation's own directories.
RUNTIME_DIRS = ("log", "db", "run", "storage", "cache", "recordings", "certs")


commands = [freeswitch]
