"""``POST /api/v1/join``: a FreeSWITCH node registers itself with a single-use node-join token.

The answer carries the node's id, its generated ESL password and its own xml_curl credentials; the node takes no tenants
until the controller sees its first heartbeat (see ``controller.join``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from controller import join as joining
from controller.bearer import body, counting_failures, database
from controller.documented import documented
from controller.errors import Unauthorized

blueprint = Blueprint("join", __name__, url_prefix="/api/v1")


@blueprint.post("/join")
@documented(joining.JOIN_FIELDS, status=201, scopes=("node-join",))
def join() -> Any:
    """A node registers itself with a single-use node-join token; the answer has its ESL and xml_curl passwords."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("missing join token", {"hint": "send 'Authorization: Bearer <node-join token>'"})
    with counting_failures("join"):
        node, password, xmlcurl_password = joining.join(database(), value.strip(), body())
    return jsonify(
        {
            "node_id": str(node.id),
            "name": node.name,
            "switchname": node.switchname,
            "admin_state": node.admin_state,
            "esl_address": node.esl_address,
            "esl_password": password,
            "xmlcurl_user": node.xmlcurl_user,
            "xmlcurl_password": xmlcurl_password,
        }
    ), 201
