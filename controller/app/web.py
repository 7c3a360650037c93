"""The WSGI app: the controller's blueprints and every room's, on one database (Flask app factory)."""

from __future__ import annotations

from flask import Flask

import esl_workers.web
import xmlcurl.web
from controller import api, console
from controller.config import Settings
from controller.database import Database
from controller.database.switch import SwitchDatabase
from controller.metrics import EXTENSION_KEY as METRICS_KEY
from controller.metrics import Series


def create_app(db: Database, settings: Settings | None = None, switch: SwitchDatabase | None = None) -> Flask:
    """Build the WSGI app for a database; ``settings`` default to the environment's; ``switch``: where the nodes
    share FreeSWITCH's state (their SIP profiles are pointed at it)."""
    app = Flask("fsfarm")
    app.config["MAX_CONTENT_LENGTH"] = api.MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["fsfarm.db"] = db
    app.extensions["fsfarm.settings"] = settings or Settings.from_env()
    app.extensions["fsfarm.switch"] = switch
    app.extensions[METRICS_KEY] = Series()  # before the rooms register: xml_curl records into it
    api.register(app)
    console.register(app)
    xmlcurl.web.register(app)
    esl_workers.web.register(app)
    api.handle_errors(app)
    return app
