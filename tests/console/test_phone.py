"""The web phone's page and its library as the controller serves them (calls: tests/freeswitch/test_fs_webrtc.py)."""

from __future__ import annotations

from typing import Any


def test_the_phone_page_needs_no_sign_in_and_may_open_a_sip_websocket(client: Any) -> None:
    page = client.get("/console/phone?ws=ws://127.0.0.1:8080&user=1004@acme.test")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="ws://127.0.0.1:8080"' in html and 'value="1004@acme.test"' in html
    assert 'id="phone-password"' in html and "1004@acme.test" not in page.headers.get("Set-Cookie", "")
    # Only this page may connect to another origin's WebSocket; the rest of the console stays 'self'.
    assert "connect-src 'self' ws: wss:" in page.headers["Content-Security-Policy"]
    assert "connect-src" not in client.get("/console/login").headers["Content-Security-Policy"]


def test_the_phone_page_escapes_what_the_link_carries(client: Any) -> None:
    html = client.get('/console/phone?user="><script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html


def test_sip_js_is_served_as_javascript_modules_and_nothing_else_of_node_modules(client: Any) -> None:
    index = client.get("/console/vendor/sip.js/index.js")
    assert index.status_code == 200 and index.mimetype == "text/javascript"
    assert "export" in index.get_data(as_text=True)
    assert client.get("/console/vendor/sip.js/api/user-agent.js").status_code == 200
    for path in ("sip.js/../package.json", "sip.js/..%2f..%2fpackage.json", "sip.js/index.d.ts", "nope/index.js"):
        assert client.get(f"/console/vendor/{path}").status_code == 404, path
