"""The OpenAPI 3.1 description of the admin API, built from one table of routes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from controller import provisioning

blueprint = Blueprint("openapi", __name__, url_prefix="/api/v1")

# (method, path, summary, request fields or None, success status)
ROUTES: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("get", "/nodes", "List FreeSWITCH nodes (farm admin)", None, 200),
    ("post", "/nodes", "Register a node", provisioning.NODE_FIELDS, 201),
    ("get", "/nodes/{node}", "Show a node by name or id", None, 200),
    ("patch", "/nodes/{node}", "Change a node", provisioning.NODE_FIELDS, 200),
    ("post", "/nodes/{node}/drain", "Stop placing tenants on a node; its tenants move", None, 200),
    ("delete", "/nodes/{node}", "Remove a node (?force=true moves its tenants)", None, 200),
    ("get", "/mixers", "List HD mixers", None, 200),
    ("post", "/mixers", "Register a mixer", provisioning.MIXER_FIELDS, 201),
    ("delete", "/mixers/{mixer}", "Remove a mixer", None, 200),
    ("get", "/tenants", "List tenants (a tenant admin sees its own)", None, 200),
    ("post", "/tenants", "Create a tenant", provisioning.TENANT_FIELDS, 201),
    ("get", "/tenants/{tenant}", "Show a tenant by domain or id", None, 200),
    ("patch", "/tenants/{tenant}", "Change a tenant", provisioning.TENANT_FIELDS, 200),
    ("delete", "/tenants/{tenant}", "Delete a tenant (?force=true with users or numbers)", None, 200),
    ("get", "/placement", "Where each tenant and conference runs", None, 200),
    ("get", "/status", "What is wrong with the farm and what to do, in sentences (farm admin)", None, 200),
    ("post", "/tokens", "Issue a bearer token (farm admin)", None, 201),
]
for _kind, _spec in provisioning.KINDS.items():
    ROUTES += [
        ("get", f"/tenants/{{tenant}}/{_kind}", f"List {_kind}", None, 200),
        ("post", f"/tenants/{{tenant}}/{_kind}", f"Create a {_spec.name}", _spec.fields, 201),
        ("get", f"/tenants/{{tenant}}/{_kind}/{{ref}}", f"Show a {_spec.name}", None, 200),
        ("patch", f"/tenants/{{tenant}}/{_kind}/{{ref}}", f"Change a {_spec.name}", _spec.fields, 200),
        ("delete", f"/tenants/{{tenant}}/{_kind}/{{ref}}", f"Delete a {_spec.name}", None, 200),
    ]

_ERROR = {"$ref": "#/components/schemas/Error"}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, fields, status in ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in ("node", "mixer", "tenant", "ref")
                if f"{{{p}}}" in path
            ],
            "responses": {
                str(status): {"description": "OK", "content": {"application/json": {"schema": {}}}},
                **{
                    str(code): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
                    for code, text in (
                        (400, "invalid input"),
                        (401, "missing or invalid token"),
                        (404, "not found, or not yours"),
                        (409, "conflicts with stored state"),
                    )
                },
            },
        }
        if fields is not None:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {name: {} for name in fields},
                            "required": [name for name, f in fields.items() if f.required],
                        }
                    }
                },
            }
        paths.setdefault(f"/api/v1{path}", {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "fsfarm admin API", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "detail": {}},
                }
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi() -> object:
    return jsonify(document())
