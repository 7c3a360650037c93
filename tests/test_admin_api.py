"""The admin REST API as an operator's script uses it, against a real PostgreSQL."""

from __future__ import annotations

import hashlib

from controller.stores import nodes as node_store
from controller.stores import tenants as tenant_store
from controller.stores import users as user_store

NODE = {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "ClueCon"}


def counts(admin) -> dict[str, int]:
    """What is stored, seen through the API (used to prove an error changed nothing)."""
    tenants = admin.get("/api/v1/tenants").json
    out = {"nodes": len(admin.get("/api/v1/nodes").json), "tenants": len(tenants)}
    for kind in ("users", "numbers", "conferences", "ivrs", "gateways"):
        out[kind] = sum(len(admin.get(f"/api/v1/tenants/{t['domain']}/{kind}").json) for t in tenants)
    return out


def test_full_crud_cycle_and_placement(admin):
    assert admin.post("/api/v1/nodes", json=NODE).status_code == 201
    assert (
        admin.post("/api/v1/nodes", json={**NODE, "name": "spare1", "switchname": "spare1", "spare": True}).status_code
        == 201
    )
    r = admin.post("/api/v1/tenants", json={"domain": "Acme.Example", "name": "Acme"})
    assert r.status_code == 201 and r.json["domain"] == "acme.example"

    r = admin.post(
        "/api/v1/tenants/acme.example/users",
        json={
            "extension": "1001",
            "password": "pw-1001-long",
            "vm_pin": "4321",
            "toll_allow": ["local", "domestic"],
            "display_name": "Alice",
        },
    )
    assert r.status_code == 201, r.json
    user = r.json
    assert "password" not in user and "a1_hash" not in user and user["a1_hash_set"] is True
    assert user["toll_allow"] == ["local", "domestic"]

    assert (
        admin.post(
            "/api/v1/tenants/acme.example/conferences", json={"number": "3000", "profile": "hd", "pin": "1234"}
        ).status_code
        == 201
    )
    assert (
        admin.post(
            "/api/v1/tenants/acme.example/ivrs",
            json={"name": "main-menu", "extension": "5000", "options": {"greeting": "hi"}},
        ).status_code
        == 201
    )
    r = admin.post(
        "/api/v1/tenants/acme.example/gateways",
        json={"name": "carrier", "proxy": "sip.carrier.example", "password": "gwsecret"},
    )
    assert r.status_code == 201 and r.json["password_set"] is True and "password" not in r.json
    assert (
        admin.post(
            "/api/v1/tenants/acme.example/numbers",
            json={"number": "+15551230000", "target_type": "ivr", "target": "main-menu"},
        ).status_code
        == 201
    )

    # Read back by natural key, change, and see the change.
    assert admin.get("/api/v1/tenants/acme.example/users/1001").json["display_name"] == "Alice"
    r = admin.patch("/api/v1/tenants/acme.example/users/1001", json={"display_name": "Alice B", "ring_timeout": 40})
    assert r.status_code == 200 and r.json["ring_timeout"] == 40
    assert admin.get("/api/v1/tenants/acme.example/users/1001").json["display_name"] == "Alice B"

    placement = admin.get("/api/v1/placement").json
    assert placement["generation"] >= 1
    assert [t["node"] for t in placement["tenants"]] == ["fs1"]  # never the spare
    room = placement["conferences"][0]
    assert room["conference"] == "3000" and room["node"] == "fs1"  # HD room without mixers stays local

    # Deleting in dependency order works; each delete is visible.
    assert admin.delete("/api/v1/tenants/acme.example/numbers/+15551230000").status_code == 200
    assert admin.delete("/api/v1/tenants/acme.example/ivrs/main-menu").status_code == 200
    assert admin.get("/api/v1/tenants/acme.example/ivrs/main-menu").status_code == 404


def test_secrets_are_stored_as_hashes_sealed_at_rest(admin, db):
    admin.post("/api/v1/nodes", json=NODE)
    admin.post("/api/v1/tenants", json={"domain": "acme.example"})
    admin.post(
        "/api/v1/tenants/acme.example/users", json={"extension": "1001", "password": "pw1001pw", "vm_pin": "98765432"}
    )
    with db.transaction() as conn:
        user = user_store.store.get(conn, tenant_store.by_domain(conn, "acme.example").id, "1001")
        node = node_store.get(conn, "fs1")
        dump = str(conn.execute("SELECT row_to_json(u) FROM users u").fetchall())
        dump += str(conn.execute("SELECT row_to_json(n) FROM nodes n").fetchall())
    a1, vm_a1 = (
        hashlib.md5(b"1001:acme.example:pw1001pw").hexdigest(),
        hashlib.md5(b"1001:acme.example:98765432").hexdigest(),
    )
    assert (user.a1_hash, user.vm_a1_hash) == (a1, vm_a1)  # what FreeSWITCH is given
    for secret in ("pw1001pw", "98765432", a1, vm_a1, "ClueCon"):
        assert secret not in dump  # the rows hold only their sealed form
    # The ESL password is kept (the workers need it) but the API never shows it.
    assert node.esl_password == "ClueCon"
    assert "ClueCon" not in admin.get("/api/v1/nodes").get_data(as_text=True)


def test_bad_input_gets_4xx_json_and_changes_nothing(admin, client):
    admin.post("/api/v1/nodes", json=NODE)
    admin.post("/api/v1/tenants", json={"domain": "acme.example"})
    admin.post("/api/v1/tenants/acme.example/users", json={"extension": "1001", "password": "pw1001pw"})
    before = counts(admin)
    cases = [
        ("post", "/api/v1/tenants", {"json": {"domain": "acme.example"}}, 409),
        ("post", "/api/v1/tenants", {"json": {"domain": "not a domain"}}, 400),
        ("post", "/api/v1/tenants", {"json": {"domain": "x.example", "pinned_node": "nope"}}, 404),
        ("post", "/api/v1/tenants", {"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("post", "/api/v1/tenants", {"json": {}}, 400),
        ("post", "/api/v1/tenants", {"json": {"domain": "y.example", "colour": "red"}}, 400),
        ("post", "/api/v1/tenants/acme.example/users", {"json": {"extension": "1001", "password": "pw1001pw"}}, 409),
        ("post", "/api/v1/tenants/acme.example/users", {"json": {"extension": "10a1", "password": "pw1001pw"}}, 400),
        ("post", "/api/v1/tenants/acme.example/users", {"json": {"extension": "1002", "password": "short"}}, 400),
        ("post", "/api/v1/tenants/acme.example/users", {"json": {"extension": "1002"}}, 400),
        ("post", "/api/v1/tenants/acme.example/conferences", {"json": {"number": "1001"}}, 409),
        (
            "post",
            "/api/v1/tenants/acme.example/numbers",
            {"json": {"number": "+1555", "target_type": "user", "target": "9999"}},
            400,
        ),
        ("post", "/api/v1/tenants/nobody.example/users", {"json": {"extension": "1002", "password": "pw1002pw"}}, 404),
        ("post", "/api/v1/nodes", {"json": {**NODE, "rtp_port_min": 30000, "rtp_port_max": 20000}}, 400),
        ("post", "/api/v1/nodes", {"json": {**NODE, "sip_address": "10.0.0.1:99999"}}, 400),
        ("post", "/api/v1/nodes", {"json": NODE}, 409),
        ("delete", "/api/v1/nodes/fs1", {}, 409),  # still hosts acme.example
        ("delete", "/api/v1/tenants/acme.example", {}, 409),  # still has a user
        ("patch", "/api/v1/tenants/acme.example", {"json": {"domain": "other.example"}}, 400),
        ("patch", "/api/v1/tenants/acme.example/users/1001", {"json": {"extension": "1009"}}, 400),
        ("get", "/api/v1/tenants/acme.example/widgets", {}, 404),
    ]
    for method, path, kwargs, status in cases:
        r = getattr(admin, method)(path, **kwargs)
        assert r.status_code == status, (method, path, kwargs, r.status_code, r.get_data(as_text=True))
        assert isinstance(r.json.get("error"), str) and r.json["error"], (path, r.json)
        assert "detail" in r.json
    assert counts(admin) == before


def test_tokens_are_required_and_checked(client, admin):
    assert client.get("/api/v1/tenants").status_code == 401
    r = client.get("/api/v1/tenants", headers={"Authorization": "Bearer fsf_wrong"})
    assert r.status_code == 401 and r.json["error"] == "invalid token"
    assert client.get("/api/v1/tenants", headers={"Authorization": "Basic abc"}).status_code == 401
    r = admin.post("/api/v1/tokens", json={"scope": "farm-admin", "label": "ops"})
    assert r.status_code == 201 and r.json["token"].startswith("fsf_") and "token_hash" not in r.json
    assert client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {r.json['token']}"}).status_code == 200
    assert client.get("/healthz").json["status"] == "ok"


def test_node_drain_moves_tenants_and_then_removal_is_allowed(admin):
    admin.post("/api/v1/nodes", json=NODE)
    admin.post("/api/v1/nodes", json={**NODE, "name": "fs2", "switchname": "fs2"})
    for i in range(12):
        admin.post("/api/v1/tenants", json={"domain": f"t{i}.example"})
    before = {t["tenant"]: t["node"] for t in admin.get("/api/v1/placement").json["tenants"]}
    assert set(before.values()) == {"fs1", "fs2"}
    generation = admin.get("/api/v1/placement").json["generation"]

    assert admin.post("/api/v1/nodes/fs1/drain").json["admin_state"] == "draining"
    after = admin.get("/api/v1/placement").json
    assert {t["node"] for t in after["tenants"]} == {"fs2"}
    assert after["generation"] == generation + 1 and "fs1" in after["reason"]
    # Tenants that were on fs2 did not move.
    assert all(after_t["node"] == "fs2" for after_t in after["tenants"] if before[after_t["tenant"]] == "fs2")
    assert admin.delete("/api/v1/nodes/fs1").status_code == 200


def test_pinned_tenant_stays_on_its_node(admin):
    admin.post("/api/v1/nodes", json=NODE)
    admin.post("/api/v1/nodes", json={**NODE, "name": "fs2", "switchname": "fs2"})
    for i in range(6):
        admin.post("/api/v1/tenants", json={"domain": f"t{i}.example", "pinned_node": "fs2"})
    assert {t["node"] for t in admin.get("/api/v1/placement").json["tenants"]} == {"fs2"}
    admin.patch("/api/v1/tenants/t0.example", json={"pinned_node": "fs1"})
    where = {t["tenant"]: t["node"] for t in admin.get("/api/v1/placement").json["tenants"]}
    assert where["t0.example"] == "fs1"
