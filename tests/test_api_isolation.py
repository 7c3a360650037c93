"""Two tenant admins: each sees and changes only its own tenant, and cannot tell the other exists."""

from __future__ import annotations

from testsupport import AuthedClient

from controller import provisioning


def test_tenant_admins_only_see_their_own_tenant(admin, client, db):
    admin.post(
        "/api/v1/nodes", json={"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}
    )
    for domain in ("acme.example", "beta.example"):
        admin.post("/api/v1/tenants", json={"domain": domain})
        admin.post(f"/api/v1/tenants/{domain}/users", json={"extension": "1001", "password": "pw-1001-x"})
    acme = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "acme.example")[0])
    beta = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "beta.example")[0])

    assert [t["domain"] for t in acme.get("/api/v1/tenants").json] == ["acme.example"]
    assert (
        acme.post("/api/v1/tenants/acme.example/users", json={"extension": "1002", "password": "pw-1002-x"}).status_code
        == 201
    )
    assert len(acme.get("/api/v1/tenants/acme.example/users").json) == 2

    # Everything of beta's answers exactly like something that does not exist.
    for method, path, kwargs in [
        ("get", "/api/v1/tenants/beta.example", {}),
        ("get", "/api/v1/tenants/beta.example/users", {}),
        ("get", "/api/v1/tenants/beta.example/users/1001", {}),
        ("patch", "/api/v1/tenants/beta.example/users/1001", {"json": {"display_name": "pwned"}}),
        ("delete", "/api/v1/tenants/beta.example/users/1001", {}),
        ("post", "/api/v1/tenants/beta.example/users", {"json": {"extension": "1003", "password": "pw-1003-x"}}),
    ]:
        theirs = getattr(acme, method)(path, **kwargs)
        missing = getattr(acme, method)(path.replace("beta.example", "nobody.example"), **kwargs)
        assert theirs.status_code == missing.status_code == 404, path
        assert theirs.json["error"].replace("beta", "X") == missing.json["error"].replace("nobody", "X")

    # Farm-level resources are invisible to tenant admins.
    assert acme.get("/api/v1/nodes").status_code == 404
    assert acme.post("/api/v1/tenants", json={"domain": "evil.example"}).status_code == 404
    assert acme.post("/api/v1/tokens", json={"scope": "farm-admin"}).status_code == 404
    assert acme.patch("/api/v1/tenants/acme.example", json={"pinned_node": "fs1"}).status_code == 403
    placement = acme.get("/api/v1/placement").json
    assert [t["tenant"] for t in placement["tenants"]] == ["acme.example"]

    # beta's data is untouched, and beta sees only itself.
    users = admin.get("/api/v1/tenants/beta.example/users").json
    assert [(u["extension"], u["display_name"]) for u in users] == [("1001", "")]
    assert [t["domain"] for t in beta.get("/api/v1/tenants").json] == ["beta.example"]


def test_node_join_token_cannot_use_admin_api(client, db):
    token, _ = provisioning.create_token(db, "node-join")
    joiner = AuthedClient(client, token)
    assert joiner.get("/api/v1/tenants").status_code == 404
    assert joiner.get("/api/v1/placement").status_code == 404


def test_a_tenant_admin_cannot_take_another_tenants_did_by_dropping_its_plus(admin, client, db):
    for domain in ("acme.example", "beta.example"):
        admin.post("/api/v1/tenants", json={"domain": domain})
        admin.post(f"/api/v1/tenants/{domain}/users", json={"extension": "1001", "password": "pw-1001-x"})
    beta = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "beta.example")[0])
    acme = AuthedClient(client, provisioning.create_token(db, "tenant-admin", "acme.example")[0])
    assert (
        beta.post(
            "/api/v1/tenants/beta.example/numbers",
            json={"number": "+15550002000", "target_type": "user", "target": "1001"},
        ).status_code
        == 201
    )
    for variant in ("15550002000", "+15550002000"):
        stolen = acme.post(
            "/api/v1/tenants/acme.example/numbers", json={"number": variant, "target_type": "user", "target": "1001"}
        )
        assert stolen.status_code == 409, stolen.json
        assert "already assigned" in stolen.json["error"]
    assert acme.get("/api/v1/tenants/acme.example/numbers").json == []
    assert [n["number"] for n in beta.get("/api/v1/tenants/beta.example/numbers").json] == ["+15550002000"]
