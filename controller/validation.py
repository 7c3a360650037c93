"""Parsing of what users send (JSON bodies, CLI options) into checked values.

Every check raises ``Invalid`` naming the field, so the API and the CLI report the same sentence.
Each parser also carries the JSON Schema of what it accepts (``schema_of``), which the OpenAPI
document shows, so the document and the checks come from the same place.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import re2

from controller.domain import HostPort as HostPort  # re-exported: callers of v.HostPort keep working
from controller.errors import Invalid

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?:{_LABEL}\.)+{_LABEL}$")
_EXTENSION = re.compile(r"^[0-9]{2,10}$")
_DID = re.compile(r"^\+?[0-9]{4,15}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_PIN = re.compile(r"^[0-9]{4,12}$")
_BEARER = re.compile(r"^[\x21-\x7e]{16,200}$")
_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+$")
_TEXT_MAX = 200
# What lxml refuses in text (XML 1.0 Char): C0 controls, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x1f\ud800-\udfff\ufffe\uffff]")
_WHOLE = re.compile(r"^[+-]?[0-9]{1,18}$")
_MONEY = re.compile(r"^[+-]?[0-9]{1,14}(\.[0-9]{1,6})?$")  # numeric(20, 6): 14 digits before the point
_OBJECT_DEPTH = 8
_OBJECT_ITEMS = 500
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the user's 400, not a line on stderr
_RE2_OPTIONS.max_mem = 1 << 20
_SCHEMAS: dict[Callable[[str, Any], Any], dict[str, Any]] = {}

P = TypeVar("P", bound=Callable[[str, Any], Any])


def _schema(schema: dict[str, Any]) -> Callable[[P], P]:
    """Record the JSON Schema of what a parser accepts (its canonical form; input is normalised first)."""

    def record(parser: P) -> P:
        _SCHEMAS[parser] = schema
        return parser

    return record


def schema_of(parser: Callable[[str, Any], Any]) -> dict[str, Any]:
    """The JSON Schema recorded for ``parser`` (``{}``, anything, for a parser that recorded none)."""
    return dict(_SCHEMAS.get(parser, {}))


@dataclass(frozen=True)
class Field:
    """One accepted input field: its parser, whether it must be given, and its default."""

    parse: Callable[[str, Any], Any]
    required: bool = False

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the values this field accepts."""
        return schema_of(self.parse)


def parse(spec: Mapping[str, Field], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Check ``data`` against ``spec``; with ``partial`` (PATCH) nothing is required."""
    if not isinstance(data, Mapping):
        raise Invalid("the body must be a JSON object")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}", {"allowed": sorted(spec)})
    missing = [] if partial else [k for k, f in spec.items() if f.required and data.get(k) in (None, "")]
    if missing:
        raise Invalid(f"missing field(s): {', '.join(missing)}", {"missing": missing})
    out = {}
    for key, value in data.items():
        if value is None and not spec[key].required:
            continue
        out[key] = spec[key].parse(key, value)
    return out


def _fail(name: str, message: str, value: Any) -> Invalid:
    if isinstance(value, bool | int):
        shown: Any = value if abs(value) < 10**18 else str(value)[:80]
    elif isinstance(value, float):
        shown = value if math.isfinite(value) else str(value)  # JSON has no Infinity or NaN
    else:
        shown = str(value)[:80].encode("utf-8", "backslashreplace").decode()  # no lone surrogates in the answer
    return Invalid(f"{name}: {message}", {"field": name, "value": shown})


def xml_safe(value: str) -> bool:
    """Whether every character of ``value`` may appear in XML text (what lxml and FreeSWITCH accept)."""
    return _NOT_XML.search(value) is None


@_schema({"type": "string", "maxLength": _TEXT_MAX, "pattern": "^[^\\u0000-\\u001f\\ufffe\\uffff]*$"})
def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(name, "must be a string", value)
    if len(value) > _TEXT_MAX or not xml_safe(value):
        raise _fail(name, f"must be at most {_TEXT_MAX} printable characters", value)
    return value.strip()


def long_text(limit: int, description: str) -> Callable[[str, Any], str]:
    """A whole file sent as a JSON string (a CSV): at most ``limit`` UTF-8 bytes, kept as sent (not stripped)."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(name, "must be a string", value)
        if len(value) > limit or len(value.encode("utf-8", "surrogatepass")) > limit:
            raise Invalid(f"{name}: over the {limit} byte limit", {"field": name, "limit": limit})
        return value

    return _schema({"type": "string", "maxLength": limit, "description": description})(check)


@_schema({"type": "boolean"})
def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise _fail(name, "must be true or false", value)


def integer(low: int, high: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        # Only ints, integral finite floats and plain digit strings: int() would take "1_0", inf raises.
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _WHOLE.match(value.strip()):
            number = int(value)
        else:
            raise _fail(name, "must be a whole number", value)
        if not low <= number <= high:
            raise _fail(name, f"must be between {low} and {high}", value)
        return number

    return _schema({"type": "integer", "minimum": low, "maximum": high})(check)


def number(low: float, high: float) -> Callable[[str, Any], float]:
    """A finite number (a JSON number or a numeric string) from ``low`` to ``high``."""

    def check(name: str, value: Any) -> float:
        if isinstance(value, bool):
            raise _fail(name, "must be a number", value)
        try:
            parsed = float(value) if isinstance(value, int | float | str) else math.nan
        except (ValueError, OverflowError):
            parsed = math.nan
        if not math.isfinite(parsed):
            raise _fail(name, "must be a number", value)
        if not low <= parsed <= high:
            raise _fail(name, f"must be between {low:g} and {high:g}", value)
        return parsed

    return _schema({"type": "number", "minimum": low, "maximum": high})(check)


def money(low: Decimal, high: Decimal) -> Callable[[str, Any], Decimal]:
    """An exact amount (a decimal string such as "12.50", or a JSON number) from ``low`` to ``high``,
    at most 6 decimals; a JSON float is read as the shortest text giving it back ("0.1", not 0.1000000000000000055)."""

    def check(name: str, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _fail(name, 'must be an amount such as "12.50"', value)
        text_form = repr(value) if isinstance(value, float) else str(value).strip()
        if not _MONEY.match(text_form):
            raise _fail(name, 'must be an amount such as "12.50" (at most 6 decimals)', value)
        try:
            amount = Decimal(text_form)
        except InvalidOperation:  # cannot happen past the pattern; kept so a change to it stays a 400
            raise _fail(name, 'must be an amount such as "12.50"', value) from None
        if not low <= amount <= high:
            raise _fail(name, f"must be between {low} and {high}", value)
        return amount

    return _schema(
        {
            "type": ["string", "number"],
            "pattern": _MONEY.pattern,
            "description": f"an exact amount from {low} to {high}, at most 6 decimals (a string keeps it exact)",
        }
    )(check)


@_schema({"type": "string", "format": "date-time", "description": "ISO 8601 with a UTC offset"})
def timestamp(name: str, value: Any) -> datetime:
    """An ISO 8601 time with its UTC offset (one without is read as UTC)."""
    if not isinstance(value, str) or len(value) > 40:
        raise _fail(name, "must be an ISO 8601 time such as 2027-01-01T00:00:00Z", value)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(name, "must be an ISO 8601 time such as 2027-01-01T00:00:00Z", value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@_schema({"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "an ISO 4217 code such as EUR"})
def currency(name: str, value: Any) -> str:
    """An ISO 4217 code such as EUR (upper-cased)."""
    s = text(name, value).upper()
    if not re.fullmatch(r"[A-Z]{3}", s):
        raise _fail(name, "must be a three-letter currency code such as EUR", value)
    return s


@_schema(
    {
        "type": "string",
        "maxLength": 253,
        "pattern": _DOMAIN.pattern,
        "description": "a DNS name such as acme.example (stored lower-case)",
    }
)
def sip_domain(name: str, value: Any) -> str:
    domain = text(name, value).lower().rstrip(".")
    if len(domain) > 253 or not _DOMAIN.match(domain):
        raise _fail(name, "must be a DNS name such as acme.example (letters, digits, hyphens, dots)", value)
    return domain


@_schema({"type": "string", "pattern": _EXTENSION.pattern, "description": "2 to 10 digits"})
def extension(name: str, value: Any) -> str:
    ext = text(name, str(value) if isinstance(value, int) and not isinstance(value, bool) else value)
    if not _EXTENSION.match(ext):
        raise _fail(name, "must be 2 to 10 digits", value)
    return ext


@_schema(
    {
        "type": "string",
        "pattern": _DID.pattern,
        "description": "4 to 15 digits, optionally starting with + (spaces and hyphens are dropped)",
    }
)
def did(name: str, value: Any) -> str:
    number = text(name, value).replace(" ", "").replace("-", "")
    if not _DID.match(number):
        raise _fail(name, "must be 4 to 15 digits, optionally starting with +", value)
    return number


@_schema(
    {
        "type": "string",
        "pattern": _NAME.pattern,
        "description": "lower-case letters, digits, '.', '_' or '-' (at most 63)",
    }
)
def slug(name: str, value: Any) -> str:
    s = text(name, value).lower()
    if not _NAME.match(s):
        raise _fail(name, "must be lower-case letters, digits, '.', '_' or '-' (at most 63)", value)
    return s


def host_port(default_port: int | None = None) -> Callable[[str, Any], str]:
    """``host:port`` (IPv6 in brackets) checked by ``HostPort``; the port may be left out when there is a default."""

    def check(name: str, value: Any) -> str:
        try:
            return str(HostPort.parse(text(name, value), default_port))
        except ValueError as exc:
            raise _fail(name, str(exc), value) from None

    port = "" if default_port is None else f"; the port defaults to {default_port}"
    return _schema({"type": "string", "description": f"host:port (IPv6 as [address]:port){port}"})(check)


def optional_host_port(default_port: int) -> Callable[[str, Any], str]:
    """Like ``host_port``, or empty for none."""
    checked = host_port(default_port)

    def check(name: str, value: Any) -> str:
        return checked(name, value) if text(name, value) else ""

    return _schema({"type": "string", "description": f"host:port (port {default_port}), or empty for none"})(check)


@_schema({"type": "string", "description": "an IP address, 'auto-nat', or empty for the node's own SIP host"})
def public_ip(name: str, value: Any) -> str:
    """A public address for sofia's ext-sip-ip/ext-rtp-ip: an IP literal, ``auto-nat`` or empty."""
    s = text(name, value)
    if s in ("", "auto-nat"):
        return s
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        raise _fail(name, "must be an IP address, 'auto-nat' or empty", value) from None


@_schema({"type": "string", "format": "uri", "pattern": "^https?://", "description": "an http(s) URL"})
def http_url(name: str, value: Any) -> str:
    """An ``http(s)://host[:port][/path]`` URL whose host is checked like every other address."""
    s = text(name, value)
    scheme, sep, rest = s.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise _fail(name, "must be an http(s) URL", value)
    authority = rest.split("/", 1)[0]
    try:
        HostPort.parse(authority, 443 if scheme == "https" else 80)
    except ValueError as exc:
        raise _fail(name, str(exc), value) from None
    return s


@_schema({"type": "string", "minLength": 8, "maxLength": _TEXT_MAX, "writeOnly": True})
def sip_password(name: str, value: Any) -> str:
    pw = text(name, value)
    # Weak SIP secrets are how toll fraud starts: refuse short ones outright.
    if len(pw) < 8:
        raise _fail(name, "must be at least 8 characters", "***")
    return pw


@_schema({"type": "string", "minLength": 1, "maxLength": _TEXT_MAX, "writeOnly": True})
def secret(name: str, value: Any) -> str:
    s = text(name, value)
    if not s:
        raise _fail(name, "must not be empty", "")
    return s


@_schema(
    {
        "type": "string",
        "pattern": _BEARER.pattern,
        "description": "16 to 200 printable ASCII characters without spaces",
        "writeOnly": True,
    }
)
def bearer_token(name: str, value: Any) -> str:
    """A token sent in an ``Authorization: Bearer`` header: only characters a header carries as they are."""
    s = text(name, value)
    if not _BEARER.match(s):
        raise _fail(name, "must be 16 to 200 printable ASCII characters without spaces", "***")
    return s


@_schema({"type": "string", "pattern": _PIN.pattern, "description": "4 to 12 digits", "writeOnly": True})
def pin(name: str, value: Any) -> str:
    p = text(name, str(value) if isinstance(value, int) and not isinstance(value, bool) else value)
    if not _PIN.match(p):
        raise _fail(name, "must be 4 to 12 digits", "***")
    return p


@_schema({"type": "string", "maxLength": _TEXT_MAX, "description": "an e-mail address, or empty"})
def email(name: str, value: Any) -> str:
    e = text(name, value)
    if e and not _EMAIL.match(e):
        raise _fail(name, "must be an e-mail address", value)
    return e


@_schema({"type": "string", "pattern": "^(\\+?[0-9]{2,15})?$", "description": "digits, optionally starting with +"})
def caller_number(name: str, value: Any) -> str:
    s = text(name, str(value) if isinstance(value, int) and not isinstance(value, bool) else value)
    if s and not re.match(r"^\+?[0-9]{2,15}$", s):
        raise _fail(name, "must be digits, optionally starting with +", value)
    return s


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        s = text(name, value)
        if s not in choices:
            shown = ", ".join(c or "''" for c in choices)
            raise _fail(name, f"must be one of {shown}", value)
        return s

    return _schema({"type": "string", "enum": list(choices)})(check)


def list_of(*choices: str) -> Callable[[str, Any], tuple[str, ...]]:
    def check(name: str, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or any(i not in choices for i in items):
            raise _fail(name, f"must be a list of {', '.join(choices)}", value)
        return tuple(dict.fromkeys(items))

    return _schema(
        {
            "type": "array",
            "items": {"type": "string", "enum": list(choices)},
            "description": "a list (or a comma-separated string) of these",
        }
    )(check)


def compile_pattern(pattern: str) -> Any:
    """A user's pattern compiled with RE2 (linear time: no pattern can stall a dialplan fetch).

    Raises ``re2.error`` for what RE2 refuses (backreferences, lookaround, huge repetitions).
    """
    return re2.compile(pattern, options=_RE2_OPTIONS)


@_schema(
    {
        "type": "string",
        "format": "regex",
        "maxLength": _TEXT_MAX,
        "description": "an RE2 regular expression (no backreferences or lookaround)",
    }
)
def regex(name: str, value: Any) -> str:
    s = text(name, value)
    try:
        compile_pattern(s)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise _fail(name, f"is not a regular expression RE2 accepts ({reason})", value) from None
    return s


def _check_nested(name: str, value: Any, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if depth > _OBJECT_DEPTH or budget[0] < 0:
        raise _fail(name, f"is nested deeper than {_OBJECT_DEPTH} or has more than {_OBJECT_ITEMS} items", "...")
    if isinstance(value, str):
        if len(value) > 4 * _TEXT_MAX or not xml_safe(value):
            raise _fail(name, f"holds a string that is not at most {4 * _TEXT_MAX} printable characters", value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _fail(name, "holds a number that is not finite", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_nested(name, key, depth + 1, budget)
            _check_nested(name, item, depth + 1, budget)
    elif isinstance(value, list):
        for item in value:
            _check_nested(name, item, depth + 1, budget)


@_schema({"type": "object", "description": f"a JSON object, nested at most {_OBJECT_DEPTH} deep"})
def json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(name, "must be a JSON object", value)
    _check_nested(name, value, 0, [_OBJECT_ITEMS])
    return value


@_schema({"type": "string", "maxLength": _TEXT_MAX, "description": "the name or id of another object"})
def reference(name: str, value: Any) -> str:
    """A name or id of another object, resolved later by the caller."""
    return text(name, value)
