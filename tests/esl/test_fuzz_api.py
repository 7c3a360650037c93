"""Every route and field of the API under hostile input: never a 5xx, always JSON, and a refusal changes nothing.

The routes and their fields come from the OpenAPI document the app serves (``/api/v1/openapi.json``),
so a new route or field is fuzzed without touching this file. Both a farm-admin and a tenant-admin
token send; the node is a fake FreeSWITCH (commands reach it and get its refusals, never a 503). After
every refused request a snapshot of the database (each table's row count and a hash of its rows) must
be what it was before.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testsupport import AuthedClient

from controller import provisioning
from controller.database import Database
from controller.storage.audio import make_wav

COUNTS: Counter[str] = Counter()

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ufffe",
    "\ufffe\uffff",
    "\ud800",
    "x\udfffy",
    "\x07\x1b[2J",
    "../../etc/passwd",
    "/etc/freeswitch/freeswitch.xml",
    "..",
    "a/../../b",
    "%00",
    "<x>&amp;</x>",
    "]]>",
    "1\n\napi hupall",
    "' OR 1=1 --",
    "x" * 5000,
    "Infinity",
    "NaN",
    "1e400",
    "-1",
    "99999999999999999999999",
    "0x10",
    "١٢٣",
    "1_000",
    "true",
    "all",
    "\u202e",
    "😀",
]
HOSTILE_NUMBERS: list[Any] = [
    math.inf,
    -math.inf,
    math.nan,
    10**30,
    -(10**30),
    1.5,
    -1,
    0,
    True,
    False,
    None,
    1e308,
]
# Raw bodies that are not (strict) JSON, or that are too deep or too large.
RAW_BODIES = [
    b"{",
    b'{"a": 1',
    b"[" * 50_000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"ring_timeout": Infinity}',
    b'{"ring_timeout": NaN}',
    b'{"ring_timeout": 1e400}',
    b'{"ring_timeout": -Infinity}',
    b"\xff\xfe\x00",
    b'{"a": "\\ud800"}',
    b"member=all",
    b"null",
    b"[]",
    b'"text"',
    b"1" * 5000,
    b"{}" + b" " * 10,
    b'{"x": "' + b"y" * (1024 * 1024 + 10) + b'"}',
]
WAV = make_wav(0.2, 8000)
WAVS = [
    WAV,
    WAV[:40] + b"\xff\xff\xff\xff" + WAV[44:],  # a data chunk that says 4 GB
    WAV[:16] + b"\xff\xff\xff\x7f" + WAV[20:],  # a fmt chunk past the end
    WAV[:12] + b"JUNK\xf0\xff\xff\xff" + WAV[12:],
    b"RIFF\x00\x00\x00\x00WAVE",
]
# Real objects of the fixture, so hostile values also reach the views behind the path lookups.
VALID_PARTS = [
    "acme.example",
    "beta.example",
    "fs1",
    "1001",
    "3000",
    "main-menu",
    "carrier",
    "+15551230000",
    "users",
    "conferences",
    "mute",
    "kick",
    "record",
    "reloadxml",
    "xml_flush_cache",
    "welcome.wav",
]

hostile_text = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=40) | st.text(st.characters(codec="utf-8"), max_size=8)
scalar = hostile_text | st.sampled_from(HOSTILE_NUMBERS) | st.integers() | st.floats()
value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def world(db: Database, client: Any, fake_fs: Any) -> dict[str, Any]:
    fs = fake_fs()
    provisioning.add_node(
        db, {"name": "fs1", "sip_address": "127.0.0.1", "esl_address": fs.address, "esl_password": "ClueCon"}
    )
    for domain in ("acme.example", "beta.example"):
        provisioning.add_tenant(db, {"domain": domain})
        provisioning.add_child(db, "users", domain, {"extension": "1001", "password": "pw-1001-long"})
        provisioning.add_child(db, "conferences", domain, {"number": "3000"})
        provisioning.add_child(db, "ivrs", domain, {"name": "main-menu", "extension": "5000"})
        provisioning.add_child(db, "gateways", domain, {"name": "carrier", "proxy": "sip.carrier.example"})
    provisioning.add_child(
        db, "numbers", "acme.example", {"number": "+15551230000", "target_type": "ivr", "target": "main-menu"}
    )
    farm, _ = provisioning.create_token(db, "farm-admin", label="fuzz")
    tenant, _ = provisioning.create_token(db, "tenant-admin", "acme.example", label="fuzz")
    document = AuthedClient(client, farm).get("/api/v1/openapi.json").json
    return {"clients": [AuthedClient(client, farm), AuthedClient(client, tenant)], "operations": operations(document)}


def operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (path, method): its path parameters, query parameters and body field names."""
    out = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = op.get("parameters", []) + item.get("parameters", [])
            content = (op.get("requestBody") or {}).get("content", {})
            schema = next(iter(content.values()), {}).get("schema", {}) if content else {}
            out.append(
                {
                    "path": path,
                    "method": method,
                    "path_params": [p["name"] for p in params if p.get("in") == "path"],
                    "query": [p["name"] for p in params if p.get("in") == "query"],
                    "fields": sorted(schema.get("properties", {})),
                    # Deleting or draining a real object is a success, not a refusal: those get hostile names only.
                    "destructive": method == "delete" or path.endswith(("/drain", "/read")),
                }
            )
    return out


def snapshot(db: Database) -> dict[str, tuple[int, str]]:
    """Each table's row count and a hash of its rows (a token's last use is not a change)."""
    out = {}
    with db.transaction() as conn:
        tables = [r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in sorted(tables):
            row = conn.execute(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(j::text, '|' ORDER BY j::text), '')) AS h "
                f"FROM (SELECT to_jsonb(t) - 'last_used_at' AS j FROM {table} t) s"
            ).fetchone()
            out[table] = (row["n"], row["h"])
    return out


def quoted(part: str) -> str:
    return urllib.parse.quote(part.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def hostile_request(draw: Any, ops: list[dict[str, Any]]) -> dict[str, Any]:
    op = draw(st.sampled_from(ops))
    path = op["path"]
    for name in op["path_params"]:
        part = draw(hostile_text if op["destructive"] else st.sampled_from(VALID_PARTS) | hostile_text)
        path = path.replace("{" + name + "}", quoted(part) or "%20")
    query = {name: draw(hostile_text) for name in op["query"] if draw(st.booleans())}
    if query:
        path += "?" + "&".join(f"{quoted(k)}={quoted(v)}" for k, v in query.items())
    kind = draw(st.sampled_from(["fields", "raw", "value", "none", "wav"]))
    data: bytes | None = None
    content_type = "audio/wav" if kind == "wav" else "application/json"
    if kind == "wav":
        data = draw(st.sampled_from(WAVS))
    elif kind == "raw":
        data = draw(st.sampled_from(RAW_BODIES))
    elif kind == "value":
        data = json.dumps(draw(value)).encode()
    elif kind == "fields":
        # Every documented field hostile at once, or one of them alone.
        chosen = (
            op["fields"] if draw(st.booleans()) else draw(st.lists(st.sampled_from(op["fields"] or ["x"]), max_size=1))
        )
        data = json.dumps({f: draw(value) for f in chosen}).encode()
    return {"method": op["method"], "path": path, "data": data, "type": content_type, "who": draw(st.integers(0, 1))}


def test_every_route_and_field_under_hostile_input(db: Database, world: dict[str, Any]) -> None:
    ops = world["operations"]
    assert len(ops) > 50  # the walk found the API, not an empty document

    @settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "600")),
        deadline=None,
        derandomize=os.environ.get("FUZZ_SEED") is None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(hostile_request(ops))
    def one(req: dict[str, Any]) -> None:
        before = snapshot(db)
        send = getattr(world["clients"][req["who"]], req["method"])
        kwargs: dict[str, Any] = {}
        if req["data"] is not None:
            kwargs = {"data": req["data"], "content_type": req["type"]}
        resp = send(req["path"], **kwargs)
        COUNTS["requests"] += 1
        COUNTS[f"{resp.status_code // 100}xx"] += 1
        COUNTS[str(resp.status_code)] += 1
        assert resp.status_code < 500, (req, resp.status_code, resp.get_data()[:300])
        if 300 <= resp.status_code < 400:  # "a//b" (a hostile "/" in a path part) redirects to "a/b"
            assert resp.headers["Location"], req
        elif resp.status_code >= 400 or resp.mimetype != "audio/wav":
            assert resp.is_json and resp.json is not None, (req, resp.status_code, resp.get_data()[:300])
        if resp.status_code >= 400:
            assert snapshot(db) == before, (req, resp.status_code, resp.json)

    one()
    print(f"\nfuzz: {dict(COUNTS)}")
    assert COUNTS["5xx"] == 0 and COUNTS["4xx"] > 0
