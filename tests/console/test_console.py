"""The web console in Debian's real Chromium against the controller's app on a real PostgreSQL.

Signs in as a farm admin (token) and as a tenant admin (a user's SIP password), works the forms,
and plays an attacker: another tenant's pages, a change without the CSRF token, a stale cookie.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from console_browser import api_from_page, chromium, loaded, serving, shot, sign_in, until

from controller import provisioning


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def base(app: Any) -> Iterator[str]:
    with serving(app) as url:
        yield url


def node(name: str, host: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "sip_address": host, "esl_address": host, "esl_password": "ClueCon", **extra}


@pytest.fixture
def farm(admin: Any) -> Any:
    """Two nodes and a spare, acme.test with two users (1001 a console admin), and beta.test."""
    for body in (node("fs1", "127.0.0.61"), node("fs2", "127.0.0.62"), node("spare1", "127.0.0.63", spare=True)):
        assert admin.post("/api/v1/nodes", json=body).status_code == 201
    for domain in ("acme.test", "beta.test"):
        assert (
            admin.post("/api/v1/tenants", json={"domain": domain, "name": domain.split(".")[0].title()}).status_code
            == 201
        )
    users = [
        (
            "acme.test",
            {"extension": "1001", "password": "acme-admin-pw", "console_admin": True, "display_name": "Alice"},
        ),
        ("acme.test", {"extension": "1002", "password": "acme-1002-pw", "display_name": "Bob"}),
        ("beta.test", {"extension": "2001", "password": "beta-admin-pw", "console_admin": True, "display_name": "Zed"}),
    ]
    for domain, body in users:
        assert admin.post(f"/api/v1/tenants/{domain}/users", json=body).status_code == 201
    return admin


def test_a_wrong_token_is_refused_on_the_sign_in_page_and_gives_no_session(browser: Any, base: str, farm: Any) -> None:
    page = sign_in(browser, base, token="fsf_not-a-real-token")
    assert "invalid token" in page.inner_text("#login-error")
    assert not [c for c in page.context.cookies() if c["name"] == "fsfarm_session"]
    shot(page, "login")
    page.goto(f"{base}/console/nodes")
    assert page.url.endswith("/console/login")  # no session: back to the sign-in page
    page = sign_in(browser, base, user="1002@acme.test", password="acme-1002-pw")  # not a console admin
    assert "wrong user or password" in page.inner_text("#login-error")


def test_a_farm_admin_creates_a_tenant_and_a_user_and_a_bad_field_is_named_and_stores_nothing(
    browser: Any, base: str, farm: Any, farm_token: str
) -> None:
    page = sign_in(browser, base, token=farm_token)
    assert page.url.endswith("/console/overview")
    loaded(page)
    assert page.inner_text("#stat-nodes") == "0/3"  # nobody has heard from the nodes yet
    shot(page, "overview")

    loaded(page, f"{base}/console/tenants")
    page.click("#create")
    page.fill("#f-domain", "gamma.test")
    page.fill("#f-name", "Gamma")
    page.click("#dialog-form button[type=submit]")
    until(lambda: page.locator("tr[data-key='gamma.test']").count(), page)
    assert farm.get("/api/v1/tenants/gamma.test").status_code == 200
    shot(page, "tenants")

    loaded(page, f"{base}/console/tenants/gamma.test/users")
    page.click("#create")
    page.fill("#f-extension", "12ab")  # not an extension
    page.fill("#f-password", "gamma-pw-1234")
    page.click("#dialog-form button[type=submit]")
    error = until(lambda: page.inner_text("#form-error"), page)
    assert "extension" in error
    assert page.get_attribute("#f-extension", "aria-invalid") == "true"
    assert farm.get("/api/v1/tenants/gamma.test/users").json == []
    page.fill("#f-extension", "3001")
    page.click("#dialog-form button[type=submit]")
    until(lambda: page.locator("tr[data-key='3001']").count(), page)
    stored = farm.get("/api/v1/tenants/gamma.test/users/3001").json
    assert stored["a1_hash_set"] is True and "gamma-pw-1234" not in str(stored)
    assert stored["enabled"] is True and stored["voicemail"] is True  # the switches started at the defaults
    shot(page, "users")

    for slug in ("nodes", "placement", "failovers", "mixers"):
        loaded(page, f"{base}/console/{slug}")
        shot(page, slug)
    assert page.locator("text=No such").count() == 0


def test_the_placement_page_follows_a_drain_without_a_reload(
    browser: Any, base: str, farm: Any, farm_token: str
) -> None:
    page = loaded(sign_in(browser, base, token=farm_token), f"{base}/console/placement")
    placed = {t["tenant"]: t["node"] for t in farm.get("/api/v1/placement").json["tenants"]}
    first = placed["acme.test"]
    assert page.locator(f"[data-node='{first}'] [data-tenant='acme.test']").count() == 1
    page.evaluate("window.notReloaded = true")

    assert farm.post(f"/api/v1/nodes/{first}/drain").status_code == 200  # another admin, elsewhere
    after = {t["tenant"]: t["node"] for t in farm.get("/api/v1/placement").json["tenants"]}["acme.test"]
    assert after != first
    until(lambda: page.locator(f"[data-node='{after}'] [data-tenant='acme.test']").count(), page)
    assert page.locator(f"[data-node='{first}'] [data-tenant='acme.test']").count() == 0
    assert page.evaluate("window.notReloaded") is True
    until(lambda: f"node {first} draining" in page.inner_text("#page"), page)  # the generation's sentence
    shot(page, "placement-after-drain")


def test_a_tenant_admin_signed_in_with_its_password_sees_only_its_own_tenant(
    browser: Any, base: str, farm: Any
) -> None:
    page = sign_in(browser, base, user="1001@acme.test", password="acme-admin-pw")
    assert page.url.endswith("/console/tenants/acme.test/users")
    loaded(page)
    assert page.locator("tr[data-key='1002']").count() == 1
    html = page.content()
    assert "beta.test" not in html and "Zed" not in html and "2001" not in html
    shot(page, "tenant-users")

    for slug in (
        "numbers",
        "conferences",
        "ivrs",
        "gateways",
        "prompts",
        "voicemail",
        "recordings",
        "calls",
        "registrations",
        "cdrs",
        "import",
        "billing",
        "ledger",
        "rated",
    ):
        loaded(page, f"{base}/console/tenants/acme.test/{slug}")
        assert "beta.test" not in page.content()
        shot(page, f"tenant-{slug}")

    # Another tenant's pages, the farm's pages and another tenant's API answer alike: not found.
    for path in (
        "/console/tenants/beta.test/users",
        "/console/nodes",
        "/console/placement",
        "/console/tenants/nope.test/users",
    ):
        reply = page.goto(f"{base}{path}")
        assert reply.status == 404, path
        assert "beta.test" not in page.content()
    loaded(page, f"{base}/console/tenants/acme.test/users")
    assert api_from_page(page, "GET", "/api/v1/tenants/beta.test/users")["status"] == 404
    assert api_from_page(page, "DELETE", "/api/v1/tenants/beta.test/users/2001")["status"] == 404
    assert api_from_page(page, "GET", "/api/v1/nodes")["status"] == 404
    theirs = api_from_page(page, "GET", "/api/v1/placement")["body"]
    assert [t["tenant"] for t in theirs["tenants"]] == ["acme.test"]
    assert farm.get("/api/v1/tenants/beta.test/users/2001").status_code == 200

    # A user who is no longer a console admin is signed out at its next request.
    farm.patch("/api/v1/tenants/acme.test/users/1001", json={"console_admin": False})
    assert api_from_page(page, "GET", "/api/v1/tenants/acme.test/users")["status"] == 401


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(
    browser: Any, base: str, farm: Any, farm_token: str
) -> None:
    page = loaded(sign_in(browser, base, token=farm_token), f"{base}/console/tenants/acme.test/users")
    refused = api_from_page(page, "DELETE", "/api/v1/tenants/acme.test/users/1002", csrf=False)
    assert refused["status"] == 403 and "X-CSRF-Token" in refused["body"]["error"]
    assert farm.get("/api/v1/tenants/acme.test/users/1002").status_code == 200
    # The same request with the session's token goes through: the cookie alone is not enough.
    assert api_from_page(page, "DELETE", "/api/v1/tenants/acme.test/users/1002")["status"] == 200
    assert farm.get("/api/v1/tenants/acme.test/users/1002").status_code == 404


def test_signing_out_ends_the_session_and_a_revoked_token_ends_its_sessions(
    browser: Any, base: str, farm: Any, db: Any
) -> None:
    page = loaded(sign_in(browser, base, token=farm.token), f"{base}/console/nodes")
    page.click("text=Sign out")
    page.wait_for_url("**/console/login")
    assert not [c for c in page.context.cookies() if c["name"] == "fsfarm_session"]

    token, stored = provisioning.create_token(db, "tenant-admin", "acme.test", label="acme console")
    page = loaded(sign_in(browser, base, token=token))
    assert page.url.endswith("/console/tenants/acme.test/users")
    stolen = [c for c in page.context.cookies() if c["name"] == "fsfarm_session"]
    assert stolen and stolen[0]["httpOnly"] and stolen[0]["sameSite"] == "Strict"
    assert farm.delete(f"/api/v1/tokens/{stored.id}").status_code == 200
    assert api_from_page(page, "GET", "/api/v1/tenants/acme.test/users")["status"] == 401


def test_the_console_loads_only_its_own_origin_and_reports_its_size(browser: Any, base: str, farm: Any) -> None:
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # e.g. a CSP refusal
    sizes: dict[str, int] = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())) if r.ok else None)
    page.goto(f"{base}/console/login")
    assert all(url.startswith(base) for url in sizes), sizes  # no CDN, nothing from another site
    page.fill("#login-user input[name=user]", "1001@acme.test")
    page.fill("#login-user input[name=password]", "acme-admin-pw")
    page.click("#login-user button")
    loaded(page)
    timing = page.evaluate("JSON.stringify(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]))")
    assert all(url.startswith(base) for url in sizes), sizes
    assert "frame-ancestors 'none'" in (
        page.evaluate("fetch(location.href).then(r => r.headers.get('content-security-policy'))") or ""
    )
    loaded(page, f"{base}/console/tenants/acme.test/cdrs")
    assert errors == [], errors
    print(f"\nconsole users page: {sum(sizes.values())} bytes in {len(sizes)} responses; paint {timing}")


def _cdr(db: Any, domain: str, n: int, caller: str, destination: str, cause: str) -> None:
    from datetime import UTC, datetime, timedelta
    from uuid import uuid4

    from controller.stores import cdrs, nodes, tenants

    with db.transaction() as conn:
        tenant = tenants.get(conn, domain)
        node_id = nodes.list_all(conn)[0].id
        start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC) + timedelta(minutes=n)
        cdrs.insert(
            conn,
            node_id,
            str(uuid4()),
            call_uuid=str(uuid4()),
            tenant_id=tenant.id,
            direction="inbound",
            caller_number=caller,
            caller_name="",
            destination=destination,
            other_leg_uuid="",
            sip_call_id="",
            started_at=start,
            answered_at=start,
            ended_at=start + timedelta(seconds=30 + n),
            duration=30 + n,
            billsec=30 + n,
            hangup_cause=cause,
            variables={},
        )


def test_a_tenant_admin_filters_its_call_records_and_exports_them_as_csv(
    browser: Any, base: str, farm: Any, db: Any, tmp_path: Any
) -> None:
    _cdr(db, "acme.test", 1, "1001", "1002", "NORMAL_CLEARING")
    _cdr(db, "acme.test", 2, "1002", "1001", "NO_ANSWER")
    _cdr(db, "acme.test", 3, "1001", "+15551230000", "NORMAL_CLEARING")
    _cdr(db, "beta.test", 4, "2001", "1002", "NORMAL_CLEARING")  # another tenant's, dialling the same digits
    page = sign_in(browser, base, user="1001@acme.test", password="acme-admin-pw")
    loaded(page, f"{base}/console/tenants/acme.test/cdrs")
    assert page.inner_text(".count") == "3 of 3"
    page.fill("#cdr-filter", "1002")
    assert page.inner_text(".count") == "2 of 3"
    page.select_option("#cdr-cause", "NORMAL_CLEARING")
    assert page.inner_text(".count") == "1 of 3"
    shot(page, "tenant-cdrs-filtered")
    with page.expect_download() as download:
        page.click("#cdr-csv")
    path = tmp_path / "cdrs.csv"
    download.value.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("started_at,answered_at,ended_at,direction,caller_number")
    assert len(lines) == 2 and '"1001","","1002","31"' in lines[1] and "2001" not in path.read_text()


def test_a_prompt_uploaded_in_the_page_is_listed_and_plays_back(
    browser: Any, base: str, farm: Any, tmp_path: Any
) -> None:
    import wave

    wav = tmp_path / "welcome.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 8000)
    page = sign_in(browser, base, user="1001@acme.test", password="acme-admin-pw")
    loaded(page, f"{base}/console/tenants/acme.test/prompts")
    page.set_input_files("#prompt-file", str(wav))
    page.click("#prompt-upload")
    until(lambda: page.locator("tr[data-key='welcome.wav']").count(), page)
    src = page.get_attribute("tr[data-key='welcome.wav'] audio", "src")
    played = page.evaluate(
        "async (src) => { const r = await fetch(src);"
        " return [r.status, r.headers.get('Content-Type'), (await r.arrayBuffer()).byteLength]; }",
        src,
    )
    assert played[0] == 200 and "wav" in played[1] and played[2] == wav.stat().st_size
    assert farm.get("/api/v1/tenants/beta.test/prompts").json == []
    shot(page, "tenant-prompts-uploaded")


def test_a_fusionpbx_csv_with_a_bad_row_imports_the_good_rows_and_reports_the_bad_one(
    browser: Any, base: str, farm: Any, tmp_path: Any
) -> None:
    exported = tmp_path / "v_extensions.csv"
    exported.write_text(
        "extension,password,effective_caller_id_name,voicemail_password,call_timeout,enabled,user_context\n"
        "1101,first-secret-1,Carol,4321,30,true,acme.test\n"
        "11x2,second-secret-2,Dave,4321,30,true,acme.test\n"  # not an extension
        "1103,third-secret-3,Erin,4321,30,true,acme.test\n"
    )
    page = sign_in(browser, base, user="1001@acme.test", password="acme-admin-pw")
    loaded(page, f"{base}/console/tenants/acme.test/import")
    page.set_input_files("#import-file", str(exported))
    page.click("#import-go")
    summary = until(lambda: page.locator("#import-summary").count() and page.inner_text("#import-summary"), page)
    assert summary.startswith("2 created, 0 updated, 0 skipped, 1 with errors"), summary
    bad = page.locator("#import-report tr[data-key='3']")
    assert "error" in bad.inner_text() and "extension" in bad.inner_text() and "11x2" in bad.inner_text()
    assert bad.locator("td[data-col='error']").inner_text() not in ("", "—")  # the reason, in words
    assert "user_context" in page.inner_text("#import-ignored")
    shot(page, "tenant-import-report")
    stored = {u["extension"]: u for u in farm.get("/api/v1/tenants/acme.test/users").json}
    assert {"1101", "1103"} <= set(stored) and "11x2" not in stored
    assert stored["1101"]["caller_id_name"] == "Carol" and stored["1101"]["ring_timeout"] == 30
    assert {u["extension"] for u in farm.get("/api/v1/tenants/beta.test/users").json} == {"2001"}  # untouched


def test_a_farm_admin_tops_up_a_tenants_account_and_its_admin_sees_the_balance_but_cannot_add_money(
    browser: Any, base: str, farm: Any, farm_token: str
) -> None:
    page = loaded(sign_in(browser, base, token=farm_token), f"{base}/console/tenants/acme.test/billing")
    page.click("#create")
    page.fill("#f-currency", "EUR")
    page.fill("#f-low_balance", "5")
    page.click("#dialog-form button[type=submit]")
    until(lambda: page.locator("tr[data-key]").count() == 1, page)
    answers = iter(["50.00", "invoice-1"])  # the Top up button asks for the amount, then the payment's id
    page.on("dialog", lambda d: d.accept(next(answers)))
    page.locator("tr[data-key] button", has_text="Top up").click()
    until(lambda: "50" in page.inner_text("td[data-col='balance']"), page)
    assert farm.get("/api/v1/billing/tenants/acme.test/accounts/tenant").json["balance"].startswith("50")
    page.context.close()

    admin = loaded(sign_in(browser, base, user="1001@acme.test", password="acme-admin-pw"))
    loaded(admin, f"{base}/console/tenants/acme.test/billing")
    assert admin.inner_text("td[data-col='balance']").startswith("50")
    shot(admin, "tenant-billing")
    more = iter(["1000", "free-money"])
    admin.on("dialog", lambda d: d.accept(next(more)))
    admin.locator("tr[data-key] button", has_text="Top up").click()
    refused = until(lambda: admin.locator(".toast.error").count() and admin.inner_text(".toast.error"), admin)
    assert "only a farm admin" in refused
    assert farm.get("/api/v1/billing/tenants/acme.test/accounts/tenant").json["balance"].startswith("50")
    admin.locator("tr[data-key] button", has_text="Ledger").click()
    loaded(admin)
    assert "invoice-1" in admin.inner_text("#page") and "free-money" not in admin.inner_text("#page")
    assert admin.goto(f"{base}/console/tenants/beta.test/billing").status == 404
