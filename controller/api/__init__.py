"""The controller's HTTP side: a Flask app factory with one blueprint per surface.

Rooms other than the controller (xmlcurl, esl_workers) add their own blueprints through a
``register(app)`` function in their ``web`` module.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from controller.config import Settings
from controller.database import Database
from controller.errors import FarmError

log = logging.getLogger(__name__)

ROOM_WEB_MODULES = ("xmlcurl.web", "esl_workers.web")
MAX_BODY = 1024 * 1024


def create_app(db: Database, settings: Settings | None = None) -> Flask:
    """Build the WSGI app for a database; ``settings`` default to the environment's."""
    from controller.api import auth, health, join, nodes, openapi, placement, status, storage, tenants

    app = Flask("fsfarm")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["fsfarm.db"] = db
    app.extensions["fsfarm.settings"] = settings or Settings.from_env()

    for module in (health, nodes, tenants, placement, auth, openapi, storage, join, status):
        app.register_blueprint(module.blueprint)
    for name in ROOM_WEB_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)

    @app.errorhandler(FarmError)
    def farm_error(exc: FarmError) -> Any:
        return jsonify(exc.as_json()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify({"error": (exc.description or exc.name).rstrip("."), "detail": None}), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return jsonify({"error": "internal error; the controller log has the details", "detail": None}), 500

    return app
