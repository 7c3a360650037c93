"""REST routes of the ESL room under /api/v1: live calls, CDRs, registrations, rooms, and commands.

Tenant admins see and command only their tenant (anything else is a 404); node-level commands
and node views are for farm admins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from controller import validation
from controller.bearer import body_object, database, farm_admin, requires_token, visible_tenant
from controller.documented import documented
from controller.domain import CommandStatus
from controller.errors import NotFound
from controller.stores import cdrs, conference_members, live_calls, nodes, registrations
from controller.stores import node_stats as stats_store
from esl_workers import commands, conferences

blueprint = Blueprint("esl", __name__, url_prefix="/api/v1")
_WAIT = validation.number(0, 60)
_LIMIT = validation.integer(-(10**9), 10**9)
# Commands whose missing argument means "all" or "everything": they need a body that says so.
_SWEEPING_ROOM_ACTIONS = commands.MEMBER_ACTIONS | {"norecord"}
_SWEEPING_NODE_COMMANDS = frozenset({"xml_flush_cache"})


def _rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in items:
        out.append(
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if k.endswith("_id") and v else v)
                for k, v in row.items()
                if k not in ("node_id",)
            }
        )
    return out


@blueprint.get("/tenants/<tenant_ref>/calls")
@requires_token
def tenant_calls(tenant_ref: str) -> Any:
    """List a tenant's live calls."""
    tenant = visible_tenant(tenant_ref)
    with database().transaction() as conn:
        return jsonify(_rows(live_calls.list_for(conn, tenant_id=tenant.id)))


@blueprint.post("/tenants/<tenant_ref>/calls")
@documented(
    {
        "from": {"type": "string", "description": "the extension that rings first"},
        "to": {"type": "string", "description": "what it then dials, in the tenant's dialplan"},
        "caller_id": {"type": "string", "description": "the caller id number shown (default: from)"},
        "wait": {"type": "number", "minimum": 0, "maximum": 60, "description": "seconds to wait for the job's outcome"},
    },
    loose=True,
    status=(202, 200),
)
@requires_token
def click_to_call(tenant_ref: str) -> Any:
    """Click-to-call: ``{"from": "1001", "to": "1002", "wait": 0}``; answers 202 with the bgapi job."""
    tenant = visible_tenant(tenant_ref)
    data = body_object()
    wait = _WAIT("wait", data["wait"]) if data.get("wait") is not None else 0.0
    job = commands.originate(
        database(),
        tenant,
        str(data.get("from", "")),
        str(data.get("to", "")),
        str(data.get("caller_id", "")),
        wait=wait,
    )
    return jsonify(_rows([job])[0]), 202 if job["status"] == CommandStatus.PENDING else 200


@blueprint.delete("/tenants/<tenant_ref>/calls/<call>")
@documented(query={"cause": "the hangup cause (default NORMAL_CLEARING)"})
@requires_token
def hangup_call(tenant_ref: str, call: str) -> Any:
    """Hang up a live call (``call`` is its channel uuid)."""
    tenant = visible_tenant(tenant_ref)
    cause = request.args.get("cause", "NORMAL_CLEARING")
    return jsonify(commands.hangup(database(), tenant, call, cause).public())


@blueprint.post("/tenants/<tenant_ref>/calls/<call>/transfer")
@documented(
    {
        "to": {"type": "string", "description": "where to, in the tenant's dialplan"},
        "leg": {"type": "string", "enum": ["", "-bleg", "-both"], "description": "-bleg moves the other party"},
    },
    loose=True,
)
@requires_token
def transfer_call(tenant_ref: str, call: str) -> Any:
    """Transfer a live call to another destination in the tenant's dialplan."""
    tenant = visible_tenant(tenant_ref)
    data = body_object()
    return jsonify(
        commands.transfer(database(), tenant, call, str(data.get("to", "")), str(data.get("leg", ""))).public()
    )


@blueprint.get("/tenants/<tenant_ref>/cdrs")
@documented(query={"limit": "at most this many, newest first (1 to 1000, default 100)"})
@requires_token
def tenant_cdrs(tenant_ref: str) -> Any:
    """List a tenant's call detail records."""
    tenant = visible_tenant(tenant_ref)
    limit = max(1, min(_LIMIT("limit", request.args.get("limit", "100")), 1000))
    with database().transaction() as conn:
        return jsonify(_rows(cdrs.list_for_tenant(conn, tenant.id, limit)))


@blueprint.get("/tenants/<tenant_ref>/registrations")
@requires_token
def tenant_registrations(tenant_ref: str) -> Any:
    """List the SIP registrations of a tenant's phones."""
    tenant = visible_tenant(tenant_ref)
    with database().transaction() as conn:
        return jsonify(_rows(registrations.list_for_tenant(conn, tenant.id)))


@blueprint.get("/tenants/<tenant_ref>/conferences/<number>/members")
@requires_token
def room_members(tenant_ref: str, number: str) -> Any:
    """Members by member id; for an HD room on a mixer, its participants (member ids are participant ids)."""
    tenant = visible_tenant(tenant_ref)
    with database().transaction() as conn:
        on_mixer = commands.mixer_of_room(conn, tenant, number)
        if on_mixer is None:
            room = conferences.room_name(number, tenant.domain)
            return jsonify(_rows(conference_members.members(conn, tenant.id, room)))
    return jsonify(commands.mixer_members(*on_mixer))


@blueprint.post("/tenants/<tenant_ref>/conferences/<number>/<action>")
@documented(
    {
        "member": {
            "type": "string",
            "description": "the member id or all (an empty body {} means all) for mute, deaf, kick and their undo",
        },
        "name": {
            "type": "string",
            "pattern": commands.RECORDING_NAME.pattern,
            "description": "the recording's file name for record and norecord (the controller picks the folder)",
        },
        "path": {"type": "string", "description": "deprecated spelling of name: a bare file name, never a path"},
    },
    loose=True,
    choices={"action": commands.CONFERENCE_ACTIONS},
)
@requires_token
def room_command(tenant_ref: str, number: str, action: str) -> Any:
    """mute/unmute/deaf/undeaf/kick (``{"member": "2"}``, ``{}`` for all), lock/unlock, record/norecord, list.

    ``record`` takes an optional file ``name``; the recording goes to the tenant's own recordings
    folder on the shared mount (``conf-<number>/<name>``), never to a path the caller chose.
    """
    tenant = visible_tenant(tenant_ref)
    data = body_object(required=action in _SWEEPING_ROOM_ACTIONS)
    named = "name" if "name" in data else "path"
    answer = commands.conference(
        database(),
        tenant,
        number,
        action,
        str(data.get("member", "")),
        data.get(named, "") or "",
        shared_mount=current_app.extensions["fsfarm.settings"].storage.shared_mount,
        name_field=named,
    )
    return jsonify(answer.public())


@blueprint.get("/tenants/<tenant_ref>/jobs/<job_id>")
@requires_token
def tenant_job(tenant_ref: str, job_id: str) -> Any:
    """Show a background job (a click-to-call) of the tenant's."""
    tenant = visible_tenant(tenant_ref)
    return jsonify(_rows([commands.get_job(database(), job_id, tenant.id)])[0])


@blueprint.get("/nodes/<ref>/calls")
@farm_admin
def node_calls(ref: str) -> Any:
    """List the live calls on a node."""
    with database().transaction() as conn:
        node = nodes.get(conn, ref)
        if node is None:
            raise NotFound(f"no node {ref!r}")
        return jsonify(_rows(live_calls.list_for(conn, node_id=node.id)))


@blueprint.get("/nodes/<ref>/stats")
@farm_admin
def node_stats(ref: str) -> Any:
    """Show a node's health and its latest FreeSWITCH statistics."""
    with database().transaction() as conn:
        node = nodes.get(conn, ref)
        if node is None:
            raise NotFound(f"no node {ref!r}")
        stats = stats_store.for_node(conn, node.id) or {}
    return jsonify(
        {
            "node": node.name,
            "health": node.health,
            "health_reason": node.health_reason,
            "health_at": node.health_at.isoformat() if node.health_at else None,
            **(_rows([stats])[0] if stats else {}),
        }
    )


@blueprint.post("/nodes/<ref>/commands/<name>")
@documented(
    {"arg": {"type": "string", "description": "the command's argument"}},
    loose=True,
    choices={"name": commands.NODE_COMMANDS},
)
@farm_admin
def node_command(ref: str, name: str) -> Any:
    """reloadxml, xml_flush_cache (``{"arg": "directory"}``), sofia_rescan (``{"arg": "internal"}``).

    xml_flush_cache needs a body: ``{}`` flushes every section, so a lost or malformed body never does.
    """
    data = body_object(required=name in _SWEEPING_NODE_COMMANDS)
    return jsonify(commands.node_command(database(), ref, name, str(data.get("arg", ""))).public())


@blueprint.get("/jobs/<job_id>")
@farm_admin
def job(job_id: str) -> Any:
    """Show a background job."""
    return jsonify(_rows([commands.get_job(database(), job_id)])[0])


def spool_facts(spool_dir: Path) -> list[dict[str, Any]]:
    """Each non-empty CDR spool (one per node, named by node id), for `fsfarm status`."""
    out = []
    for path in sorted(spool_dir.glob("cdr-*.jsonl")):
        try:
            stat = path.stat()
            if stat.st_size == 0:
                continue
            with path.open("rb") as f:
                cdrs = sum(1 for line in f if line.strip())
        except OSError:
            continue
        out.append(
            {"node_id": path.stem.removeprefix("cdr-"), "cdrs": cdrs, "changed_at": stat.st_mtime, "path": str(path)}
        )
    return out


def register(app: Flask) -> None:
    """Plug the calls, CDRs, registrations and conference routes into the app (``controller.app.web``)."""
    spool_dir = app.extensions["fsfarm.settings"].esl_spool
    app.extensions.setdefault("fsfarm.status", {})["cdr_spool"] = lambda: spool_facts(spool_dir)
    app.register_blueprint(blueprint)
