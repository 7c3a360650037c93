"""Tenants and everything inside them: users, conferences, IVRs, gateways and numbers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from controller import provisioning, status, user_import
from controller import validation as v
from controller.bearer import body, database, farm_admin, requires_token, visible_tenant
from controller.documented import documented
from controller.errors import Forbidden, Invalid
from controller.stores import tenants

blueprint = Blueprint("tenants", __name__, url_prefix="/api/v1")

# What a tenant admin may change on its own tenant; the rest is the farm's business.
TENANT_ADMIN_FIELDS = {"name"}
# Each collection inside a tenant, documented as its own paths with its own fields.
_EACH_KIND = ("kind", {name: k.fields for name, k in provisioning.KINDS.items()})
_EACH_KIND_LISTED = ("kind", dict.fromkeys(provisioning.KINDS))


def _only_farm_may_pin(data: Any) -> None:
    if g.token.scope != "farm-admin" and isinstance(data, dict) and "pinned_node" in data:
        raise Forbidden("only a farm admin may pin to a node", ["pinned_node"])


@blueprint.get("/tenants")
@requires_token
def list_tenants() -> Any:
    """List tenants (a tenant admin sees its own)."""
    with database().transaction() as conn:
        found = tenants.list_all(conn)
    if g.token.scope != "farm-admin":
        found = [t for t in found if t.id == g.token.tenant_id]
    return jsonify([t.public() for t in found])


@blueprint.post("/tenants")
@documented(provisioning.TENANT_FIELDS, status=201)
@farm_admin
def add_tenant() -> Any:
    """Create a tenant; the answer says where it runs, and why not on a live node if it is not."""
    created = provisioning.add_tenant(database(), body())
    with database().transaction() as conn:
        node, warnings = status.tenant_warnings(conn, created.id, created.domain)
    # `warnings`: why the new tenant is not on a live node yet (empty when it is).
    return jsonify({**created.public(), "node": node, "warnings": warnings}), 201


@blueprint.get("/tenants/<ref>")
@requires_token
def get_tenant(ref: str) -> Any:
    """Show a tenant by domain or id."""
    visible_tenant(ref)
    with database().transaction() as conn:
        return jsonify(provisioning.get_tenant(conn, ref).public())


@blueprint.patch("/tenants/<ref>")
@documented(provisioning.TENANT_FIELDS, partial=True, errors=(403,))
@requires_token
def update_tenant(ref: str) -> Any:
    """Change a tenant (a tenant admin may change only its name)."""
    visible_tenant(ref)
    data = body()
    if g.token.scope != "farm-admin" and isinstance(data, dict) and set(data) - TENANT_ADMIN_FIELDS:
        raise Forbidden("only a farm admin may change these fields", sorted(set(data) - TENANT_ADMIN_FIELDS))
    return jsonify(provisioning.update_tenant(database(), ref, data).public())


@blueprint.delete("/tenants/<ref>")
@documented(query={"force": "true: delete it even with users or numbers, and them with it"})
@farm_admin
def remove_tenant(ref: str) -> Any:
    """Delete a tenant and everything in it."""
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    return jsonify(provisioning.remove_tenant(database(), ref, force=force).public())


@blueprint.get("/tenants/<ref>/<kind>")
@documented(expand=_EACH_KIND_LISTED)
@requires_token
def list_children(ref: str, kind: str) -> Any:
    """List a tenant's {kind}."""
    provisioning.kind(kind)
    visible_tenant(ref)
    return jsonify([c.public() for c in provisioning.list_children(database(), kind, ref)])


@blueprint.post("/tenants/<ref>/<kind>")
@documented(expand=_EACH_KIND, status=201, errors=(403,))
@requires_token
def add_child(ref: str, kind: str) -> Any:
    """Create one of a tenant's {kind}."""
    provisioning.kind(kind)
    visible_tenant(ref)
    data = body()
    _only_farm_may_pin(data)
    return jsonify(provisioning.add_child(database(), kind, ref, data).public()), 201


@blueprint.post("/tenants/<ref>/users/import")
@documented(user_import.IMPORT_FIELDS, errors=(413,))
@requires_token
def import_users(ref: str) -> Any:
    """Import a tenant's users from a CSV file (ours or FusionPBX's extension export), with a per-row report.

    The body is JSON: `csv` holds the file (its first line names the columns: the users fields, or
    FusionPBX's extension, password, effective_caller_id_name, voicemail_password, call_timeout...),
    `on_conflict` says what a row whose extension exists does (fail, the default: an error row; skip;
    update), `dry_run` checks every row and stores nothing. Each row is checked as `POST .../users`
    checks one user and stands alone: a row with an error changes nothing and the others are stored.
    The answer: `created`, `updated`, `skipped`, `errors` (counts), `note` (one sentence), `columns`
    (the file's column -> the field it fills), `ignored_columns`, and `rows`: per row its `row`
    (the header is row 1), `extension` and `outcome`, and for an error its `field`, `column` and
    `error`. A file that cannot be read as a whole (empty, no header, unknown columns, over 5000 rows
    or 1 MiB) is one 400 naming what is wrong, and nothing is stored.
    """
    tenant = visible_tenant(ref)
    if request.mimetype == "text/csv":
        raise Invalid('body: send JSON {"csv": "<the file>", "on_conflict": ..., "dry_run": ...}', {"field": "body"})
    data = v.parse(user_import.IMPORT_FIELDS, body())
    report = user_import.import_users(
        database(),
        str(tenant.id),
        data["csv"],
        on_conflict=data.get("on_conflict", "fail"),
        dry_run=data.get("dry_run", False),
    )
    return jsonify(report.as_json())


@blueprint.get("/tenants/<ref>/<kind>/<child>")
@documented(expand=_EACH_KIND_LISTED)
@requires_token
def get_child(ref: str, kind: str, child: str) -> Any:
    """Show one of a tenant's {kind}."""
    provisioning.kind(kind)
    visible_tenant(ref)
    return jsonify(provisioning.get_child(database(), kind, ref, child).public())


@blueprint.patch("/tenants/<ref>/<kind>/<child>")
@documented(expand=_EACH_KIND, partial=True, errors=(403,))
@requires_token
def update_child(ref: str, kind: str, child: str) -> Any:
    """Change one of a tenant's {kind}."""
    provisioning.kind(kind)
    visible_tenant(ref)
    data = body()
    _only_farm_may_pin(data)
    return jsonify(provisioning.update_child(database(), kind, ref, child, data).public())


@blueprint.delete("/tenants/<ref>/<kind>/<child>")
@documented(expand=_EACH_KIND_LISTED)
@requires_token
def remove_child(ref: str, kind: str, child: str) -> Any:
    """Delete one of a tenant's {kind}."""
    provisioning.kind(kind)
    visible_tenant(ref)
    return jsonify(provisioning.remove_child(database(), kind, ref, child).public())
