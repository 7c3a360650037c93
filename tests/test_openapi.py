"""The OpenAPI document at /api/v1/openapi.json describes the routes the controller really serves."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from werkzeug.exceptions import MethodNotAllowed, NotFound

from controller import provisioning
from controller import validation as v

DOC = "/api/v1/openapi.json"
NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}


def _served(app: Any) -> set[tuple[str, str]]:
    """(endpoint, method) of every route under /api/ but the document itself."""
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint not in ("static", "openapi.openapi")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_every_served_route_is_documented_with_its_methods(app, client) -> None:  # type: ignore[no-untyped-def]
    doc = client.get(DOC).get_json()
    urls = app.url_map.bind("localhost")
    documented = set()
    for path, method, _ in _operations(doc):
        # A sample URL for the documented path must reach a served view with that method.
        url = re.sub(r"\{[^}]+\}", "x1", path)
        try:
            endpoint, _ = urls.match(url, method.upper())
        except (NotFound, MethodNotAllowed):
            pytest.fail(f"{method.upper()} {path} is documented but not served")
        documented.add((endpoint, method.upper()))
    missing = sorted(_served(app) - documented)
    assert missing == [], f"served but not in the document: {missing}"


def test_each_collection_of_a_tenant_has_its_own_paths(client) -> None:  # type: ignore[no-untyped-def]
    paths = client.get(DOC).get_json()["paths"]
    for kind, spec in provisioning.KINDS.items():
        assert set(paths[f"/api/v1/tenants/{{ref}}/{kind}"]) == {"get", "post"}
        assert set(paths[f"/api/v1/tenants/{{ref}}/{kind}/{{child}}"]) == {"get", "patch", "delete"}
        created = paths[f"/api/v1/tenants/{{ref}}/{kind}"]["post"]["requestBody"]["content"]["application/json"]
        assert set(created["schema"]["properties"]) == set(spec.fields)


def test_document_is_valid_openapi_3_1(client) -> None:  # type: ignore[no-untyped-def]
    doc = client.get(DOC).get_json()
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert all(op["summary"] and op["operationId"] for _, _, op in _operations(doc))
    assert len({op["operationId"] for _, _, op in _operations(doc)}) == len(_operations(doc))


def test_request_bodies_come_from_the_field_specs(client) -> None:  # type: ignore[no-untyped-def]
    paths = client.get(DOC).get_json()["paths"]

    def schema(path: str, method: str) -> dict[str, Any]:
        return paths[path][method]["requestBody"]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]

    users = schema("/api/v1/tenants/{ref}/users", "post")
    assert users["required"] == ["extension"]
    assert users["additionalProperties"] is False
    assert users["properties"]["ring_timeout"] == {"type": "integer", "minimum": 5, "maximum": 300}
    node = schema("/api/v1/nodes", "post")
    assert node["required"] == ["name", "sip_address", "esl_address", "esl_password"]
    assert node["properties"]["admin_state"]["enum"] == ["active", "draining", "disabled"]
    assert "required" not in schema("/api/v1/nodes/{ref}", "patch")  # a PATCH changes what it is given
    join = schema("/api/v1/join", "post")
    assert "esl_password" not in join["properties"]
    assert paths["/api/v1/join"]["post"]["security"] == [{"bearer": ["node-join"]}]


def test_a_field_spec_change_shows_in_the_document_and_in_the_check(admin, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def tenant_required() -> list[str]:
        op = client.get(DOC).get_json()["paths"]["/api/v1/tenants"]["post"]
        return op["requestBody"]["content"]["application/json"]["schema"]["required"]  # type: ignore[no-any-return]

    assert tenant_required() == ["domain"]
    monkeypatch.setitem(provisioning.TENANT_FIELDS, "name", v.Field(v.text, required=True))
    assert tenant_required() == ["domain", "name"]
    refused = admin.post("/api/v1/tenants", json={"domain": "acme.example"})
    assert refused.status_code == 400
    assert refused.get_json() == {"error": "missing field(s): name", "detail": {"missing": ["name"]}}


def test_documented_scopes_are_the_ones_the_routes_admit(admin, client, db) -> None:  # type: ignore[no-untyped-def]
    admin.post("/api/v1/tenants", json={"domain": "acme.example"})
    tenant_token, _ = provisioning.create_token(db, "tenant-admin", "acme.example")
    doc = client.get(DOC).get_json()
    checked = 0
    for path, method, op in _operations(doc):
        if method != "get" or "{" in path or not op["security"]:
            continue
        scopes = {scope for requirement in op["security"] for scope in requirement["bearer"]}
        assert client.get(path).status_code == 401, path
        as_tenant = client.get(path, headers={"Authorization": f"Bearer {tenant_token}"})
        assert as_tenant.status_code == (200 if "tenant-admin" in scopes else 404), path
        checked += 1
    assert checked >= 5  # nodes, mixers, tenants, placement, status
    assert client.get(DOC).status_code == 200  # the document itself needs no token
    assert doc["paths"][DOC]["get"]["security"] == []


def test_errors_answer_the_documented_shape(admin, client) -> None:  # type: ignore[no-untyped-def]
    doc = client.get(DOC).get_json()
    error = doc["components"]["schemas"]["Error"]
    add_node = doc["paths"]["/api/v1/nodes"]["post"]["responses"]
    answers = {
        400: admin.post("/api/v1/nodes", json={**NODE, "capacity": 0}),
        401: client.post("/api/v1/nodes", json=NODE),
        409: (admin.post("/api/v1/nodes", json=NODE), admin.post("/api/v1/nodes", json=NODE))[1],
    }
    for status, answer in answers.items():
        assert answer.status_code == status
        assert str(status) in add_node
        jsonschema.validate(answer.get_json(), error)
    assert answers[400].get_json()["detail"] == {"field": "capacity", "value": 0}
    unknown = admin.post("/api/v1/nodes", json={**NODE, "name": "fs2", "colour": "red"})
    assert unknown.status_code == 400 and "allowed" in unknown.get_json()["detail"]
    jsonschema.validate(unknown.get_json(), error)
    missing = admin.get("/api/v1/nodes/nope")
    assert missing.status_code == 404 and "404" in doc["paths"]["/api/v1/nodes/{ref}"]["get"]["responses"]
    jsonschema.validate(missing.get_json(), error)
