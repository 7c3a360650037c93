"""Debian's real Chromium driven by Playwright, for the web console's tests (unit tier and freeswitch tier).

Screenshots go to ``$FSFARM_ARTIFACTS/console`` (default ``tests/artifacts/console``), one PNG per page,
so a person can look at what the console showed; ``docs/console.md`` shows copies of them.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("FSFARM_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("FSFARM_ARTIFACTS", Path(__file__).parent / "artifacts")) / "console"
# As root Chromium needs --no-sandbox; the rest keeps it off the network this machine does not have.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip without Chromium and Playwright, except under CI=true, where that is a failure."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing = "playwright (pip)"
    else:
        missing = "" if shutil.which(CHROMIUM) or Path(CHROMIUM).exists() else f"{CHROMIUM} (Debian's chromium)"
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing} is missing but CI=true: run .ci/install --test")
    pytest.skip(f"no {missing}")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed afterwards."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The WSGI app on a free loopback port, in a thread; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def sign_in(browser: Any, base: str, *, token: str = "", user: str = "", password: str = "") -> Any:
    """A new browser context signed in to the console (with a token, or a user and password); its page."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/console/login")
    if token:
        page.fill("#login-token input[name=token]", token)
        page.click("#login-token button")
    else:
        page.fill("#login-user input[name=user]", user)
        page.fill("#login-user input[name=password]", password)
        page.click("#login-user button")
    page.wait_for_load_state("load")
    return page


def loaded(page: Any, url: str | None = None) -> Any:
    """Go to ``url`` (if given) and wait until the page's data has been drawn once."""
    if url is not None:
        page.goto(url)
    page.wait_for_selector("#page[data-loaded]", timeout=15_000)
    return page


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under the artefacts folder; its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def api_from_page(page: Any, method: str, path: str, body: Any = None, csrf: bool = True) -> dict[str, Any]:
    """Call the API from inside the page with its session cookie, as the console's own script does."""
    return dict(
        page.evaluate(
            """async ([method, path, body, csrf]) => {
                const headers = {"Content-Type": "application/json"};
                if (csrf) headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]').content;
                const r = await fetch(path, {method, headers, credentials: "same-origin",
                                             body: body === null ? undefined : JSON.stringify(body)});
                return {status: r.status, body: await r.json().catch(() => null)};
            }""",
            [method, path, body, csrf],
        )
    )


def until(check: Callable[[], Any], page: Any, timeout: float = 15.0) -> Any:
    """Poll ``check`` (with the page's clock) until it is truthy; fail after ``timeout`` seconds."""
    waited = 0.0
    while waited < timeout:
        found = check()
        if found:
            return found
        page.wait_for_timeout(200)
        waited += 0.2
    raise AssertionError(f"not seen within {timeout} s")
