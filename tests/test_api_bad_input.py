"""Each class of bad input the attack run found answers a 4xx JSON error naming the field, and changes nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from testsupport import AuthedClient

from controller import provisioning
from controller.database import Database
from controller.storage.audio import make_wav

NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1:8021", "esl_password": "ClueCon"}


@pytest.fixture
def acme(admin: Any, client: Any, db: Database) -> AuthedClient:
    """A tenant admin of acme.example, which has user 1001 and gateway carrier; beta.example exists too."""
    assert admin.post("/api/v1/nodes", json=NODE).status_code == 201
    for domain in ("acme.example", "beta.example"):
        assert admin.post("/api/v1/tenants", json={"domain": domain}).status_code == 201
        users = f"/api/v1/tenants/{domain}/users"
        assert admin.post(users, json={"extension": "1001", "password": "pw-1001-long"}).status_code == 201
    gateway = {"name": "carrier", "proxy": "sip.carrier.example"}
    assert admin.post("/api/v1/tenants/acme.example/gateways", json=gateway).status_code == 201
    return AuthedClient(client, provisioning.create_token(db, "tenant-admin", "acme.example")[0])


def state(db: Database) -> list[Any]:
    with db.transaction() as conn:
        tables = [r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return [
            conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(j::text, '|' ORDER BY j::text), '')) "
                f"FROM (SELECT to_jsonb(t) - 'last_used_at' AS j FROM {table} t) s"
            ).fetchone()
            for table in sorted(tables)
        ]


def refused(db: Database, send: Any, field: str, status: int = 400) -> dict[str, Any]:
    before = state(db)
    resp = send()
    assert resp.status_code == status and resp.is_json, (resp.status_code, resp.get_data()[:300])
    assert resp.json["detail"]["field"] == field, resp.json
    assert state(db) == before
    return dict(resp.json)


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("gateways", {"name": "x1", "proxy": "sip.x.example", "username": "\ufffe"}, "username"),
        ("gateways/carrier", {"username": "\ufffe"}, "username"),
        ("gateways/carrier", {"caller_id_name": "a\x00b"}, "caller_id_name"),
        ("users/1001", {"display_name": "\ufffe\uffff"}, "display_name"),
        ("users/1001", {"display_name": "\ud800"}, "display_name"),
        ("users/1001", {"display_name": "x" * 201}, "display_name"),
        ("users/1001", {"ring_timeout": "sixty"}, "ring_timeout"),
        ("users/1001", {"ring_timeout": 30.5}, "ring_timeout"),
        ("users/1001", {"ring_timeout": "1_0"}, "ring_timeout"),
        ("users/1001", {"ring_timeout": 10**40}, "ring_timeout"),
        ("ivrs", {"name": "deep", "options": {"a": [[[[[[[[[["x"]]]]]]]]]]}}, "options"),
        ("ivrs", {"name": "bad-text", "options": {"greeting": "\ufffe"}}, "options"),
    ],
)
def test_bad_field_values(db: Database, acme: AuthedClient, path: str, body: dict[str, Any], field: str) -> None:
    method = acme.patch if "/" in path else acme.post
    refused(db, lambda: method(f"/api/v1/tenants/acme.example/{path}", json=body), field)


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400", "-1e400"])
def test_special_floats_in_an_integer_field(db: Database, acme: AuthedClient, number: str) -> None:
    raw = f'{{"ring_timeout": {number}}}'
    patch = "/api/v1/tenants/acme.example/users/1001"
    refused(db, lambda: acme.patch(patch, data=raw, content_type="application/json"), "body")


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 40 + b"1" + b"}" * 40, b"{", b"\xff\xfe", b"ring_timeout=30"],
)
def test_malformed_or_deep_bodies(db: Database, acme: AuthedClient, raw: bytes) -> None:
    patch = "/api/v1/tenants/acme.example/users/1001"
    refused(db, lambda: acme.patch(patch, data=raw, content_type="application/json"), "body")


def test_a_dial_pattern_that_could_run_away_is_harmless_or_refused(db: Database, acme: AuthedClient) -> None:
    gateways = "/api/v1/tenants/acme.example/gateways"
    for pattern in (r"(\d)\1", r"(?=\d)", r"(?<!x)1", "a{1001}"):
        body = {"name": "gw2", "proxy": "sip.x.example", "dial_pattern": pattern}
        refused(db, lambda b=body: acme.post(gateways, json=b), "dial_pattern")
    # Nested quantifiers are accepted: RE2 matches them in linear time.
    slow = {"name": "gw3", "proxy": "sip.x.example", "dial_pattern": r"^(\d+)+x$"}
    assert acme.post(gateways, json=slow).status_code == 201


def test_nul_and_non_xml_characters_in_path_parts(db: Database, acme: AuthedClient, admin: Any) -> None:
    for path in (
        "/api/v1/tenants/acme%00.example",
        "/api/v1/tenants/acme.example/users/10%0001",
        "/api/v1/tenants/acme.example/users/%EF%BF%BE",
    ):
        field = "child" if "/users/" in path else "ref"
        refused(db, lambda p=path: acme.get(p), field)
        if "/users/" in path:
            refused(db, lambda p=path: acme.delete(p), field)
    refused(db, lambda: admin.delete("/api/v1/nodes/fs%001"), "ref")


def test_non_numeric_query_parameters(db: Database, acme: AuthedClient) -> None:
    for limit in ("ten", "1e400", "Infinity", "1_0", "%00"):
        refused(db, lambda lim=limit: acme.get(f"/api/v1/tenants/acme.example/cdrs?limit={lim}"), "limit")
    assert acme.get("/api/v1/tenants/acme.example/cdrs?limit=5000").status_code == 200  # clamped, as before


def test_voicemail_caller_id_with_nul_is_refused(db: Database, acme: AuthedClient) -> None:
    deposit = "/api/v1/tenants/acme.example/users/1001/voicemail?caller_id_number=%00&caller_id_name=x"
    refused(db, lambda: acme.post(deposit, data=make_wav(0.5), content_type="audio/wav"), "caller_id_number")


def test_an_oversized_chunked_body_is_413_not_dropped(db: Database, acme: AuthedClient) -> None:
    big = json.dumps({"display_name": "x" * (2 * 1024 * 1024)}).encode()

    # What gevent's server hands over for a chunked body: no length, the stream ends where the body does.
    def send() -> Any:
        return acme.patch(
            "/api/v1/tenants/acme.example/users/1001",
            input_stream=io.BytesIO(big),
            headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
            environ_overrides={"wsgi.input_terminated": True},
        )

    refused(db, send, "body", status=413)


def test_placement_reasons_do_not_name_other_tenants(admin: Any, acme: AuthedClient) -> None:
    assert admin.post("/api/v1/tenants", json={"domain": "gamma.example"}).status_code == 201
    assert "gamma.example" in admin.get("/api/v1/placement").json["reason"]
    seen = json.dumps(acme.get("/api/v1/placement").json)
    assert "gamma.example" not in seen and "beta.example" not in seen
    assert acme.get("/api/v1/placement").json["reason"] == "tenant another tenant added"
