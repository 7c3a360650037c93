"""Tokens: listed and revoked by farm admins, expiring when asked to, and guessing limited per address."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from testsupport import AuthedClient

from controller import provisioning
from controller.database import Database


def test_farm_admin_lists_every_token_and_a_tenant_admin_only_its_tenants(client: Any, db: Database) -> None:
    provisioning.add_tenant(db, {"domain": "acme.example"})
    provisioning.add_tenant(db, {"domain": "beta.example"})
    farm, _ = provisioning.create_token(db, "farm-admin", label="ops")
    acme, _ = provisioning.create_token(db, "tenant-admin", "acme.example", "acme admin")
    provisioning.create_token(db, "tenant-admin", "beta.example", "beta admin")
    listed = AuthedClient(client, farm).get("/api/v1/tokens")
    assert listed.status_code == 200
    assert [(t["scope"], t["tenant"], t["label"]) for t in listed.json] == [
        ("farm-admin", None, "ops"),
        ("tenant-admin", "acme.example", "acme admin"),
        ("tenant-admin", "beta.example", "beta admin"),
    ]
    assert all("token" not in t and "token_hash" not in t and t["token_hash_set"] for t in listed.json)
    own = AuthedClient(client, acme).get("/api/v1/tokens")
    assert own.status_code == 200 and [t["label"] for t in own.json] == ["acme admin"]
    # Revoking is for farm admins only: to a tenant admin the route does not exist.
    assert AuthedClient(client, acme).delete(f"/api/v1/tokens/{own.json[0]['id']}").status_code == 404


def test_a_revoked_token_stops_working_at_once(client: Any, db: Database) -> None:
    farm, _ = provisioning.create_token(db, "farm-admin", label="ops")
    victim, stored = provisioning.create_token(db, "farm-admin", label="leaked")
    assert AuthedClient(client, victim).get("/api/v1/nodes").status_code == 200
    revoked = AuthedClient(client, farm).delete(f"/api/v1/tokens/{stored.id}")
    assert revoked.status_code == 200 and revoked.json["revoked"] is True
    assert AuthedClient(client, victim).get("/api/v1/nodes").status_code == 401
    assert AuthedClient(client, farm).delete(f"/api/v1/tokens/{stored.id}").status_code == 200  # again: no change
    missing = AuthedClient(client, farm).delete("/api/v1/tokens/8b2c3c1f-0266-45af-b588-894f93e0fd8a")
    assert missing.status_code == 404 and missing.json["error"].startswith("no token")
    bad = AuthedClient(client, farm).delete("/api/v1/tokens/not-a-uuid")
    assert bad.status_code == 400 and bad.json["detail"] == {"field": "id"}


def test_expiring_tokens(client: Any, db: Database, farm_token: str) -> None:
    admin = AuthedClient(client, farm_token)
    made = admin.post("/api/v1/tokens", json={"scope": "farm-admin", "label": "for an hour", "expires_in": 3600})
    assert made.status_code == 201 and made.json["expires_at"] is not None
    with db.transaction() as conn:
        row = conn.execute("SELECT created_at, expires_at FROM api_tokens WHERE id = %s", [made.json["id"]]).fetchone()
    assert row is not None and row["expires_at"] - row["created_at"] == timedelta(hours=1)
    assert AuthedClient(client, made.json["token"]).get("/api/v1/nodes").status_code == 200
    with db.transaction() as conn:  # an hour later
        conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", [made.json["id"]])
    expired = AuthedClient(client, made.json["token"]).get("/api/v1/nodes")
    assert expired.status_code == 401 and expired.json["error"] == "token expired"
    for wrong in (0, -5, "soon", True, 10**12):
        refused = admin.post("/api/v1/tokens", json={"scope": "farm-admin", "expires_in": wrong})
        assert refused.status_code == 400 and refused.json["error"].startswith("expires_in:"), (wrong, refused.json)


def test_guessing_tokens_is_limited_per_client_address(app: Any, client: Any, farm_token: str, caplog: Any) -> None:
    from controller.bearer import FAILURE_WINDOW, FAILURES_ALLOWED, limiter

    now = [500.0]
    limiter(app).clock = lambda: now[0]
    attacker = {"REMOTE_ADDR": "192.0.2.66"}

    def nodes(token: str, environ: dict[str, str] | None = None) -> Any:
        return client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}, environ_base=environ or {})

    for _ in range(3):  # no token at all is not a guess
        assert client.get("/api/v1/nodes", environ_base=attacker).status_code == 401
    with caplog.at_level(logging.WARNING, logger="controller.bearer"):
        for n in range(FAILURES_ALLOWED):
            assert nodes(f"fsf_guess{n}", attacker).status_code == 401
    assert "failed authentications from 192.0.2.66" in caplog.text
    blocked = nodes(farm_token, attacker)  # even the right token, from that address
    assert blocked.status_code == 429 and blocked.json["error"].startswith("too many failed authentications")
    assert 1 <= int(blocked.headers["Retry-After"]) <= FAILURE_WINDOW
    assert nodes(farm_token).status_code == 200  # other clients are not affected
    now[0] += FAILURE_WINDOW
    assert nodes(farm_token, attacker).status_code == 200


def fsfarm(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_token_commands(dsn: str) -> None:
    made = json.loads(fsfarm(dsn, "token", "create", "--label", "ci", "--expires-in", "600", "--json").stdout)
    assert made["expires_at"] is not None
    listed = fsfarm(dsn, "token", "list")
    assert listed.returncode == 0 and listed.stdout.split("\n")[0].split()[:3] == ["ID", "SCOPE", "TENANT"]
    assert made["id"] in listed.stdout and made["token"] not in listed.stdout
    revoked = fsfarm(dsn, "token", "revoke", made["id"])
    assert revoked.returncode == 0 and f"token {made['id']} (farm-admin, ci) revoked" in revoked.stdout
    assert json.loads(fsfarm(dsn, "token", "list", "--json").stdout)[0]["revoked"] is True
    for args, message in [
        (("token", "revoke", "nope"), "error: id: not a token id"),
        (("token", "revoke", "8b2c3c1f-0266-45af-b588-894f93e0fd8a"), "error: no token"),
        (("token", "create", "--expires-in", "5"), "error: --expires-in: must be between 60 and"),
    ]:
        failed = fsfarm(dsn, *args)
        assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and message in failed.stderr, failed.stderr
