"""The web console: server-rendered pages on the API's own origin, signed in with a session cookie.

A browser signs in with a bearer token, or with the SIP credentials of a tenant user marked
``console_admin``, and gets an HttpOnly, SameSite=Strict cookie; ``controller.bearer`` accepts that
cookie wherever it accepts a token, with a per-session CSRF token on every request that can change
something. The pages (``pages.py``) are data the front-end (``static/console.js``) renders from API
answers, so every check the API makes holds in the console too.
"""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, g, redirect, render_template, request, send_file
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as BaseResponse

from controller.bearer import (
    CSRF_HEADER,
    SESSION_COOKIE,
    counting_failures,
    database,
    session_token,
    visible_tenant,
)
from controller.console import pages
from controller.domain import CONSOLE_SCOPES, ApiToken, Tenant, User, a1_hash
from controller.errors import Forbidden, Invalid, NotFound, Unauthorized
from controller.stores import console_sessions, tenants, tokens, users

HERE = Path(__file__).parent
SESSION_LIFETIME = timedelta(hours=12)
# The front-end libraries npm installs here (.ci/install): name in the page -> file in node_modules.
VENDOR = {
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "uplot.min.js": "uplot/dist/uPlot.iife.min.js",
    "uplot.min.css": "uplot/dist/uPlot.min.css",
}
# Libraries served as their ES module trees (no bundle in the npm package): name in the page -> folder.
VENDOR_TREES = {"sip.js": "sip.js/lib"}

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def _same_origin() -> None:
    # The sign-in form has no session yet to carry a CSRF token: refuse a post another site's page made.
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and urlsplit(origin).netloc != request.host:
        raise Forbidden("sign-in from another site's page refused")


def _signed_in() -> ApiToken | None:
    if SESSION_COOKIE not in request.cookies:
        return None
    try:
        return session_token()
    except Unauthorized:
        return None


def _check_user(login: str, password: str) -> tuple[Tenant, User]:
    """The tenant and user a ``1001@acme.example`` login names, when its SIP password is right."""
    extension, _, domain = login.partition("@")
    with database().transaction() as conn:
        tenant = tenants.get(conn, domain) if domain else None
        user = users.store.get(conn, tenant.id, extension) if tenant and extension else None
    if tenant is None or user is None or not tenant.enabled or not user.enabled or not user.console_admin:
        raise Unauthorized("wrong user or password")
    if not hmac.compare_digest(user.a1_hash, a1_hash(extension, tenant.domain, password)):
        raise Unauthorized("wrong user or password")
    return tenant, user


def _start_session() -> tuple[str, str]:
    """Check the sign-in form; the new session's cookie secret and where to go."""
    token_text = request.form.get("token", "").strip()
    login = request.form.get("user", "").strip()
    password = request.form.get("password", "")
    if not token_text and not (login and password):
        raise Invalid("give a token, or a user (1001@your.domain) and its password", {"field": "token"})
    with database().transaction() as conn:
        console_sessions.forget_expired(conn)  # sign-ins are rare: the cheapest moment to sweep old rows
    with counting_failures("console sign-in"):
        if token_text:
            token = tokens.authenticate(database(), token_text)
            if token.scope not in CONSOLE_SCOPES:
                raise Unauthorized("this token cannot sign in to the console")
            with database().transaction() as conn:
                secret, _ = console_sessions.start(
                    conn,
                    scope=token.scope,
                    tenant_id=token.tenant_id,
                    token_id=token.id,
                    lifetime=SESSION_LIFETIME,
                    label=token.label or "token",
                )
                tenant = tenants.get(conn, token.tenant_id) if token.tenant_id else None
        else:
            tenant, user = _check_user(login, password)
            with database().transaction() as conn:
                secret, _ = console_sessions.start(
                    conn,
                    scope="tenant-admin",
                    tenant_id=tenant.id,
                    user_id=user.id,
                    lifetime=SESSION_LIFETIME,
                    label=login,
                )
    return secret, (f"/console/tenants/{tenant.domain}/users" if tenant else "/console/overview")


@blueprint.get("/login")
def login_page() -> Any:
    """The sign-in page."""
    return render_template("login.html", error=None)


@blueprint.post("/login")
def login() -> Any:
    """Exchange a token or a user's password for a session cookie."""
    try:
        _same_origin()
        secret, target = _start_session()
    except (Unauthorized, Invalid, Forbidden) as exc:
        return render_template("login.html", error=exc.message), exc.status
    reply = redirect(target, 303)
    reply.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return reply


@blueprint.post("/logout")
def logout() -> Any:
    """End the session (its cookie stops working at once, on every controller)."""
    with database().transaction() as conn:
        session = console_sessions.find(conn, request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            # A form post carries the CSRF token as a field: another site cannot sign a user out either.
            if not console_sessions.csrf_matches(session, request.form.get("csrf", "")):
                abort(403)
            console_sessions.end(conn, session.id)
    reply = redirect("/console/login", 303)
    reply.delete_cookie(SESSION_COOKIE, path="/")
    return reply


@blueprint.get("/vendor/<name>")
def vendor(name: str) -> Any:
    """A front-end library file npm installed (see package.json beside this module)."""
    if name not in VENDOR:
        abort(404)
    path = HERE / "node_modules" / VENDOR[name]
    if not path.is_file():
        abort(404, f"{name} is missing: run .ci/install (npm ci in controller/console)")
    return send_file(path, max_age=86400)


@blueprint.get("/vendor/<tree>/<path:name>")
def vendor_module(tree: str, name: str) -> Any:
    """One JavaScript module of a library npm installed as an ES module tree (``VENDOR_TREES``)."""
    root = HERE / "node_modules" / VENDOR_TREES[tree] if tree in VENDOR_TREES else None
    path = safe_join(str(root), name) if root and name.endswith(".js") else None
    if path is None or not Path(path).is_file():
        abort(404)
    return send_file(path, mimetype="text/javascript", max_age=86400)


@blueprint.get("/phone")
def phone() -> Any:
    """The web phone: a tenant user's SIP credentials (kept only in the page) over a SIP WebSocket."""
    return render_template("phone.html", ws_url=request.args.get("ws", ""), user=request.args.get("user", ""))


def _render(token: ApiToken, page: pages.Page, tenant: str | None) -> Any:
    session = g.console_session
    farm = token.scope == "farm-admin"
    with database().transaction() as conn:
        names = [t.domain for t in tenants.list_all(conn)] if farm else []
        own = tenants.get(conn, token.tenant_id) if token.tenant_id else None
    spec = page.spec()
    spec["tenant"] = tenant
    return render_template(
        "page.html",
        page=page,
        spec_json=json.dumps(spec).replace("</", "<\\/"),  # inside a <script>: no way out of it
        farm=farm,
        farm_pages=pages.farm_pages() if farm else [],
        tenant_pages=pages.tenant_pages() if tenant else [],
        tenant=tenant,
        tenants=names,
        own_tenant=own.domain if own else None,
        who=session.label,
        csrf=session.csrf_token,
        csrf_header=CSRF_HEADER,
    )


def _visible(token: ApiToken, domain: str) -> str:
    # The API's own rule for which tenant a token sees; a page answers it as an HTML 404.
    g.token = token
    try:
        return visible_tenant(domain).domain
    except NotFound:
        abort(404)


@blueprint.get("/")
def home() -> BaseResponse:
    """The first page: the farm overview, or a tenant admin's own users."""
    token = _signed_in()
    if token is None:
        return redirect("/console/login", 303)
    if token.scope == "farm-admin":
        return redirect("/console/overview", 303)
    with database().transaction() as conn:
        tenant = tenants.get(conn, token.tenant_id) if token.tenant_id else None
    return redirect(f"/console/tenants/{tenant.domain if tenant else ''}/users", 303)


@blueprint.get("/<slug>")
def farm_page(slug: str) -> Any:
    """One of the farm admin's pages."""
    token = _signed_in()
    if token is None:
        return redirect("/console/login", 303)
    page = pages.find(pages.farm_pages(), slug)
    if page is None or token.scope != "farm-admin":
        abort(404)
    return _render(token, page, None)


@blueprint.get("/tenants/<domain>/<slug>")
def tenant_page(domain: str, slug: str) -> Any:
    """One of a tenant's pages (a tenant admin: only its own tenant's; others are not found)."""
    token = _signed_in()
    if token is None:
        return redirect("/console/login", 303)
    page = pages.find(pages.tenant_pages(), slug)
    if page is None:
        abort(404)
    return _render(token, page, _visible(token, domain))


@blueprint.get("/tenants/<domain>/conferences/<number>")
def room_page(domain: str, number: str) -> Any:
    """A room's live members."""
    token = _signed_in()
    if token is None:
        return redirect("/console/login", 303)
    tenant = _visible(token, domain)
    return _render(token, pages.members_page(tenant, number), tenant)


# The console's pages load nothing from elsewhere and run no inline script: a value that slipped
# through as markup still could not run, and no other site can frame a page to click its buttons.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@blueprint.after_request
def _secure(reply: BaseResponse) -> BaseResponse:
    reply.headers.update(SECURITY_HEADERS)
    if request.endpoint == "console.phone":
        # The web phone's SIP WebSocket goes to Kamailio (or a node): another origin than the page's.
        reply.headers["Content-Security-Policy"] += "; connect-src 'self' ws: wss:"
    return reply


@blueprint.errorhandler(403)
@blueprint.errorhandler(404)
def _html_error(exc: Any) -> Response:
    # A page that is not there, or not this user's, answers the same page either way.
    code = getattr(exc, "code", 404) or 404
    return Response(render_template("error.html", code=code), code)


def register(app: Flask) -> None:
    """Serve the console under /console (``controller.app.web``)."""
    app.register_blueprint(blueprint)
