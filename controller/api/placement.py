"""Where each tenant and conference runs, and which placement generation decided it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from controller import provisioning
from controller.bearer import database, farm_admin, requires_token
from controller.stores import placements

blueprint = Blueprint("placement", __name__, url_prefix="/api/v1")


@blueprint.get("/placement")
@requires_token
def placement() -> Any:
    """Where each tenant and conference runs (a tenant admin sees its own)."""
    # A tenant admin sees where its own tenant and rooms run, nothing of the others.
    scope = None if g.token.scope == "farm-admin" else g.token.tenant_id
    return jsonify(provisioning.placement_overview(database(), tenant_id=scope))


@blueprint.get("/placement/generations")
@farm_admin
def generations() -> Any:
    """The latest placement generations, newest first: what each decided and why, and how many it moved."""
    with database().transaction() as conn:
        return jsonify([g.public() for g in placements.history(conn, 50)])
