"""Bringing a process up: its settings (read once), the farm database (the configured DSN, or the
embedded PostgreSQL) and the small files ``fsfarm up`` keeps in the state dir.

Every command opens the database through ``open_database``; the wiring (``controller.app``) and
every room's CLI take their settings from ``settings()``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from controller import secrets
from controller.config import Settings
from controller.database import Database
from controller.database.embedded import EmbeddedPostgres, borrow
from controller.stores import rows
from sql.migrate import migrate

log = logging.getLogger(__name__)

_current: Settings | None = None


def load_settings() -> Settings:
    """Read the environment now and keep what it says for this process (the CLI does it once per command)."""
    global _current
    _current = Settings.from_env()
    return _current


def settings() -> Settings:
    """The settings this process read (read now if nothing did yet)."""
    return _current if _current is not None else load_settings()


def private_state_dir(settings: Settings) -> Path:
    """The state dir, created if needed and kept to its owner (0700; 0710 when the embedded server's
    user traverses it through its group): the database password, tokens and spools live there."""
    path = Path(settings.state_dir)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777
    wanted = 0o700 | (mode & 0o010 if os.geteuid() == 0 else 0)  # as root the server's user may traverse it
    if mode != wanted:
        path.chmod(wanted)
    return path


def embedded(settings: Settings) -> EmbeddedPostgres:
    """The embedded server's handle (whether or not it is running)."""
    return EmbeddedPostgres(settings.state_dir / "postgres", port=settings.embedded_pg_port)


def conninfo(settings: Settings) -> str:
    """The DSN to use: FSFARM_DATABASE_URL, else the embedded server (started if needed, and then stopped at exit)."""
    private_state_dir(settings)
    if settings.database_url:
        return settings.database_url
    server = embedded(settings)
    if not server.running():
        log.info("starting the embedded PostgreSQL in %s", server.datadir)
        borrow(server)
    return server.conninfo


def open_database(
    settings: Settings, *, apply_migrations: bool = True, dsn: str | None = None, max_size: int = 10
) -> Database:
    """A pool on the farm database (``dsn``, else ``conninfo(settings)``), migrated to the current schema, with
    this process's secret key loaded; migrating also seals secrets still stored in clear (and checks the key)."""
    dsn = dsn or conninfo(settings)
    secrets.use(secrets.load_key(settings.secret_key, private_state_dir(settings)))
    if apply_migrations:
        migrate(dsn)
    db = Database(dsn, max_size=max_size)
    if apply_migrations:
        try:
            with db.transaction() as conn:
                sealed = rows.seal_stored(conn)
        except BaseException:
            db.close()
            raise
        if sealed:
            log.info("sealed %d secrets that were stored in clear", sealed)
    return db


def record_listen(settings: Settings, host: str, port: int) -> Path:
    """Write ``<state dir>/controller.json``: where ``fsfarm up`` listens, for bootstrap and ``fsfarm status``."""
    path = private_state_dir(settings) / "controller.json"
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    path.write_text(
        json.dumps(
            {
                "host": host,
                "port": port,
                "url": f"http://{local}:{port}",
                "controller_address": settings.controller_address,
                "pid": os.getpid(),
            }
        )
        + "\n"
    )
    return path


def recorded_listen(settings: Settings) -> dict[str, object] | None:
    """What ``record_listen`` wrote (host, port, url, controller_address), or None before the first ``fsfarm up``."""
    try:
        found = json.loads((Path(settings.state_dir) / "controller.json").read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
