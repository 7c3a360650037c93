"""Liveness for load balancers and operators: is the controller up and can it reach PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from controller.bearer import database
from controller.errors import Unavailable

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Any:
    try:
        with database().transaction() as conn:
            conn.execute("SELECT 1")
    except Unavailable as exc:
        return jsonify({"status": "degraded", "database": "unreachable", "detail": exc.detail}), 503
    return jsonify({"status": "ok", "database": "ok"})
