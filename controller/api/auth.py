"""The token-issuing endpoint (the checks themselves are in ``controller.bearer``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from controller import provisioning
from controller import validation as v
from controller.bearer import body, database, farm_admin
from controller.documented import documented
from controller.domain import TOKEN_SCOPES

blueprint = Blueprint("auth", __name__, url_prefix="/api/v1")


# What ``create_token`` reads from the body; ``provisioning.create_token`` checks each.
TOKEN_FIELDS = {
    "scope": v.Field(v.one_of(*TOKEN_SCOPES), required=True),
    "tenant": v.Field(v.reference),
    "label": v.Field(v.text),
}


@blueprint.post("/tokens")
@documented(TOKEN_FIELDS, loose=True, status=201)
@farm_admin
def create_token() -> Any:
    """Issue an API token (farm-admin, tenant-admin or join); the value is shown only here."""
    data = body()
    if not isinstance(data, dict):
        data = {}
    token, stored = provisioning.create_token(
        database(), str(data.get("scope", "")), data.get("tenant"), str(data.get("label", ""))
    )
    return jsonify({"token": token, **stored.public()}), 201
