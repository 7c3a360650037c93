"""What FreeSWITCH asked: the form body mod_xml_curl POSTs, parsed defensively into one record.

The first five fields (hostname, section, tag_name, key_name, key_value) arrive without URL
encoding; the event headers after them are encoded. Anything odd parses to empty strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote_plus

SECTIONS = ("configuration", "directory", "dialplan", "languages")
MAX_FIELDS = 2000  # a real dialplan fetch has about 200
# The only fields any answer depends on; decoding just these keeps a 6 kB dialplan fetch cheap.
WANTED = frozenset(
    {
        "hostname",
        "section",
        "tag_name",
        "key_name",
        "key_value",
        "FreeSWITCH-Switchname",
        "user",
        "domain",
        "action",
        "purpose",
        "profile",
        "Hunt-Context",
        "Caller-Context",
        "Hunt-Destination-Number",
        "Caller-Destination-Number",
        "lang",
        "macro_name",
        "variable_user_name",  # the authenticated caller, whose prepaid account pays (xmlcurl.billed)
    }
)


@dataclass(frozen=True)
class Fetch:
    """One xml_curl request: the section, its key, the asking switch, and every other field."""

    section: str
    tag_name: str
    key_name: str
    key_value: str
    switchname: str
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def first(self, *names: str) -> str:
        """The first non-empty of several fields (Hunt-* wins over Caller-* after a transfer)."""
        for name in names:
            value = self.fields.get(name)
            if value:
                return value
        return ""


def parse(body: bytes) -> Fetch:
    """Parse a raw form body; never raises on garbage (bad UTF-8, missing fields, too many fields)."""
    text = body.decode("utf-8", errors="replace")
    pieces = text.split("&")
    fields: dict[str, str] = {}
    if len(pieces) <= MAX_FIELDS:
        for piece in pieces:
            name, _, value = piece.partition("=")
            if "%" in name or "+" in name:
                name = unquote_plus(name, errors="replace")
            if name in WANTED and name not in fields:  # a duplicate cannot override what came first
                fields[name] = unquote_plus(value, errors="replace")
    # FreeSWITCH-Switchname is the node's configured name; the bare `hostname` is all some fetches carry.
    switchname = fields.get("FreeSWITCH-Switchname") or fields.get("hostname", "")
    return Fetch(
        section=fields.get("section", ""),
        tag_name=fields.get("tag_name", ""),
        key_name=fields.get("key_name", ""),
        key_value=fields.get("key_value", ""),
        switchname=switchname,
        fields=fields,
    )
