"""``fsfarm status``: what is wrong with the farm and what to do, one sentence each."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from controller import runtime, status
from controller.config import Settings, describe


def _ask_controller(url: str, settings: Settings) -> tuple[dict[str, Any] | None, str, str]:
    """The running controller's own ``GET /api/v1/status``, or None and why: nothing answers, or it refused."""
    token_path = settings.state_dir / "admin-token"
    try:
        token = token_path.read_text().strip()
    except OSError:
        token = ""
    # urllib, not requests: requests is only a test dependency, and every CLI command imports this module.
    request = urllib.request.Request(f"{url}/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read()), "", ""
    except urllib.error.HTTPError as exc:
        return None, "", f"{url} answered {exc.code}: is {token_path} this farm's admin token?"
    except (urllib.error.URLError, OSError, ValueError):
        return None, f"no answer at {url}", ""


@click.command("status")
@click.option("--url", default=None, help="The controller's URL (default: where `fsfarm up` last listened).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_command(url: str | None, as_json: bool) -> None:
    """What is wrong with the farm and what to do.

    One sentence per thing wrong; "All is well" when nothing is.

    Asks the running controller (it alone knows its xml_curl snapshot, CDR spools and Kamailio sync);
    when it does not answer, reads the database and says that the controller is not running."""
    settings = runtime.settings()
    recorded = runtime.recorded_listen(settings) or {}
    base = (url or str(recorded.get("url") or "http://127.0.0.1:8080")).rstrip("/")
    answer, not_running, refused = _ask_controller(base, settings)
    if answer is None:
        db = runtime.open_database(settings)
        try:
            with db.transaction() as conn:
                reading = status.read_farm(conn, None, controller=not_running or None, unasked=refused or None)
        finally:
            db.close()
        found = status.findings(reading)
        answer = {
            "healthy": status.healthy(found),
            "findings": [f.public() for f in found],
            "reading": reading.public(),
        }
    if as_json:
        click.echo(json.dumps(answer, indent=2, default=str))
        return
    for finding in answer["findings"]:
        click.echo(f"{finding['level'].upper()}: {finding['text']}")


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def config_command(as_json: bool) -> None:
    """Every environment variable fsfarm reads, with the value in effect.

    Values come from the environment, else the default; passwords show as (set).
    """
    settings = runtime.settings()
    rows = describe(settings)
    if as_json:
        click.echo(json.dumps({name: value for name, value, _ in rows}, indent=2))
        return
    width = max(len(name) for name, _, _ in rows)
    for name, value, help_text in rows:
        mark = "" if name in settings.given or name == "FSFARM_STATE_DIR" else "  (default)"
        click.echo(f"{name:<{width}}  {value or '-'}{mark}  # {help_text}")


commands = [status_command, config_command]
