"""Farm-level resources: FreeSWITCH nodes and HD mixers (farm admins only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from controller import provisioning
from controller.bearer import body, database, farm_admin
from controller.stores import mixers, nodes

blueprint = Blueprint("nodes", __name__, url_prefix="/api/v1")


@blueprint.get("/nodes")
@farm_admin
def list_nodes() -> Any:
    with database().transaction() as conn:
        return jsonify([n.public() for n in nodes.list_all(conn)])


@blueprint.post("/nodes")
@farm_admin
def add_node() -> Any:
    return jsonify(provisioning.add_node(database(), body()).public()), 201


@blueprint.get("/nodes/<ref>")
@farm_admin
def get_node(ref: str) -> Any:
    with database().transaction() as conn:
        return jsonify(provisioning.get_node(conn, ref).public())


@blueprint.patch("/nodes/<ref>")
@farm_admin
def update_node(ref: str) -> Any:
    return jsonify(provisioning.update_node(database(), ref, body()).public())


@blueprint.post("/nodes/<ref>/drain")
@farm_admin
def drain_node(ref: str) -> Any:
    return jsonify(provisioning.drain_node(database(), ref).public())


@blueprint.delete("/nodes/<ref>")
@farm_admin
def remove_node(ref: str) -> Any:
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    return jsonify(provisioning.remove_node(database(), ref, force=force).public())


@blueprint.get("/mixers")
@farm_admin
def list_mixers() -> Any:
    with database().transaction() as conn:
        return jsonify([m.public() for m in mixers.list_all(conn)])


@blueprint.post("/mixers")
@farm_admin
def add_mixer() -> Any:
    return jsonify(provisioning.add_mixer(database(), body()).public()), 201


@blueprint.delete("/mixers/<ref>")
@farm_admin
def remove_mixer(ref: str) -> Any:
    return jsonify(provisioning.remove_mixer(database(), ref).public())
