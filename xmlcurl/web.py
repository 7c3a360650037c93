"""The HTTP side: ``POST /xmlcurl``, the form mod_xml_curl sends, answered as ``text/xml``.

Order of checks: a client address that failed authentication too often (429, ``Retry-After``),
basic auth (401), body size (400), then the question; a question we cannot answer, an unknown node
or a tenant placed elsewhere get the "not found" document, never a 500 and never another node's
data. Each node authenticates with its own credentials (``nodes.xmlcurl_user`` and the hash of its
password) and is answered only as itself: credentials of one node asking as another get 403. The
operator's shared ``FSFARM_XMLCURL_PASSWORD``, when set, may still ask as any node.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.wsgi import get_content_length, get_input_stream

from controller.bearer import AuthLimiter, limiter
from controller.config import Settings
from controller.database import Database
from controller.domain import Node, Tenant, secret_hash
from controller.errors import Unavailable
from controller.metrics import EXTENSION_KEY as METRICS_KEY
from controller.metrics import Series
from controller.stores import nodes
from controller.stores.changes import Change
from xmlcurl import answers, billed, fetch, lookups
from xmlcurl.cache import AnswerCache, ChangeListener
from xmlcurl.documents import NOT_FOUND
from xmlcurl.lookups import Conn, SqlReads
from xmlcurl.options import PATH, XmlCurlOptions
from xmlcurl.snapshot import Snapshot, SnapshotKeeper

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # a real dialplan fetch is about 6 kB
EXTENSION_KEY = "fsfarm.xmlcurl"

SHARED = "shared"  # the caller sent the operator's shared FSFARM_XMLCURL_PASSWORD: it may ask as any node
_SECRET_KEY = "\x00xmlcurl-secret:"  # AnswerCache.node keys for credentials read from SQL (no switchname has a NUL)
MAX_REMEMBERED = 10_000  # Authorization headers whose decoding is kept per process (only ones that authenticated)

blueprint = Blueprint("xmlcurl", __name__)


class WrongNode(Exception):
    """A node's credentials asking as another node (another FreeSWITCH-Switchname or hostname)."""


# status, body, extra headers
Reply = tuple[int, bytes, list[tuple[str, str]]]


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
    limiter: AuthLimiter = field(default_factory=AuthLimiter)
    # Authorization header -> SHARED or (user, secret hash): what it decoded to when it last authenticated.
    credentials: dict[str, str | tuple[str, str]] = field(default_factory=dict)
    wrong_nodes: set[tuple[UUID, str]] = field(default_factory=set)  # (caller, switchname) already logged
    metrics: Series | None = None  # where each answer's latency and each snapshot load are recorded

    def ensure_listening(self) -> None:
        # Started on first use (or by ``start``) so each gunicorn worker, forked after import, runs its own.
        if self.listener is None:
            keeper = (
                SnapshotKeeper(self.db, self.snapshot, freeze_gc=self.options.gc_freeze, metrics=self.metrics)
                if self.options.snapshot
                else None
            )
            self.listener = ChangeListener(self.db.conninfo, self.cache, keeper=keeper, on_change=self.on_change)
            self.listener.start()

    def handle(self, header: str | None, address: str, content_length: int, read: Callable[[int], bytes]) -> Reply:
        """One ``POST /xmlcurl``: the limiter, authentication, the body size, then the answer (its latency
        recorded in ``metrics`` by section and outcome)."""
        started = time.perf_counter()
        seen: list[str] = []  # the section, once the body is parsed
        outcome = "error"  # an exception escaping here becomes the app's 500
        try:
            reply = self._handle(header, address, content_length, read, seen)
            status, body, _ = reply
            if status == 200:
                outcome = "not_found" if body == NOT_FOUND else "answered"
            else:
                outcome = _OUTCOMES.get(status, str(status))
            return reply
        finally:
            if self.metrics is not None:
                self.metrics.xmlcurl(seen[0] if seen else "", outcome, time.perf_counter() - started)

    def _handle(
        self, header: str | None, address: str, content_length: int, read: Callable[[int], bytes], seen: list[str]
    ) -> Reply:
        wait = self.limiter.retry_after(address)
        if wait:
            return 429, NOT_FOUND, [("Retry-After", str(wait))]
        caller = self.caller(header)
        if caller is None:
            if header:  # no header at all is not a guess
                self.limiter.failed(address, "xml_curl")
            return 401, NOT_FOUND, [_CHALLENGE]
        if content_length > MAX_BODY:
            return 400, NOT_FOUND, []
        body = read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return 400, NOT_FOUND, []
        try:
            return 200, self.respond(body, caller, seen), []
        except WrongNode:
            return 403, NOT_FOUND, []
        except Unavailable:
            # FreeSWITCH falls back to its local files on an HTTP error; a 503 tells the operator why.
            log.warning("xml_curl: database unavailable, answering 503")
            return 503, NOT_FOUND, []

    def caller(self, header: str | None) -> Node | str | None:
        """Who the basic-auth header says asks: a node, ``SHARED``, or None (not authenticated).

        A node is found by its password's hash in the snapshot, else (not loaded yet, or rotated a
        moment ago) in SQL; the user must be the node's ``xmlcurl_user``.
        """
        if not header:
            return None
        seen = self.credentials.get(header)
        remembered = seen is not None
        if seen is None:
            if authorised(header, self.settings):
                self._remember(header, SHARED)
                return SHARED
            seen = _decode(header)
            if seen is None:
                return None
        if seen == SHARED:
            return SHARED
        user, digest = seen
        node = self.snapshot.node_by_secret(digest) if self.snapshot.ready else None
        if node is None or node.xmlcurl_user != user:
            node = self._node_by_secret(digest)
        if node is None or not hmac.compare_digest(node.xmlcurl_user.encode(), user.encode()):
            return None
        if not remembered:
            self._remember(header, seen)
        return node

    def _remember(self, header: str, decoded: str | tuple[str, str]) -> None:
        if len(self.credentials) < MAX_REMEMBERED:
            self.credentials[header] = decoded

    def _node_by_secret(self, digest: str) -> Node | None:
        """The node with this xml_curl secret hash from SQL; only found nodes are cached (guesses are not)."""
        cache = self.cache
        generation = cache.generation
        known, node = cache.node(_SECRET_KEY + digest)
        if known:
            return node
        try:
            with self.db.reads() as conn:
                node = nodes.by_xmlcurl_secret(conn, digest)
        except Unavailable:
            if self.snapshot.ready:  # answering from memory: what it does not know is refused, not a 503
                return None
            raise
        if node is not None:
            cache.put_node(_SECRET_KEY + digest, node, generation)
        return node

    def respond(self, body: bytes, caller: Node | str = SHARED, seen: list[str] | None = None) -> bytes:
        """The answer bytes for one raw form body from ``caller`` (authentication already checked); the
        form's section is appended to ``seen`` when given (for the latency metric).

        WrongNode when ``caller`` is a node and the body names another one.
        """
        parsed = fetch.parse(body)
        if seen is not None:
            seen.append(parsed.section)
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
            return self._respond_sql(parsed, question, generation, caller)
        node = snapshot.node(parsed.switchname)
        if node is None:
            return self._unknown(parsed)
        self._check_caller(caller, node, parsed)
        key = (node.id, *question)
        body = cache.get(key)
        if body is None:
            answer = answers.answer(snapshot, node, question, self.settings.controller_address, self.options)
            cache.put(key, answer, generation)
            body = answer.body
        return self._for_caller(parsed, question, body)

    def _for_caller(self, parsed: fetch.Fetch, question: answers.Question, body: bytes) -> bytes:
        """The cached answer made this caller's: a billed gateway route gets its limit or its refusal."""
        if not billed.needs_authorising(question, body):
            return body
        return billed.authorise(self.db, parsed, question, body, self.options.shared_mount)

    def _unknown(self, parsed: fetch.Fetch) -> bytes:
        if parsed.switchname not in self.unknown_nodes and len(self.unknown_nodes) < 1000:
            self.unknown_nodes.add(parsed.switchname)
            log.warning(
                "xml_curl fetch from unknown switch %r (section %s): answered not found",
                parsed.switchname,
                parsed.section,
            )
        return NOT_FOUND

    def _check_caller(self, caller: Node | str, node: Node, parsed: fetch.Fetch) -> None:
        if isinstance(caller, str) or caller.id == node.id:  # str: SHARED
            return
        if (caller.id, parsed.switchname) not in self.wrong_nodes and len(self.wrong_nodes) < 1000:
            self.wrong_nodes.add((caller.id, parsed.switchname))
            log.warning(
                "xml_curl: the credentials of node %s asked as switch %r (node %s, section %s): refused (403)",
                caller.name,
                parsed.switchname,
                node.name,
                parsed.section,
            )
        raise WrongNode(parsed.switchname)

    def _respond_sql(
        self, parsed: fetch.Fetch, question: answers.Question, generation: int, caller: Node | str = SHARED
    ) -> bytes:
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
        self._check_caller(caller, node, parsed)
        key = (node.id, *question)
        cached = cache.get(key)
        if cached is not None:
            return self._for_caller(parsed, question, cached)
        # Autocommit reads: a miss costs its queries and nothing else (no BEGIN/COMMIT round trips).
        with self.db.reads() as conn:
            reads = SqlReads(conn, placed=lambda c, domain, node_id: self._placed(c, domain, node_id, generation))
            answer = answers.answer(reads, node, question, self.settings.controller_address, self.options)
        cache.put(key, answer, generation)
        return self._for_caller(parsed, question, answer.body)

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
    """HTTP basic auth against the operator's shared xml_curl user and password (FSFARM_XMLCURL_USER and
    FSFARM_XMLCURL_PASSWORD); when no shared password is set it admits no one."""
    if not header or not settings.xmlcurl_password or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), settings.xmlcurl_user.encode()) & hmac.compare_digest(
        password.encode(), settings.xmlcurl_password.encode()
    )


def _decode(header: str) -> tuple[str, str] | None:
    """(user, secret_hash(password)) of a basic-auth header; None when it is not one or has no password."""
    if not header.startswith("Basic ") or len(header) > 1024:
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, secret_hash(password)) if user and password else None


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


@blueprint.post(PATH)
def xmlcurl() -> Any:
    svc = service()
    status, body, headers = svc.handle(
        request.headers.get("Authorization"),
        request.remote_addr or "",
        request.content_length or 0,
        request.stream.read,
    )
    response = _xml(body, status)
    for name, value in headers:
        response.headers[name] = value
    return response


_XML_TYPE = ("Content-Type", "text/xml; charset=utf-8")  # what Flask sends for mimetype="text/xml"
_CHALLENGE = ("WWW-Authenticate", 'Basic realm="fsfarm xml_curl"')
# The outcome label of each status but 200 (which is "answered", or "not_found" for the not-found document).
_OUTCOMES = {400: "too_large", 401: "unauthorized", 403: "wrong_node", 429: "refused", 503: "unavailable"}
_STATUS = {
    200: "200 OK",
    400: "400 BAD REQUEST",
    401: "401 UNAUTHORIZED",
    403: "403 FORBIDDEN",
    429: "429 TOO MANY REQUESTS",
    503: "503 SERVICE UNAVAILABLE",
}


class XmlCurlFront:
    """``POST /xmlcurl`` answered before Flask: the same checks, status codes, headers and bodies as
    the blueprint view above, without building a Flask request and response per fetch.

    Every other request (other paths, other methods on this path) goes to the Flask app unchanged.
    """

    def __init__(self, app: Flask, inner: Any) -> None:
        self.app = app
        self.inner = inner
        self.svc = service(app)
        self.max_content_length = app.config.get("MAX_CONTENT_LENGTH")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.inner(environ, start_response)
        try:
            status, body, extra = self.handle(environ)
        except Exception as exc:  # answered by the app's own error handlers, exactly as for its views
            return self.error(environ, start_response, exc)
        start_response(_STATUS[status], [_XML_TYPE, ("Content-Length", str(len(body))), *extra])
        return [body]

    def handle(self, environ: dict[str, Any]) -> Reply:
        return self.svc.handle(
            environ.get("HTTP_AUTHORIZATION"),
            environ.get("REMOTE_ADDR") or "",
            get_content_length(environ) or 0,
            lambda size: get_input_stream(environ, max_content_length=self.max_content_length).read(size),
        )

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
    """Plug the endpoint into the controller's app (called by ``controller.app.web.create_app``)."""
    options = XmlCurlOptions.from_settings(app.extensions["fsfarm.settings"], app.extensions.get("fsfarm.switch"))
    app.extensions[EXTENSION_KEY] = XmlCurlService(
        db=app.extensions["fsfarm.db"],
        settings=app.extensions["fsfarm.settings"],
        options=options,
        cache=AnswerCache(ttl=options.cache_ttl, max_entries=options.cache_entries),
        limiter=limiter(app),  # failures here and on the API count together per client address
        metrics=app.extensions.get(METRICS_KEY),
    )
    # For `fsfarm status`: None when answers never come from the snapshot (FSFARM_XMLCURL_SNAPSHOT=0).
    app.extensions.setdefault("fsfarm.status", {})["snapshot"] = lambda: (
        service(app).snapshot.ready if options.snapshot and service(app).listener is not None else None
    )
    app.register_blueprint(blueprint)  # still routed: url_for, the OpenAPI listing, and the same view logic
    app.wsgi_app = XmlCurlFront(app, app.wsgi_app)  # type: ignore[method-assign]
