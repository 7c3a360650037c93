"""Bearer-token checks every room's blueprint shares (part of the core the rooms import).

Two scopes: ``farm-admin`` may do everything; ``tenant-admin`` sees only its own tenant, and
anything else answers 404 exactly as a missing object would, so tenants cannot probe each other.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from controller.database import Database
from controller.documented import guarded
from controller.domain import ApiToken, Tenant
from controller.errors import NotFound, Unauthorized
from controller.stores import tenants, tokens

F = TypeVar("F", bound=Callable[..., Any])


def database() -> Database:
    """The farm database the app was built with."""
    return cast(Database, current_app.extensions["fsfarm.db"])


def body() -> Any:
    """The request's JSON body (None when absent or malformed; validation reports it)."""
    return request.get_json(silent=True, force=True)


def _token() -> ApiToken:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("missing bearer token", {"hint": "send 'Authorization: Bearer <token>'"})
    return tokens.authenticate(database(), value.strip())


def requires_token(view: F) -> F:
    """A farm-admin or tenant-admin token; the view narrows what it shows with ``visible_tenant``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.token = _token()
        if g.token.scope not in ("farm-admin", "tenant-admin"):
            raise NotFound("not found")
        return view(*args, **kwargs)

    return cast(F, guarded(wrapper, ("farm-admin", "tenant-admin")))


def farm_admin(view: F) -> F:
    """Only farm admins; to anyone else the resource does not exist."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.token = _token()
        if g.token.scope != "farm-admin":
            raise NotFound("not found")
        return view(*args, **kwargs)

    return cast(F, guarded(wrapper, ("farm-admin",)))


def visible_tenant(ref: str) -> Tenant:
    """The tenant ``ref`` names, or the same 404 whether it is missing or belongs to someone else."""
    token: ApiToken = g.token
    with database().transaction() as conn:
        tenant = tenants.get(conn, ref)
    if tenant is None or (token.scope != "farm-admin" and token.tenant_id != tenant.id):
        raise NotFound(f"no tenant {ref!r}")
    return tenant
