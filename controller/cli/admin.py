"""Admin commands: the database, nodes, tenants and what lives in them, placement, tokens, ``up``.

They work on the database directly through ``controller.provisioning``, the same code the REST
API runs, so a rule checked by one is checked by the other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from controller import provisioning, runtime, status, user_import
from controller.cli.base import in_cli_terms
from controller.cli.output import emit
from controller.cli.progress import progress
from controller.database import Database
from controller.domain import NAT_ACLS, NDLB_OPTIONS
from controller.errors import Invalid
from controller.stores import nodes as node_store
from controller.stores import placements
from controller.stores import tenants as tenant_store
from sql.migrate import migrate

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def with_db(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Open the farm database for the command (an embedded one it had to start is stopped at exit).

    A missing field is reported with the command's own flag (``missing --password``).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        db = runtime.open_database(runtime.settings())
        try:
            return fn(db, *args, **kwargs)
        except Invalid as exc:
            raise in_cli_terms(exc, click.get_current_context().command) from None
        finally:
            db.close()

    return wrapper


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Invalid(f"--set expects field=value, got {item!r}")
        out[key.strip()] = value
    return out


# ---------------------------------------------------------------- up and db


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="FSFARM_HTTP_HOST",
    help="Address the controller listens on (FSFARM_HTTP_HOST).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    envvar="FSFARM_HTTP_PORT",
    help="HTTP port, API and xml_curl (FSFARM_HTTP_PORT).",
)
def up(host: str, port: int) -> None:
    """Start the controller and everything it runs, until Ctrl-C.

    The database (embedded unless FSFARM_DATABASE_URL), the REST API and xml_curl on --port,
    one ESL watcher per node, the IVR server, the failover and mixer loops.
    """
    from controller.app import green
    from controller.app.up import serve

    green.patch()  # the launcher did it already; this covers `python -m` and in-process callers
    serve(host, port, runtime.settings())


@click.group()
def db() -> None:
    """The farm database."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply missing schema migrations (safe to run again)."""
    applied = migrate(runtime.conninfo(runtime.settings()))
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


@db.command("replicate")
@click.option("--peer", "peer_dsn", required=True, help="libpq DSN of the other site's fsfarm database.")
@click.option("--self-dsn", help="DSN the peer uses to reach this site (default: this farm's DSN).")
@click.option("--name", "site_name", default="site_a", show_default=True, help="This site's name.")
@click.option("--peer-name", default="site_b", show_default=True, help="The other site's name.")
def db_replicate(peer_dsn: str, self_dsn: str | None, site_name: str, peer_name: str) -> None:
    """Replicate the farm database both ways with another site.

    Multi-master: each site subscribes to the other; the last write wins.
    """
    from controller.replication import Site, replicate

    local = Site(site_name, self_dsn or runtime.conninfo(runtime.settings()))
    with progress("replicating") as step:
        said = replicate(local, Site(peer_name, peer_dsn), on_step=step)
    for sentence in said:
        click.echo(sentence)


# ---------------------------------------------------------------- nodes

NODE_COLUMNS = ("name", "switchname", "sip_address", "esl_address", "spare", "admin_state", "health", "tenants")


@click.group()
def node() -> None:
    """FreeSWITCH nodes of the farm."""


def _node_nat_options(command: Any) -> Any:
    """The WebRTC and NAT options ``node add`` and ``node update`` share."""
    for option in reversed(
        [
            click.option("--ws-port", type=int, help="SIP over WebSocket port on the SIP host (0: none)."),
            click.option("--wss-port", type=int, help="Secure WebSocket port; wss.pem in the node's certs dir."),
            click.option("--ext-sip-ip", help="Public signalling IP, or auto-nat (default: the SIP host)."),
            click.option("--ext-rtp-ip", help="Public media IP, or auto-nat (default: the SIP host)."),
            click.option("--stun-server", help="host[:port] asked for the public IPs left unset ('' : none)."),
            click.option("--nat-acl", help=f"Phones treated as behind NAT: {', '.join(NAT_ACLS)} ('' : none)."),
            click.option("--ndlb", help=f"sofia workarounds, comma-separated: {', '.join(NDLB_OPTIONS)}."),
        ]
    ):
        command = option(command)
    return command


@node.command("add")
@click.argument("name")
@click.option("--sip", "sip_address", required=True, help="host[:port] the SIP proxy sends to (port 5060).")
@click.option("--esl", "esl_address", required=True, help="host[:port] of mod_event_socket (port 8021).")
@click.option("--esl-password", required=True, help="mod_event_socket password.")
@click.option("--switchname", help="FreeSWITCH-Switchname the node reports (default: NAME).")
@click.option("--rtp-min", "rtp_port_min", type=int, help="First RTP port (16384).")
@click.option("--rtp-max", "rtp_port_max", type=int, help="Last RTP port (32768).")
@click.option("--capacity", type=int, help="Relative placement weight, e.g. max calls (1000).")
@click.option("--spare", is_flag=True, help="Hold it back for failover.")
@_node_nat_options
@json_option
@with_db
def node_add(database: Database, name: str, as_json: bool, **options: Any) -> None:
    """Register a node and issue its xml_curl credentials.

    The xml_curl password is shown once, here."""
    data = {k: v for k, v in options.items() if v not in (None, False)}
    created, password = provisioning.register_node(database, {"name": name, **data})
    if as_json:
        emit({**created.public(), "xmlcurl_password": password}, (), True)
        return
    emit(created.public(), ("name", "switchname", "sip_address", "esl_address", "spare"), False)
    _say_xmlcurl_credentials(created.xmlcurl_user, password)


def _say_xmlcurl_credentials(user: str, password: str) -> None:
    click.echo(f"xml_curl credentials (shown once): {user}:{password}")
    click.echo("  (`fsfarm freeswitch bootstrap` writes them: pass --xmlcurl-password, or it issues new ones)")


@node.command("update")
@click.argument("name")
@click.option("--sip", "sip_address", help="host[:port] the SIP proxy sends to.")
@click.option("--esl", "esl_address", help="host[:port] of mod_event_socket.")
@click.option("--esl-password", help="mod_event_socket password.")
@click.option("--rtp-min", "rtp_port_min", type=int, help="First RTP port.")
@click.option("--rtp-max", "rtp_port_max", type=int, help="Last RTP port.")
@click.option("--capacity", type=int, help="Relative placement weight.")
@_node_nat_options
@json_option
@with_db
def node_update(database: Database, name: str, as_json: bool, **options: Any) -> None:
    """Change a node's addresses, ports or NAT settings."""
    data = {k: v for k, v in options.items() if v is not None}
    if data.get("ndlb") == "":
        data["ndlb"] = []  # --ndlb '' turns every workaround off
    if not data:
        raise click.UsageError("nothing to change: give at least one option")
    updated = provisioning.update_node(database, name, data)
    emit(updated.public(), ("name", "sip_address", "ws_port", "wss_port", "ext_sip_ip", "ext_rtp_ip"), as_json)


@node.command("rotate-xmlcurl")
@click.argument("name")
@json_option
@with_db
def node_rotate_xmlcurl(database: Database, name: str, as_json: bool) -> None:
    """Issue a node new xml_curl credentials.

    The old password stops working now: write the new one into the node's xml_curl.conf
    (`fsfarm freeswitch bootstrap --xmlcurl-password`)."""
    rotated, password = provisioning.rotate_xmlcurl_credentials(database, name)
    if as_json:
        emit({"node": rotated.name, "xmlcurl_user": rotated.xmlcurl_user, "xmlcurl_password": password}, (), True)
        return
    _say_xmlcurl_credentials(rotated.xmlcurl_user, password)


@node.command("list")
@json_option
@with_db
def node_list(database: Database, as_json: bool) -> None:
    """Nodes with their state and how many tenants each hosts."""
    overview = provisioning.placement_overview(database)
    counts: dict[str, int] = {}
    for row in overview["tenants"]:
        if row["node"]:
            counts[row["node"]] = counts.get(row["node"], 0) + 1
    with database.transaction() as conn:
        rows = [{**n.public(), "tenants": counts.get(n.name, 0)} for n in node_store.list_all(conn)]
    emit(rows, NODE_COLUMNS, as_json)


@node.command("drain")
@click.argument("name")
@with_db
def node_drain(database: Database, name: str) -> None:
    """Move a node's tenants off and retire it.

    Its tenants move now; fsfarm up disables it once its last call ends."""
    with database.transaction() as conn:
        hosted = placements.tenants_on_node(conn, provisioning.get_node(conn, name).id)
    provisioning.drain_node(database, name)
    with database.transaction() as conn:
        stranded = sum(1 for t in hosted if placements.tenant_node(conn, t) is None)
    if not hosted:
        click.echo(f"node {name} is draining; it hosted no tenants")
    elif stranded:
        click.echo(
            f"node {name} is draining; {len(hosted) - stranded} of its {len(hosted)} tenant(s) moved to "
            f"other nodes, {stranded} are on no node (no other node can take them)"
        )
    else:
        click.echo(f"node {name} is draining; its {len(hosted)} tenant(s) were moved to other nodes")


@node.command("rm")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even if it hosts tenants (they move).")
@with_db
def node_rm(database: Database, name: str, force: bool) -> None:
    """Remove a node."""
    provisioning.remove_node(database, name, force=force)
    click.echo(f"node {name} removed")


@click.group()
def mixers() -> None:
    """HD conference mixers the controller drives.

    Run one with `fsfarm mixer`, then register it here.
    """


def _read_token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The token in the file an option names (a copy of the mixer's --token-file), stripped."""
    if value is None:
        return None
    try:
        return Path(value).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}") from None


token_file_option = click.option(
    "--token-file",
    "control_token",
    type=click.Path(dir_okay=False),
    callback=_read_token,
    help="A copy of the file the mixer's own --token-file names: its control API's bearer token.",
)


@mixers.command("add")
@click.argument("name")
@click.option("--sip", "sip_address", required=True, help="host:port FreeSWITCH bridges room legs to.")
@click.option("--control", "control_url", required=True, help="http(s)://host:port of its control API.")
@token_file_option
@click.option("--capacity", type=int, help="Relative placement weight (500).")
@json_option
@with_db
def mixers_add(
    database: Database,
    name: str,
    sip_address: str,
    control_url: str,
    control_token: str | None,
    capacity: int | None,
    as_json: bool,
) -> None:
    """Register an HD conference mixer.

    HD rooms are placed on mixers like tenants on nodes."""
    data = {
        "name": name,
        "sip_address": sip_address,
        "control_url": control_url,
        "control_token": control_token,
        "capacity": capacity,
    }
    created = provisioning.add_mixer(database, {k: v for k, v in data.items() if v is not None})
    emit(created.public(), ("name", "sip_address", "control_url", "capacity"), as_json)


@mixers.command("list")
@json_option
@with_db
def mixers_list(database: Database, as_json: bool) -> None:
    """Mixers and their health."""
    from controller.stores import mixers as mixer_store

    with database.transaction() as conn:
        rows = [m.public() for m in mixer_store.list_all(conn)]
    emit(rows, ("name", "sip_address", "control_url", "admin_state", "health"), as_json)


@mixers.command("token")
@click.argument("name")
@token_file_option
@with_db
def mixers_token(database: Database, name: str, control_token: str | None) -> None:
    """Replace the token sent to a mixer's control API."""
    provisioning.set_mixer_token(database, name, {} if control_token is None else {"control_token": control_token})
    click.echo(f"mixer {name}: control token replaced")


@mixers.command("rm")
@click.argument("name")
@with_db
def mixers_rm(database: Database, name: str) -> None:
    """Remove a mixer; its rooms move to the others."""
    provisioning.remove_mixer(database, name)
    click.echo(f"mixer {name} removed")


# ---------------------------------------------------------------- tenants


@click.group()
def tenant() -> None:
    """Tenants (SIP domains)."""


@tenant.command("add")
@click.argument("domain")
@click.option("--name", help="Display name (default: the domain).")
@click.option("--pin-node", "pinned_node", help="Keep this tenant on this node.")
@json_option
@with_db
def tenant_add(database: Database, domain: str, name: str | None, pinned_node: str | None, as_json: bool) -> None:
    """Create a tenant and place it on a node.

    It is placed at once; a warning on stderr says when that node is not up."""
    data = {"domain": domain, "name": name, "pinned_node": pinned_node}
    created = provisioning.add_tenant(database, {k: v for k, v in data.items() if v})
    with database.transaction() as conn:
        where, warnings = status.tenant_warnings(conn, created.id, created.domain)
    emit(
        {**created.public(), "node": where, **({"warnings": warnings} if as_json else {})},
        ("domain", "name", "node"),
        as_json,
    )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@tenant.command("list")
@json_option
@with_db
def tenant_list(database: Database, as_json: bool) -> None:
    """Tenants and the node each runs on."""
    where = {t["tenant"]: t["node"] for t in provisioning.placement_overview(database)["tenants"]}
    with database.transaction() as conn:
        rows = [{**t.public(), "node": where.get(t.domain)} for t in tenant_store.list_all(conn)]
    emit(rows, ("domain", "name", "enabled", "node"), as_json)


@tenant.command("rm")
@click.argument("domain")
@click.option("--force", is_flag=True, help="Also delete its users and numbers.")
@with_db
def tenant_rm(database: Database, domain: str, force: bool) -> None:
    """Delete a tenant."""
    provisioning.remove_tenant(database, domain, force=force)
    click.echo(f"tenant {domain} removed")


# ---------------------------------------------------------------- objects inside a tenant

# kind -> (command name, positional field, extra options as (flag, field, help), list columns)
CHILD_COMMANDS: dict[str, tuple[str, str, list[tuple[str, str, str]], tuple[str, ...]]] = {
    "users": (
        "user",
        "extension",
        [
            ("--password", "password", "SIP password (stored only as its a1-hash)."),
            ("--name", "display_name", "Display name."),
            ("--vm-pin", "vm_pin", "Voicemail PIN (stored hashed)."),
            ("--caller-id", "caller_id_number", "Outbound caller-id number."),
        ],
        ("extension", "display_name", "caller_id_number", "voicemail", "enabled"),
    ),
    "numbers": (
        "number",
        "number",
        [
            ("--to", "to", "What it reaches: user:EXT, conference:NUM, ivr:NAME or voicemail:EXT."),
        ],
        ("number", "target_type", "target", "description"),
    ),
    "conferences": (
        "conference",
        "number",
        [
            ("--name", "name", "Room name."),
            ("--profile", "profile", "narrowband (8 kHz), wideband (16 kHz) or hd (48 kHz)."),
            ("--pin", "pin", "PIN callers must enter."),
        ],
        ("number", "name", "profile", "max_members", "pin_set"),
    ),
    "ivrs": (
        "ivr",
        "name",
        [
            ("--extension", "extension", "Internal number that reaches it."),
            ("--description", "description", "What it does."),
        ],
        ("name", "extension", "description"),
    ),
    "gateways": (
        "gateway",
        "name",
        [
            ("--proxy", "proxy", "Carrier host[:port]."),
            ("--username", "username", "Carrier account."),
            ("--password", "password", "Carrier password."),
            ("--caller-id", "caller_id_number", "Caller-id number presented outbound."),
        ],
        ("name", "proxy", "register", "caller_id_number"),
    ),
}


def _child_group(kind: str) -> click.Group:
    command, key, extras, columns = CHILD_COMMANDS[kind]
    label = provisioning.KINDS[kind].name
    article = "an" if label[0] in "aeioI" else "a"  # an IVR, a user

    # `fsfarm ivr` also holds esl_workers' `serve` and `check` (see controller.cli): its help says so.
    group_help = "IVRs of a tenant and the server that runs them." if kind == "ivrs" else None

    @click.group(name=command, help=group_help or f"{label[0].upper()}{label[1:]}s of a tenant.")
    def group() -> None:
        pass

    def add(
        database: Database, tenant_ref: str, key_value: str, settings: tuple[str, ...], as_json: bool, **options: Any
    ) -> None:
        data: dict[str, Any] = {key: key_value, **_pairs(settings)}
        for flag_field, value in options.items():
            if value is None:
                continue
            if flag_field == "to":
                target_type, sep, target = value.partition(":")
                if not sep:
                    raise Invalid("--to expects TYPE:TARGET, e.g. user:1001")
                data.update(target_type=target_type, target=target)
            else:
                data[flag_field] = value
        created = provisioning.add_child(database, kind, tenant_ref, data)
        emit(created.public(), columns, as_json)

    add.__doc__ = f"Create {article} {label} in a tenant.\n\n--set FIELD=VALUE gives any other field of the API's body."
    add_cmd: Callable[..., Any] = with_db(add)
    for flag, field_name, help_text in reversed(extras):
        add_cmd = click.option(flag, field_name, help=help_text)(add_cmd)
    add_cmd = click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Any other field of the API's body (repeatable).",
    )(add_cmd)
    add_cmd = json_option(add_cmd)
    add_cmd = click.argument("key_value", metavar=key.upper())(add_cmd)
    add_cmd = click.option("--tenant", "-t", "tenant_ref", required=True, help="Tenant domain.")(add_cmd)
    group.command("add")(add_cmd)

    if kind == "users":
        group.add_command(user_import_command)

    @group.command("list", help=f"List the {label}s of a tenant.")
    @click.option("--tenant", "-t", "tenant_ref", required=True, help="Tenant domain.")
    @json_option
    @with_db
    def list_(database: Database, tenant_ref: str, as_json: bool) -> None:
        emit([c.public() for c in provisioning.list_children(database, kind, tenant_ref)], columns, as_json)

    @group.command("rm", help=f"Delete {article} {label}.")
    @click.option("--tenant", "-t", "tenant_ref", required=True, help="Tenant domain.")
    @click.argument("key_value", metavar=key.upper())
    @with_db
    def rm(database: Database, tenant_ref: str, key_value: str) -> None:
        provisioning.remove_child(database, kind, tenant_ref, key_value)
        click.echo(f"{label} {key_value} removed from {tenant_ref}")

    return group


def _read_import_file(path: str) -> str:
    """The CSV file's text ('-': stdin), read no further than the import's size limit."""
    try:
        with click.open_file(path, "rb") as stream:
            data = stream.read(user_import.MAX_BYTES + 1)
    except OSError as exc:
        raise Invalid(f"FILE: cannot read {path}: {exc.strerror or exc}", {"field": "csv"}) from None
    if len(data) > user_import.MAX_BYTES:
        raise Invalid(f"FILE: {path} is over the {user_import.MAX_BYTES} byte limit: split it", {"field": "csv"})
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"FILE: {path} is not UTF-8 text: save the CSV as UTF-8", {"field": "csv"}) from None


@click.command("import")
@click.argument("tenant_ref", metavar="TENANT")
@click.argument("csv", metavar="FILE")
@click.option(
    "--on-conflict",
    type=click.Choice(user_import.ON_CONFLICT),
    default="fail",
    show_default=True,
    help="A row whose extension exists: an error (fail), left as it is (skip) or changed (update).",
)
@click.option("--dry-run", is_flag=True, help="Check every row and store nothing.")
@json_option
@with_db
def user_import_command(
    database: Database, tenant_ref: str, csv: str, on_conflict: str, dry_run: bool, as_json: bool
) -> None:
    """Import users from CSV (ours or a FusionPBX extension export).

    The first line names the columns: the users fields (`fsfarm user add --set` takes the same)
    or FusionPBX's (extension, password, effective_caller_id_name, voicemail_password...).
    Each row is checked as `fsfarm user add` checks one user and stands alone: a row with an
    error changes nothing, the others are stored. Exits 1 when any row failed. FILE '-' is stdin."""
    text = _read_import_file(csv)
    with progress("importing", quiet=as_json) as step:
        report = user_import.import_users(
            database,
            tenant_ref,
            text,
            on_conflict=on_conflict,
            dry_run=dry_run,
            on_row=lambda done, total, row: step(done, total, row.extension),
        )
    failed = [r for r in report.rows if r.outcome == "error"]
    if as_json:
        emit(report.as_json(), (), True)
    else:
        counts = ", ".join(f"{report.count(o)} {'failed' if o == 'error' else o}" for o in user_import.OUTCOMES)
        click.echo(f"{report.tenant}: {counts} ({report.note})")
        if report.ignored_columns:
            click.echo(f"ignored columns (nothing in fsfarm means the same): {', '.join(report.ignored_columns)}")
        for row in failed:
            where = f" ({row.extension})" if row.extension else ""
            click.echo(f"error: row {row.row}{where}: {row.error}", err=True)
    if failed:
        click.get_current_context().exit(1)


# ---------------------------------------------------------------- placement and tokens


@click.group()
def placement() -> None:
    """Where tenants and conferences run."""


@placement.command("show")
@json_option
@with_db
def placement_show(database: Database, as_json: bool) -> None:
    """Where each tenant and room runs now.

    Each tenant's node and each room's node or mixer, with the generation."""
    overview = provisioning.placement_overview(database)
    if as_json:
        emit(overview, (), True)
        return
    click.echo(f"generation {overview['generation']}: {_placement_summary(overview)}")
    emit(overview["tenants"], ("tenant", "node", "generation", "pinned"), False)
    if overview["conferences"]:
        click.echo("")
        emit(overview["conferences"], ("tenant", "conference", "profile", "node", "mixer"), False)
    if overview["reason"]:
        # The latest generation's reason may be about a tenant or node deleted since: say when it was.
        click.echo(
            f"\ngeneration {overview['generation']} was decided at {overview['decided_at']}: {overview['reason']}"
        )


def _placement_summary(overview: dict[str, Any]) -> str:
    """The current state in one clause: how many tenants run on how many nodes, and how many on none."""
    placed = [t for t in overview["tenants"] if t["node"]]
    if not overview["tenants"]:
        return "no tenants"
    clause = f"{len(placed)} tenant(s) on {len({t['node'] for t in placed})} node(s)"
    stranded = len(overview["tenants"]) - len(placed)
    return clause + (f", {stranded} on no node" if stranded else "")


@click.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.option(
    "--scope",
    type=click.Choice(["farm-admin", "tenant-admin", "node-join", "metrics"]),
    default="farm-admin",
    show_default=True,
    help="What it may do: everything, one tenant, register one node, or only read /metrics (Prometheus).",
)
@click.option("--tenant", "tenant_ref", help="The tenant a tenant-admin token is for.")
@click.option("--label", default="", help="A note saying who holds it.")
@click.option("--expires-in", "expires_in", type=int, help="Seconds until it stops working (default: never).")
@json_option
@with_db
def token_create(
    database: Database, scope: str, tenant_ref: str | None, label: str, expires_in: int | None, as_json: bool
) -> None:
    """Issue a token; it is shown once and only its hash is stored."""
    value, stored = provisioning.create_token(database, scope, tenant_ref, label, expires_in)
    if as_json:
        emit({"token": value, **stored.public()}, (), True)
    else:
        click.echo(value)


TOKEN_COLUMNS = ("id", "scope", "tenant", "label", "expires_at", "revoked", "last_used_at")


@token.command("list")
@json_option
@with_db
def token_list(database: Database, as_json: bool) -> None:
    """List tokens: scope, tenant, expiry, last use.

    Never the tokens themselves: only their hashes are stored."""
    emit(provisioning.list_tokens(database), TOKEN_COLUMNS, as_json)


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@with_db
def token_revoke(database: Database, token_id: str) -> None:
    """Revoke a token by its id; it stops working at once.

    The id is the first column of `fsfarm token list`."""
    revoked = provisioning.revoke_token(database, token_id)
    click.echo(f"token {revoked.id} ({revoked.scope}{', ' + revoked.label if revoked.label else ''}) revoked")


commands: list[click.Command] = [
    up,
    db,
    node,
    mixers,
    tenant,
    placement,
    token,
    *(_child_group(kind) for kind in CHILD_COMMANDS),
]
