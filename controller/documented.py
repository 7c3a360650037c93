"""What a view tells the OpenAPI document beyond its route: body fields, query, answers, scopes.

A view is documented by its route (path, methods, path parameters, from ``app.url_map``), its
docstring (the summary), its guard (the token scopes, recorded by the guard with ``guarded``) and,
with ``@documented``, the field spec its body is checked against; ``controller.api.openapi`` puts
them together on each request. Every room's blueprints use it, so it imports only the core.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.validation import Field

F = TypeVar("F", bound=Callable[..., Any])

# Body fields: the ``Field`` the view checks, or, for a body read key by key, the JSON Schema of the key.
Fields = Mapping[str, Field | Mapping[str, Any]]
# The body fields for each value of an expanded path parameter (e.g. each collection of a tenant).
Expansion = tuple[str, Mapping[str, Fields | None]]


@dataclass(frozen=True)
class Doc:
    """The declared part of one view's documentation."""

    # The spec the body is checked against (``validation.parse``); None: no JSON body.
    body: Fields | None = None
    # A PATCH body: the same fields, none required.
    partial: bool = False
    # The body is a JSON object read key by key rather than checked by ``validation.parse``: unknown keys pass.
    loose: bool = False
    # One path per value of this path parameter, each with its own body spec (which overrides ``body``).
    expand: Expansion | None = None
    # Query parameters: name -> what it does.
    query: Mapping[str, str] = field(default_factory=dict)
    # The values a path parameter may take (others answer 400).
    choices: Mapping[str, Collection[str]] = field(default_factory=dict)
    # The request body is an audio upload (raw ``audio/wav`` or multipart with a ``file`` part).
    upload: bool = False
    # The answer is a WAV file rather than JSON.
    download: bool = False
    # Success statuses (the first is the usual one).
    status: tuple[int, ...] = (200,)
    # Scopes of a token the view checks itself (``requires_token`` and ``farm_admin`` are found on their own).
    scopes: tuple[str, ...] | None = None
    # Error statuses the view can answer beyond the ones every route of its kind can.
    errors: tuple[int, ...] = ()


_DOCS: dict[Callable[..., Any], Doc] = {}
_SCOPES: dict[Callable[..., Any], tuple[str, ...]] = {}


def guarded(wrapper: F, scopes: tuple[str, ...]) -> F:
    """Record that a guard's ``wrapper`` admits tokens of these scopes; return it."""
    _SCOPES[wrapper] = scopes
    return wrapper


def scopes_of(view: Callable[..., Any]) -> tuple[str, ...] | None:
    """The token scopes the guard on ``view`` admits; None for a view no guard recorded."""
    return _SCOPES.get(view)


def documented(
    body: Fields | None = None,
    *,
    partial: bool = False,
    loose: bool = False,
    expand: Expansion | None = None,
    query: Mapping[str, str] | None = None,
    choices: Mapping[str, Collection[str]] | None = None,
    upload: bool = False,
    download: bool = False,
    status: int | tuple[int, ...] = 200,
    scopes: tuple[str, ...] | None = None,
    errors: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Record a view's documentation; put it between the route decorator and the guard."""
    doc = Doc(
        body=body,
        partial=partial,
        loose=loose,
        expand=expand,
        query=dict(query or {}),
        choices=dict(choices or {}),
        upload=upload,
        download=download,
        status=(status,) if isinstance(status, int) else status,
        scopes=scopes,
        errors=errors,
    )

    def record(view: F) -> F:
        _DOCS[view] = doc
        return view

    return record


def doc_of(view: Callable[..., Any]) -> Doc:
    """The documentation recorded for ``view`` or anything it wraps (an empty ``Doc`` if none)."""
    current: Any = view
    while current is not None:
        if current in _DOCS:
            return _DOCS[current]
        current = getattr(current, "__wrapped__", None)
    return Doc()
