"""``fsfarm freeswitch bootstrap``: write a node's minimal local FreeSWITCH configuration."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click

from controller import runtime
from controller.config import Settings
from controller.database import Database
from controller.errors import NotFound
from controller.stores import nodes
from xmlcurl import bootstrap
from xmlcurl.options import XmlCurlOptions
from xmlcurl.web import PATH


def _database(settings: Settings, dsn: str | None) -> Database:
    if dsn or settings.database_url:
        return Database(dsn or settings.database_url or "", max_size=2)
    from controller.database.embedded import EmbeddedPostgres, borrow

    server = EmbeddedPostgres(settings.state_dir / "postgres", port=settings.embedded_pg_port)
    borrow(server)  # stopped again when the command ends, unless `fsfarm up` had it running
    return Database(server.conninfo, max_size=2)


@click.group("freeswitch")
def freeswitch() -> None:
    """Configure FreeSWITCH nodes from the controller."""


@freeswitch.command("bootstrap")
@click.option("--node", "node_ref", required=True, help="Registered node name (or id).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="FreeSWITCH conf directory to write; without it the files are printed.")
@click.option("--url", default=None, help="xml_curl URL the node reaches (default http://<controller>:8080/xmlcurl).")
@click.option("--dsn", default=None, help="PostgreSQL DSN (default FSFARM_DATABASE_URL or the embedded server).")
def bootstrap_command(node_ref: str, out: Path | None, url: str | None, dsn: str | None) -> None:
    """Write the local files NODE needs to fetch the rest over xml_curl.

    freeswitch.xml, modules.conf.xml, xml_curl.conf.xml and what they include; start FreeSWITCH with -conf OUT.
    """
    settings = Settings.from_env()
    # The same password `fsfarm up` serves: FSFARM_XMLCURL_PASSWORD, else the one it keeps in the state dir.
    settings = dataclasses.replace(settings, xmlcurl_password=runtime.xmlcurl_password(settings))
    db = _database(settings, dsn)
    try:
        with db.transaction() as conn:
            node = nodes.get(conn, node_ref)
    finally:
        db.close()
    if node is None:
        raise NotFound(f"no node {node_ref!r}: register it first (fsfarm node add)")
    port = os.environ.get("FSFARM_HTTP_PORT", "8080")
    target = url or f"http://{settings.controller_address}:{port}{PATH}"
    contents = bootstrap.files(node, target, settings.xmlcurl_user, settings.xmlcurl_password,
                               XmlCurlOptions.from_env())
    if out is None:
        for rel, data in contents.items():
            click.echo(f"<!-- {rel} -->")
            click.echo(data.decode())
        return
    for path in bootstrap.write(out, contents):
        click.echo(f"wrote {path}")


commands = [freeswitch]
