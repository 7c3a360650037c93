"""Farm-level resources: FreeSWITCH nodes and HD mixers (farm admins only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from controller import provisioning
from controller.bearer import body, database, farm_admin
from controller.documented import documented
from controller.stores import failovers, live_calls, mixers, nodes, placements, registrations

blueprint = Blueprint("nodes", __name__, url_prefix="/api/v1")


@blueprint.get("/nodes")
@farm_admin
def list_nodes() -> Any:
    """List FreeSWITCH nodes, each with its live calls, registrations and tenants right now."""
    with database().transaction() as conn:
        found = nodes.list_all(conn)
        calls = _per_node(live_calls.counts(conn))
        bindings = _per_node(registrations.counts(conn))
        hosted = placements.tenants_per_node(conn)
    return jsonify(
        [
            {
                **n.public(),
                "live_calls": calls.get(n.id, 0),
                "registrations": bindings.get(n.id, 0),
                "tenants": hosted.get(n.id, 0),
            }
            for n in found
        ]
    )


def _per_node(counts: list[dict[str, Any]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for row in counts:
        out[row["node_id"]] = out.get(row["node_id"], 0) + int(row["n"])
    return out


@blueprint.get("/failovers")
@farm_admin
def list_failovers() -> Any:
    """The latest failovers, newest first: each decision's sentence, its timings and what it moved."""
    with database().transaction() as conn:
        found = failovers.recent(conn)
    out = []
    for f in found:
        row = f.public()
        start = f.detected_at or f.created_at
        # Seconds from the node's death being noticed to the decision, and to the move being done.
        row["decided_after"] = (f.created_at - start).total_seconds() if start and f.created_at else None
        row["completed_after"] = (f.completed_at - start).total_seconds() if start and f.completed_at else None
        out.append(row)
    return jsonify(out)


@blueprint.post("/nodes")
@documented(provisioning.NODE_FIELDS, status=201)
@farm_admin
def add_node() -> Any:
    """Register a node; the answer carries its own xml_curl password, shown only here."""
    node, password = provisioning.register_node(database(), body())
    return jsonify({**node.public(), "xmlcurl_password": password}), 201


@blueprint.get("/nodes/<ref>")
@farm_admin
def get_node(ref: str) -> Any:
    """Show a node by name or id."""
    with database().transaction() as conn:
        return jsonify(provisioning.get_node(conn, ref).public())


@blueprint.patch("/nodes/<ref>")
@documented(provisioning.NODE_FIELDS, partial=True)
@farm_admin
def update_node(ref: str) -> Any:
    """Change a node."""
    return jsonify(provisioning.update_node(database(), ref, body()).public())


@blueprint.post("/nodes/<ref>/xmlcurl-credentials")
@farm_admin
def rotate_xmlcurl(ref: str) -> Any:
    """Issue a node new xml_curl credentials (the old password stops working); the password is shown only here."""
    node, password = provisioning.rotate_xmlcurl_credentials(database(), ref)
    return jsonify({"node": node.name, "xmlcurl_user": node.xmlcurl_user, "xmlcurl_password": password})


@blueprint.post("/nodes/<ref>/drain")
@farm_admin
def drain_node(ref: str) -> Any:
    """Stop placing tenants on a node; its tenants move."""
    return jsonify(provisioning.drain_node(database(), ref).public())


@blueprint.delete("/nodes/<ref>")
@documented(query={"force": "true: remove it even while it hosts tenants, moving them"})
@farm_admin
def remove_node(ref: str) -> Any:
    """Remove a node."""
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    return jsonify(provisioning.remove_node(database(), ref, force=force).public())


@blueprint.get("/mixers")
@farm_admin
def list_mixers() -> Any:
    """List HD mixers."""
    with database().transaction() as conn:
        return jsonify([m.public() for m in mixers.list_all(conn)])


@blueprint.post("/mixers")
@documented(provisioning.MIXER_FIELDS, status=201)
@farm_admin
def add_mixer() -> Any:
    """Register an HD mixer."""
    return jsonify(provisioning.add_mixer(database(), body()).public()), 201


@blueprint.put("/mixers/<ref>/control-token")
@documented(provisioning.MIXER_TOKEN_FIELDS)
@farm_admin
def set_mixer_token(ref: str) -> Any:
    """Replace the bearer token the controller sends to a mixer's control API (never shown again)."""
    return jsonify(provisioning.set_mixer_token(database(), ref, body()).public())


@blueprint.delete("/mixers/<ref>")
@farm_admin
def remove_mixer(ref: str) -> Any:
    """Remove an HD mixer."""
    return jsonify(provisioning.remove_mixer(database(), ref).public())
