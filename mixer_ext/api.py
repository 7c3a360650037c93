"""The control API the controller drives: one Flask blueprint over a running Mixer."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from mixer_ext.engine import Mixer
from mixer_ext.errors import Invalid, MixerError, Unauthorized

log = logging.getLogger(__name__)
bp = Blueprint("mixer", __name__)
OPEN_PATHS = frozenset({"/healthz", "/metrics"})  # probes and scrapers carry no token


def _mixer() -> Mixer:
    return current_app.config["MIXER"]


@bp.before_app_request
def _authenticate() -> None:
    """Every control request but the open probes carries ``Authorization: Bearer <the mixer's token>``."""
    if request.path in OPEN_PATHS:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected: bytes = current_app.config["CONTROL_TOKEN"]
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized("the control API needs Authorization: Bearer <the mixer's control token>")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Invalid("request body must be a JSON object")
    return data


@bp.get("/healthz")
def healthz() -> Any:
    m = _mixer()
    alive = m.alive()
    stuck = alive and m.media.stuck()
    ok = alive and not stuck
    body = {
        "ok": ok,
        "media_stuck": stuck,
        "rooms": len(m.rooms),
        "participants": len(m.by_call),
        "sip": f"{m.advertise}:{m.sip_port}",
        "rtp": f"{m.advertise}:{m.rtp_port}",
        "frames": m.frames,
    }
    return jsonify(body), 200 if ok else 503


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_mixer().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/rooms")
def list_rooms() -> Any:
    return jsonify({"rooms": _mixer().list_rooms()})


@bp.post("/rooms")
def create_room() -> Any:
    data = _body()
    rate = data.get("rate", 16000)
    k = data.get("loudest_k", 0)
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise Invalid("rate must be an integer", {"rate": rate})
    config = _mixer().create_room(data.get("room"), rate, k, data.get("opus_complexity"))  # type: ignore[arg-type]
    body = {"room": config.room_id, "rate": config.rate, "loudest_k": config.loudest_k}
    if config.opus_complexity is not None:
        body["opus_complexity"] = config.opus_complexity
    return jsonify(body), 201


@bp.get("/state")
def export_all() -> Any:
    return jsonify({"rooms": _mixer().export_all()})


@bp.post("/rooms/import")
def import_room() -> Any:
    return jsonify(_mixer().import_room(_body())), 201


@bp.get("/rooms/<room_id>")
def get_room(room_id: str) -> Any:
    return jsonify(_mixer().describe_room(room_id))


@bp.delete("/rooms/<room_id>")
def delete_room(room_id: str) -> Any:
    _mixer().delete_room(room_id)
    return "", 204


@bp.get("/rooms/<room_id>/state")
def export_room(room_id: str) -> Any:
    return jsonify(_mixer().export_room(room_id))


@bp.get("/rooms/<room_id>/participants")
def list_participants(room_id: str) -> Any:
    return jsonify({"participants": _mixer().describe_room(room_id)["participants"]})


@bp.patch("/rooms/<room_id>/participants/<pid>")
def change_participant(room_id: str, pid: str) -> Any:
    data = _body()
    unknown = set(data) - {"muted", "deaf", "gain"}
    if unknown:
        raise Invalid("only muted, deaf and gain can be changed", {"unknown": sorted(unknown)})
    for flag in ("muted", "deaf"):
        if flag in data and not isinstance(data[flag], bool):
            raise Invalid(f"{flag} must be true or false", {flag: data[flag]})
    return jsonify(_mixer().set_flags(room_id, pid, data.get("muted"), data.get("deaf"), data.get("gain")))


@bp.delete("/rooms/<room_id>/participants/<pid>")
def kick(room_id: str, pid: str) -> Any:
    _mixer().kick(room_id, pid)
    return "", 204


@bp.app_errorhandler(MixerError)
def mixer_error(exc: MixerError) -> Any:
    log.info("control API %s %s -> %d %s", request.method, request.path, exc.status, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
    return jsonify(exc.as_json()), exc.status, headers


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    return jsonify({"error": exc.description or exc.name, "detail": None}), exc.code or 500


def create_app(mixer: Mixer, token: str) -> Flask:
    """The control API app for one running mixer, answering only requests that carry ``token``."""
    if not token:
        raise Invalid("the control API needs a token")
    app = Flask("fsfarm-mixer")
    app.config["MIXER"] = mixer
    app.config["CONTROL_TOKEN"] = token.encode()
    app.register_blueprint(bp)
    return app
