"""The controller's HTTP side: one Flask blueprint per surface, plus the error handlers every room shares.

The app itself is built by the wiring (``controller.app.web.create_app``), which registers these
blueprints and the rooms' own (xml_curl, calls).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from controller.errors import FarmError, TooManyFailures

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def register(app: Flask) -> None:
    """Add the controller's blueprints (nodes, tenants, placement, tokens, storage, join, status, metrics...)."""
    from controller.api import (
        auth,
        billing,
        health,
        join,
        metrics,
        nodes,
        openapi,
        placement,
        status,
        storage,
        tenants,
    )

    for module in (health, nodes, tenants, placement, auth, openapi, storage, join, status, billing):
        app.register_blueprint(module.blueprint)
    metrics.register(app)


def handle_errors(app: Flask) -> None:
    """Every error answers JSON: a FarmError with its status, HTTP errors as such, anything else a logged 500."""

    @app.errorhandler(FarmError)
    def farm_error(exc: FarmError) -> Any:
        if isinstance(exc, TooManyFailures):
            return jsonify(exc.as_json()), exc.status, {"Retry-After": str(exc.retry_after)}
        return jsonify(exc.as_json()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify({"error": (exc.description or exc.name).rstrip("."), "detail": None}), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return jsonify({"error": "internal error; the controller log has the details", "detail": None}), 500
