"""Helpers for the xml_curl tests: the recorded FreeSWITCH requests and how to replay them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"  # recorded from a real FreeSWITCH
REQUESTS = FIXTURE_DIR / "xml_curl" / "requests.jsonl"
RECORDED_PASSWORDS = {"1001": "pw1001", "1002": "pw1002"}  # from the fixture README


@dataclass(frozen=True)
class Recorded:
    """One request FreeSWITCH 1.10.12 made, exactly as recorded."""

    label: str
    method: str
    path: str
    headers: dict[str, str]
    body: str
    response_served: str

    @property
    def fields(self) -> dict[str, str]:
        return dict(parse_qsl(self.body, keep_blank_values=True))

    def with_fields(self, **changes: str | None) -> str:
        """The same form with some fields replaced (None removes one), re-encoded like FreeSWITCH would."""
        pairs = [(k, v) for k, v in parse_qsl(self.body, keep_blank_values=True)]
        out = []
        seen = set()
        for k, v in pairs:
            if k in changes:
                seen.add(k)
                if changes[k] is None:
                    continue
                v = changes[k]  # type: ignore[assignment]
            out.append((k, v))
        out += [(k, v) for k, v in changes.items() if k not in seen and v is not None]
        return urlencode(out)


def load_recorded() -> list[Recorded]:
    names = {"label", "method", "path", "headers", "body", "response_served"}
    out = []
    for line in REQUESTS.read_text().split("\n"):
        if line.strip():
            row = json.loads(line)
            out.append(Recorded(**{k: v for k, v in row.items() if k in names}))
    return out


AUTH = "Basic " + base64.b64encode(b"freeswitch:s3cret").decode()


def post(client: Any, body: str | bytes, auth: str | None = AUTH, **headers: str) -> Any:
    """POST a form body the way mod_xml_curl does (raw body, form content type, basic auth)."""
    sent = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "freeswitch-xml/1.0", **headers}
    if auth:
        sent["Authorization"] = auth
    return client.post("/xmlcurl", data=body if isinstance(body, bytes) else body.encode(), headers=sent)


def pick(recorded: list[Recorded], label: str, index: int = 0) -> Recorded:
    return [r for r in recorded if r.label == label][index]


def parse_answer(resp: Any) -> Any:
    """The lxml tree of an answer, after checking what FreeSWITCH requires of every answer."""
    from lxml import etree

    assert resp.status_code == 200, resp.data[:300]
    assert resp.mimetype == "text/xml"
    root = etree.fromstring(resp.data)
    assert root.tag == "document" and root.get("type") == "freeswitch/xml"
    assert len(root.findall("section")) == 1
    return root


def is_not_found(root: Any) -> bool:
    section = root.find("section")
    return section.get("name") == "result" and section.find("result").get("status") == "not found"


def actions(root: Any) -> list[tuple[str, str]]:
    return [(a.get("application"), a.get("data")) for a in root.iter("action")]
