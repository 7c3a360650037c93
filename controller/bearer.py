"""Bearer-token checks every room's blueprint shares (part of the core the rooms import).

Two scopes: ``farm-admin`` may do everything; ``tenant-admin`` sees only its own tenant, and
anything else answers 404 exactly as a missing object would, so tenants cannot probe each other.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from controller.database import Database
from controller.documented import guarded
from controller.domain import ApiToken, Tenant
from controller.errors import FarmError, Forbidden, Invalid, NotFound, TooManyFailures, Unauthorized
from controller.stores import console_sessions, tenants, tokens, users
from controller.validation import xml_safe

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

FAILURES_ALLOWED = 10  # failed authentications one client address may make within FAILURE_WINDOW
FAILURE_WINDOW = 60.0  # seconds
LIMITER_KEY = "fsfarm.auth_limiter"


class AuthLimiter:
    """Failed authentications per client address (bearer tokens and xml_curl alike), counted in this process.

    After ``allowed`` failures within ``window`` seconds an address is refused (429) until the oldest of
    them is ``window`` old, whatever it sends; other addresses are unaffected. Counts are per process
    (not shared between workers or controllers): N processes let at most N x ``allowed`` guesses through.
    """

    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        window: float = FAILURE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 100_000,
    ) -> None:
        self.allowed = allowed
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int:
        """Whole seconds until ``address`` may try again; 0 when it may now."""
        if address not in self._failures:  # the usual case: one dict lookup, no lock
            return 0
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return 0
            now = self.clock()
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[address]
                return 0
            if len(failures) < self.allowed:
                return 0
            return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, address: str, what: str) -> None:
        """Count one failed authentication from ``address`` (``what`` names the surface, for the log)."""
        with self._lock:
            now = self.clock()
            failures = self._failures.get(address)
            if failures is None:
                if len(self._failures) >= self.max_addresses:
                    self._forget(now)
                failures = self._failures[address] = deque(maxlen=self.allowed)
            failures.append(now)
            if len(failures) == self.allowed and failures[0] > now - self.window:
                log.warning(
                    "%s: %d failed authentications from %s within %g s: refusing it (429) for now",
                    what,
                    self.allowed,
                    address,
                    self.window,
                )

    def _forget(self, now: float) -> None:
        """Make room: drop addresses whose failures are all old, else the oldest half."""
        stale = [a for a, f in self._failures.items() if not f or f[-1] <= now - self.window]
        for address in stale or sorted(self._failures, key=lambda a: self._failures[a][-1])[: len(self._failures) // 2]:
            del self._failures[address]


def limiter(app: Flask | None = None) -> AuthLimiter:
    """The app's authentication limiter (one per process, shared by the API and xml_curl)."""
    target = app or current_app
    found = target.extensions.get(LIMITER_KEY)
    if found is None:
        found = target.extensions[LIMITER_KEY] = AuthLimiter()
    return cast(AuthLimiter, found)


@contextmanager
def counting_failures(what: str = "API") -> Iterator[None]:
    """Refuse a client address that failed too often (TooManyFailures, 429); count an Unauthorized raised
    inside as one more failure of that address."""
    guard = limiter()
    address = request.remote_addr or ""
    wait = guard.retry_after(address)
    if wait:
        raise TooManyFailures("too many failed authentications from this address: retry later", wait)
    try:
        yield
    except Unauthorized:
        guard.failed(address, what)
        raise


MAX_DEPTH = 32  # deeper JSON is refused before Python's recursion limit can turn it into a 500
MAX_PATH_PART = 1024


class BodyTooLarge(FarmError):
    """A request body over the size limit, with or without a Content-Length (HTTP 413)."""

    status = 413


def database() -> Database:
    """The farm database the app was built with."""
    return cast(Database, current_app.extensions["fsfarm.db"])


def body() -> Any:
    """The request's JSON body: None when there is none; Invalid (400) when it is not strict JSON.

    Strict: UTF-8, no ``NaN``/``Infinity``, no number too big for a float (``1e400``), nested at
    most ``MAX_DEPTH`` deep (the field parsers refuse what is not XML-safe text). A body over the
    size limit is a 413 even when it came chunked (the server hands it over cut at the limit).
    """
    limit = request.max_content_length
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise BodyTooLarge(f"body: over the {limit} byte limit", {"field": "body", "limit": limit}) from None
    if limit is not None and request.content_length is None and len(raw) >= limit:
        raise BodyTooLarge(f"body: over the {limit} byte limit", {"field": "body", "limit": limit})
    if not raw.strip():
        return None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if not isinstance(exc, RecursionError) else "nested too deep"
        raise Invalid(f"body: not valid JSON ({reason})", {"field": "body"}) from None
    _check_json(data, 0)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is too large a number")
    return number


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Invalid(f"body: nested deeper than {MAX_DEPTH}", {"field": "body"})
    if isinstance(value, dict):
        for item in value.values():
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def body_object(*, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; with ``required`` a missing body is a 400 too (commands never guess)."""
    data = body()
    if data is None and not required:
        return {}
    if not isinstance(data, dict):
        raise Invalid("body: must be a JSON object, e.g. {}", {"field": "body"})
    return data


SESSION_COOKIE = "fsfarm_session"  # the web console's sign-in (controller.console)
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def session_token() -> ApiToken:
    """The API token a console session cookie stands for, or Unauthorized.

    A session made from a bearer token is that token (revoking the token ends the session); one made
    from a user's password is a tenant-admin of the user's tenant while the user stays an enabled
    console admin. A request that can change something must carry the session's CSRF token in
    ``X-CSRF-Token`` (a page of another site cannot read it), else Forbidden.
    """
    secret = request.cookies.get(SESSION_COOKIE, "")
    now = datetime.now(UTC)
    with database().transaction() as conn:
        session = console_sessions.find(conn, secret)
        if session is None:
            raise Unauthorized("signed out or the session expired: sign in again", {"hint": "/console/login"})
        if request.method not in _SAFE_METHODS and not console_sessions.csrf_matches(
            session, request.headers.get(CSRF_HEADER, "")
        ):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} for this session")
        if session.token_id is not None:
            token = tokens.get(conn, session.token_id)
            if token is None or token.revoked or (token.expires_at and token.expires_at < now):
                raise Unauthorized("the token this session was made from no longer works: sign in again")
        else:
            user = users.store.get(conn, session.tenant_id, session.user_id) if session.tenant_id else None
            if user is None or not user.enabled or not user.console_admin:
                raise Unauthorized("this user may no longer sign in to the console")
            token = ApiToken(
                id=session.id, token_hash="", scope="tenant-admin", tenant_id=session.tenant_id, label=session.label
            )
    g.console_session = session
    return token


def _token() -> ApiToken:
    header = request.headers.get("Authorization", "")
    if not header and SESSION_COOKIE in request.cookies:
        return session_token()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():  # not a guess: not counted
        raise Unauthorized("missing bearer token", {"hint": "send 'Authorization: Bearer <token>'"})
    with counting_failures():
        return tokens.authenticate(database(), value.strip())


def _check_path(parts: dict[str, Any]) -> None:
    # PostgreSQL refuses NUL in text and lxml refuses non-XML characters: stop them at the door.
    for name, value in parts.items():
        if isinstance(value, str) and (len(value) > MAX_PATH_PART or not xml_safe(value)):
            raise Invalid(f"{name}: not a valid name or id", {"field": name})


def requires_token(view: F) -> F:
    """A farm-admin or tenant-admin token; the view narrows what it shows with ``visible_tenant``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.token = _token()
        if g.token.scope not in ("farm-admin", "tenant-admin"):
            raise NotFound("not found")
        _check_path(kwargs)
        return view(*args, **kwargs)

    return cast(F, guarded(wrapper, ("farm-admin", "tenant-admin")))


def farm_admin(view: F) -> F:
    """Only farm admins; to anyone else the resource does not exist."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.token = _token()
        if g.token.scope != "farm-admin":
            raise NotFound("not found")
        _check_path(kwargs)
        return view(*args, **kwargs)

    return cast(F, guarded(wrapper, ("farm-admin",)))


def metrics_reader(view: F) -> F:
    """A farm-admin or a ``metrics`` (scrape-only) token; any other valid token is refused (403)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.token = _token()
        if g.token.scope not in ("farm-admin", "metrics"):
            raise Forbidden("the metrics need a farm-admin or a metrics token")
        return view(*args, **kwargs)

    return cast(F, guarded(wrapper, ("farm-admin", "metrics")))


def visible_tenant(ref: str) -> Tenant:
    """The tenant ``ref`` names, or the same 404 whether it is missing or belongs to someone else."""
    token: ApiToken = g.token
    with database().transaction() as conn:
        tenant = tenants.get(conn, ref)
    if tenant is None or (token.scope != "farm-admin" and token.tenant_id != tenant.id):
        raise NotFound(f"no tenant {ref!r}")
    return tenant
