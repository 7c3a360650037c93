"""Token endpoints: issue, list and revoke (the checks themselves are in ``controller.bearer``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from controller import provisioning
from controller import validation as v
from controller.bearer import body, database, farm_admin, requires_token
from controller.documented import documented
from controller.domain import TOKEN_SCOPES

blueprint = Blueprint("auth", __name__, url_prefix="/api/v1")


# What ``create_token`` reads from the body; ``provisioning.create_token`` checks each.
TOKEN_FIELDS = {
    "scope": v.Field(v.one_of(*TOKEN_SCOPES), required=True),
    "tenant": v.Field(v.reference),
    "label": v.Field(v.text),
    "expires_in": v.Field(provisioning.TOKEN_LIFETIME),
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
        database(), str(data.get("scope", "")), data.get("tenant"), str(data.get("label", "")), data.get("expires_in")
    )
    return jsonify({"token": token, **stored.public()}), 201


@blueprint.get("/tokens")
@requires_token
def list_tokens() -> Any:
    """List tokens (never their values): a farm admin sees every one, a tenant admin its own tenant's."""
    tenant_id = None if g.token.scope == "farm-admin" else g.token.tenant_id
    return jsonify(provisioning.list_tokens(database(), tenant_id))


@blueprint.delete("/tokens/<token_id>")
@farm_admin
def revoke_token(token_id: str) -> Any:
    """Revoke a token by id; it stops working at once."""
    return jsonify(provisioning.revoke_token(database(), token_id).public())
