"""``GET /api/v1/status``: what is wrong with the farm and what to do, as ``fsfarm status`` prints it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from controller import status
from controller.bearer import database, farm_admin

blueprint = Blueprint("status", __name__, url_prefix="/api/v1")


@blueprint.get("/status")
@farm_admin
def farm_status() -> Any:
    """What is wrong with the farm and what to do, in sentences."""
    live = status.ask_probes(current_app.extensions.get(status.PROBES_KEY, {}))
    with database().transaction() as conn:
        reading = status.read_farm(conn, live)
    found = status.findings(reading)
    return jsonify(
        {"healthy": status.healthy(found), "findings": [f.public() for f in found], "reading": reading.public()}
    )
