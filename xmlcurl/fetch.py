"""What FreeSWITCH asked: the form body mod_xml_curl POSTs, parsed defensively into one record.

The first five fields (hostname, section, tag_name, key_name, key_value) arrive without URL
encoding; the event headers after them are encoded. Anything odd parses to empty strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

SECTIONS = ("configuration", "directory", "dialplan")
MAX_FIELDS = 2000  # a real dialplan fetch has about 200


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
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="replace")
    except ValueError:  # more than MAX_FIELDS
        pairs = []
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)  # FreeSWITCH sends each once; a duplicate cannot override
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
