"""The HTTP side: ``POST /xmlcurl``, the form mod_xml_curl sends, answered as ``text/xml``.

Order of checks: basic auth (401), body size (400), then the question; a question we cannot
answer, an unknown node or a tenant placed elsewhere get the "not found" document, never a 500
and never another node's data.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.wsgi import get_content_length, get_input_stream

from controller.config import Settings
from controller.database import Database
from controller.domain import Tenant
from controller.errors import Unavailable
from controller.stores import nodes
from xmlcurl import answers, fetch, lookups
from xmlcurl.cache import AnswerCache, Change, ChangeListener
from xmlcurl.documents import NOT_FOUND
from xmlcurl.lookups import Conn, SqlReads
from xmlcurl.options import XmlCurlOptions
from xmlcurl.snapshot import Snapshot, SnapshotKeeper

log = logging.getLogger(__name__)

PATH = "/xmlcurl"
MAX_BODY = 256 * 1024  # a real dialplan fetch is about 6 kB
EXTENSION_KEY = "fsfarm.xmlcurl"

blueprint = Blueprint("xmlcurl", __name__)


@dataclass
class XmlCurlService:
    """Per-process state of the endpoint: its options, the answer cache, the snapshot and the change listener."""

    db: Database
    settings: Settings
    options: XmlCurlOptions
    cache: AnswerCache
    listener: ChangeListener | None = None
    on_change: Callable[[Change], None] | None = None  # told of each notice after the snapshot applied it
    unknown_nodes: set[str] = field(default_factory=set)
    snapshot: Snapshot = field(default_factory=Snapshot)

    def ensure_listening(self) -> None:
        # Started on first use (or by ``start``) so each gunicorn worker, forked after import, runs its own.
        if self.listener is None:
            keeper = (
                SnapshotKeeper(self.db, self.snapshot, freeze_gc=self.options.gc_freeze)
                if self.options.snapshot
                else None
            )
            self.listener = ChangeListener(self.db.conninfo, self.cache, keeper=keeper, on_change=self.on_change)
            self.listener.start()

    def respond(self, body: bytes) -> bytes:
        """The answer bytes for one raw form body (authentication already checked)."""
        parsed = fetch.parse(body)
        question = answers.question(parsed)
        if question is None:
            return NOT_FOUND
        self.ensure_listening()
        cache = self.cache
        # Read before the snapshot (and its readiness): a notice applied, or a lost listener, after this
        # bumps the generation and the answer built here is not stored.
        generation = cache.generation
        snapshot = self.snapshot
        if not snapshot.ready:  # not loaded yet, or the listener lost PostgreSQL: ask the database
            return self._respond_sql(parsed, question, generation)
        node = snapshot.node(parsed.switchname)
        if node is None:
            return self._unknown(parsed)
        key = (node.id, *question)
        cached = cache.get(key)
        if cached is not None:
            return cached
        answer = answers.answer(snapshot, node, question, self.settings.controller_address, self.options)
        cache.put(key, answer, generation)
        return answer.body

    def _unknown(self, parsed: fetch.Fetch) -> bytes:
        if parsed.switchname not in self.unknown_nodes and len(self.unknown_nodes) < 1000:
            self.unknown_nodes.add(parsed.switchname)
            log.warning(
                "xml_curl fetch from unknown switch %r (section %s): answered not found",
                parsed.switchname,
                parsed.section,
            )
        return NOT_FOUND

    def _respond_sql(self, parsed: fetch.Fetch, question: answers.Question, generation: int) -> bytes:
        """The answer from PostgreSQL: one query per read, node and placement cached."""
        cache = self.cache
        known, node = cache.node(parsed.switchname)
        if not known:
            if parsed.switchname:
                with self.db.reads() as conn:
                    node = nodes.by_switchname(conn, parsed.switchname)
            cache.put_node(parsed.switchname, node, generation)
        if node is None:
            return self._unknown(parsed)
        key = (node.id, *question)
        cached = cache.get(key)
        if cached is not None:
            return cached
        # Autocommit reads: a miss costs its queries and nothing else (no BEGIN/COMMIT round trips).
        with self.db.reads() as conn:
            reads = SqlReads(conn, placed=lambda c, domain, node_id: self._placed(c, domain, node_id, generation))
            answer = answers.answer(reads, node, question, self.settings.controller_address, self.options)
        cache.put(key, answer, generation)
        return answer.body

    def _placed(self, conn: Conn, domain: str, node_id: UUID, generation: int) -> Tenant | None:
        """Which tenant a domain is on this node, from the in-process placement cache when it knows."""
        known, tenant = self.cache.placed(node_id, domain)
        if not known:
            tenant = lookups.placed_tenant(conn, domain, node_id)
            self.cache.put_placed(node_id, domain, tenant, generation)
        return tenant


def service(app: Flask | None = None) -> XmlCurlService:
    target = app or current_app
    return target.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


def authorised(header: str | None, settings: Settings) -> bool:
    """HTTP basic auth against the configured xml_curl user; an empty configured password admits no one."""
    if not header or not settings.xmlcurl_password or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), settings.xmlcurl_user.encode()) & hmac.compare_digest(
        password.encode(), settings.xmlcurl_password.encode()
    )


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


@blueprint.post(PATH)
def xmlcurl() -> Any:
    svc = service()
    if not authorised(request.headers.get("Authorization"), svc.settings):
        response = _xml(NOT_FOUND, 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="fsfarm xml_curl"'
        return response
    if (request.content_length or 0) > MAX_BODY:
        return _xml(NOT_FOUND, 400)
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return _xml(NOT_FOUND, 400)
    try:
        return _xml(svc.respond(body))
    except Unavailable:
        # FreeSWITCH falls back to its local files on an HTTP error; a 503 tells the operator why.
        log.warning("xml_curl: database unavailable, answering 503")
        return _xml(NOT_FOUND, 503)


_XML_TYPE = ("Content-Type", "text/xml; charset=utf-8")  # what Flask sends for mimetype="text/xml"
_CHALLENGE = ("WWW-Authenticate", 'Basic realm="fsfarm xml_curl"')
_STATUS = {200: "200 OK", 400: "400 BAD REQUEST", 401: "401 UNAUTHORIZED", 503: "503 SERVICE UNAVAILABLE"}


class XmlCurlFront:
    """``POST /xmlcurl`` answered before Flask: the same checks, status codes, headers and bodies as
    the blueprint view above, without building a Flask request and response per fetch.

    Every other request (other paths, other methods on this path) goes to the Flask app unchanged.
    """

    def __init__(self, app: Flask, inner: Any) -> None:
        self.app = app
        self.inner = inner
        self.svc = service(app)
        settings = self.svc.settings
        # The header a correctly configured FreeSWITCH sends; anything else takes the full check.
        self.expected = (
            "Basic " + base64.b64encode(f"{settings.xmlcurl_user}:{settings.xmlcurl_password}".encode()).decode()
        )
        self.max_content_length = app.config.get("MAX_CONTENT_LENGTH")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.inner(environ, start_response)
        try:
            status, body, challenge = self.handle(environ)
        except Exception as exc:  # answered by the app's own error handlers, exactly as for its views
            return self.error(environ, start_response, exc)
        headers = [_XML_TYPE, ("Content-Length", str(len(body)))]
        if challenge:
            headers.append(_CHALLENGE)
        start_response(_STATUS[status], headers)
        return [body]

    def handle(self, environ: dict[str, Any]) -> tuple[int, bytes, bool]:
        svc = self.svc
        header = environ.get("HTTP_AUTHORIZATION")
        password = svc.settings.xmlcurl_password
        if not (
            password and header and hmac.compare_digest(header.encode(), self.expected.encode())
        ) and not authorised(header, svc.settings):
            return 401, NOT_FOUND, True
        if (get_content_length(environ) or 0) > MAX_BODY:
            return 400, NOT_FOUND, False
        body = get_input_stream(environ, max_content_length=self.max_content_length).read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return 400, NOT_FOUND, False
        try:
            return 200, svc.respond(body), False
        except Unavailable:
            log.warning("xml_curl: database unavailable, answering 503")
            return 503, NOT_FOUND, False

    def error(self, environ: dict[str, Any], start_response: Any, exc: Exception) -> Any:
        with self.app.request_context(environ):
            response = self.app.make_response(self.app.handle_user_exception(exc))  # type: ignore[arg-type]
            return response(environ, start_response)


def start(app: Flask, on_change: Callable[[Change], None] | None = None) -> None:
    """Start this process's change listener and snapshot load now rather than on the first fetch
    (call it in each worker after the fork, e.g. from the WSGI factory).

    ``on_change`` hears every change notice once this process answers from the new rows (it is
    where nodes are told to fetch again: see ``flush_orders``)."""
    svc = service(app)
    svc.on_change = on_change
    svc.ensure_listening()


def stop(app: Flask) -> None:
    """Stop this process's change listener (before the database goes, so it does not report it lost)."""
    svc = service(app)
    if svc.listener is not None:
        svc.listener.stop()
        svc.listener = None


def register(app: Flask) -> None:
    """Plug the endpoint into the controller's app (called by ``controller.api.create_app``)."""
    options = XmlCurlOptions.from_settings(app.extensions["fsfarm.settings"])
    app.extensions[EXTENSION_KEY] = XmlCurlService(
        db=app.extensions["fsfarm.db"],
        settings=app.extensions["fsfarm.settings"],
        options=options,
        cache=AnswerCache(ttl=options.cache_ttl, max_entries=options.cache_entries),
    )
    # For `fsfarm status`: None when answers never come from the snapshot (FSFARM_XMLCURL_SNAPSHOT=0).
    app.extensions.setdefault("fsfarm.status", {})["snapshot"] = lambda: (
        service(app).snapshot.ready if options.snapshot and service(app).listener is not None else None
    )
    app.register_blueprint(blueprint)  # still routed: url_for, the OpenAPI listing, and the same view logic
    app.wsgi_app = XmlCurlFront(app, app.wsgi_app)  # type: ignore[method-assign]
