"""The OpenAPI 3.1 description of the admin API, generated from the served routes on each request.

Every rule of the app's ``url_map`` under ``/api/`` becomes an operation: its path (``<name>`` as
``{name}``), methods and path parameters come from the rule; its summary from the view's docstring;
its security from the guard (``requires_token``, ``farm_admin``); its request body from the field
spec the view checks (``@documented``). No route is listed by hand, so none can be left out; what
a route cannot say itself (success status, query parameters, a body read key by key) is declared
with ``@documented`` on the view.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from werkzeug.routing import Rule

from controller.documented import Doc, Fields, doc_of, documented, scopes_of
from controller.validation import Field

blueprint = Blueprint("openapi", __name__, url_prefix="/api/v1")

PREFIX = "/api/"
_VARIABLE = re.compile(r"<(?:(?P<converter>[a-zA-Z_]\w*)(?:\((?P<args>.*?)\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_REASONS = {
    400: "invalid input (the detail names the field)",
    401: "missing or invalid token",
    403: "the token's scope may not do this",
    404: "not found, or not yours",
    409: "conflicts with stored state",
    413: "the upload is over its size limit",
    503: "a dependency (database, storage, a node) cannot be reached; retry later",
}
_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "one sentence saying what is wrong"},
        "detail": {
            "description": "what the sentence refers to, or null: e.g. {field, value} for a field that fails "
            "its check, {missing} or {allowed} for the set of fields, {limit} for a size",
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "value": {},
                        "missing": {"type": "array", "items": {"type": "string"}},
                        "allowed": {"type": "array", "items": {"type": "string"}},
                        "hint": {"type": "string"},
                        "limit": {"type": "integer"},
                    },
                },
                {"type": "array", "items": {"type": "string"}},
                {"type": "null"},
            ],
        },
    },
}
_WAV = {"type": "string", "contentMediaType": "audio/wav"}


def path_of(rule: str) -> str:
    """A werkzeug rule (``/nodes/<ref>``, ``/x/<path:name>``) as an OpenAPI path (``/nodes/{ref}``)."""
    return _VARIABLE.sub(lambda m: "{" + m["name"] + "}", rule)


def _parameter(name: str, converter: str | None, doc: Doc) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"} if converter == "int" else {"type": "string"}
    if name in doc.choices:
        schema["enum"] = sorted(doc.choices[name])
    param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if converter == "path":
        param["description"] = "may contain '/'"
    return param


def _body_schema(fields: Fields, *, partial: bool, loose: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: f.schema() if isinstance(f, Field) else dict(f) for name, f in fields.items()},
    }
    if not loose:
        schema["additionalProperties"] = False
    required = [] if partial else [name for name, f in fields.items() if isinstance(f, Field) and f.required]
    if required:
        schema["required"] = required
    return schema


def _request_body(doc: Doc, fields: Fields | None) -> dict[str, Any] | None:
    if doc.upload:
        return {
            "required": True,
            "content": {
                "audio/wav": {"schema": _WAV},
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": {"file": _WAV}}
                },
            },
        }
    if fields is None:
        return None
    schema = _body_schema(fields, partial=doc.partial, loose=doc.loose)
    return {"required": not doc.loose, "content": {"application/json": {"schema": schema}}}


def _security(view: Callable[..., Any], doc: Doc) -> list[dict[str, list[str]]]:
    scopes = doc.scopes if doc.scopes is not None else scopes_of(view)
    # OpenAPI 3.1 lets a bearer requirement name roles; any one of the listed scopes will do.
    return [{"bearer": [scope]} for scope in scopes or ()]


def _errors(view: Callable[..., Any], method: str, doc: Doc, has_input: bool, has_params: bool) -> list[int]:
    codes = set(doc.errors)
    if doc.scopes:  # the view checks its own token against the database
        codes |= {401, 503}
    if doc.scopes is None and scopes_of(view) is not None:
        # A token of the wrong scope gets the same 404 as a missing object; the database may be away.
        codes |= {401, 404, 503}
    if has_params:
        codes |= {404, 503}
    if has_input:
        codes.add(400)
    if method != "get":
        codes.add(409)
    if doc.upload:
        codes.add(413)
    return sorted(codes)


def _operation(
    rule: Rule, method: str, view: Callable[..., Any], doc: Doc, fill: tuple[str, str] | None
) -> dict[str, Any]:
    text = inspect.getdoc(view) or rule.endpoint
    if fill is not None:
        text = text.replace("{" + fill[0] + "}", fill[1])
    # The first paragraph is the summary (joined if it wraps), the rest the description.
    first, _, description = text.partition("\n\n")
    summary = " ".join(first.split())
    parameters = [
        _parameter(m["name"], m["converter"], doc)
        for m in _VARIABLE.finditer(rule.rule)
        if fill is None or m["name"] != fill[0]
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": what}
        for name, what in doc.query.items()
    ]
    fields = doc.body
    if fill is not None and doc.expand is not None:
        fields = doc.expand[1][fill[1]]
    body = _request_body(doc, fields)
    security = _security(view, doc)
    success = {"description": "OK"} | (
        {"content": {"audio/wav": {"schema": _WAV}}} if doc.download else {"content": {"application/json": {}}}
    )
    op: dict[str, Any] = {
        "operationId": rule.endpoint if fill is None else f"{rule.endpoint}.{fill[1]}",
        "summary": summary,
        "tags": [rule.endpoint.partition(".")[0]],
        "security": security,
        "responses": {
            **{str(code): success for code in doc.status},
            **{
                str(code): {"$ref": f"#/components/responses/E{code}"}
                for code in _errors(
                    view, method, doc, bool(body or doc.query), any(p["in"] == "path" for p in parameters)
                )
            },
        },
    }
    if description.strip():
        op["description"] = description.strip()
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    return op


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route ``app`` serves under ``/api/``."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        doc = doc_of(view)
        fills: list[tuple[str, str] | None] = [None]
        if doc.expand is not None:
            fills = [(doc.expand[0], value) for value in doc.expand[1]]
        for fill in fills:
            path = path_of(rule.rule)
            if fill is not None:
                path = path.replace("{" + fill[0] + "}", fill[1])
            for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
                paths.setdefault(path, {})[method.lower()] = _operation(rule, method.lower(), view, doc, fill)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fsfarm admin API",
            "version": "1",
            "description": "Generated from the routes the controller serves; bad input answers 4xx with "
            '{"error": ..., "detail": ...} and changes nothing.',
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `fsfarm token create`; its scope (farm-admin, tenant-admin, "
                    "node-join) is listed on each operation",
                }
            },
            "schemas": {"Error": _ERROR},
            "responses": {
                f"E{code}": {
                    "description": reason,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, reason in _REASONS.items()
            },
        },
    }


@blueprint.get("/openapi.json")
@documented(scopes=())
def openapi() -> Any:
    """This document: every route under /api/, generated from the routes themselves."""
    return jsonify(document(current_app))
