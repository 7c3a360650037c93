"""Shared fixtures: one real PostgreSQL for the whole test session, a fresh database per test.

The server is the embedded one fsfarm itself starts (Debian's binaries or pgserver's), on a
free loopback port in a temporary directory, stopped when the session ends.
"""

from __future__ import annotations

import base64
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from testsupport import AuthedClient, free_port

from controller import secrets
from controller.database import Database
from controller.database.embedded import EmbeddedPostgres
from sql.migrate import migrate

# One secret key for the session: the stores in this process and every fsfarm subprocess (inheriting it) agree.
# setdefault: this module is imported twice (as conftest and as tests.conftest), the key must not change.
os.environ.setdefault("FSFARM_SECRET_KEY", base64.b64encode(os.urandom(secrets.KEY_BYTES)).decode())


@pytest.fixture(autouse=True)
def secret_key() -> bytes:
    """The session's key, made this process's key again before every test (a test may load another)."""
    key = base64.b64decode(os.environ["FSFARM_SECRET_KEY"])
    secrets.use(key)
    return key


# A test server never outlives an OS crash: flushing to disk is not what any test checks (a killed
# PostgreSQL still finds every commit in the page cache), and it was a third of each test's set-up.
TEST_PG_SETTINGS = ("fsync = off", "full_page_writes = off")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    tmp = Path(tempfile.mkdtemp(prefix="fsfarm-test-pg-"))
    server = EmbeddedPostgres(tmp / "data", port=free_port(), dbname="postgres", settings=TEST_PG_SETTINGS)
    server.start()
    yield server
    server.stop()


_TEMPLATES: dict[str, str] = {}  # server conninfo -> its migrated template database


def migrated_template(server: EmbeddedPostgres) -> str:
    """A database on ``server`` migrated once per session, that every test's database is copied from.

    Per server, not a session fixture: a module may bring its own server (tests/xmlcurl/test_outage.py).
    """
    if server.conninfo not in _TEMPLATES:
        name = f"template_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        migrate(server.conninfo.replace("dbname=postgres", f"dbname={name}"))
        _TEMPLATES[server.conninfo] = name
    return _TEMPLATES[server.conninfo]


@pytest.fixture
def dsn(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A new, migrated database for one test (a copy of the session's template), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    template = migrated_template(pg_server)
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    conninfo = pg_server.conninfo.replace("dbname=postgres", f"dbname={name}")
    yield conninfo
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        # The nodes' shared FreeSWITCH database a bootstrap or a failover derived from it, if any.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}_switch" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{name}_switch"')


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    database = Database(dsn, max_size=4)
    yield database
    database.close()


@pytest.fixture
def app(db: Database):  # type: ignore[no-untyped-def]
    from controller.app.web import create_app
    from controller.config import Settings

    settings = Settings(
        database_url=None,
        state_dir=Path(tempfile.mkdtemp()),
        embedded_pg_port=0,
        xmlcurl_user="freeswitch",
        xmlcurl_password="s3cret",
        controller_address="127.0.0.1",
    )
    return create_app(db, settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def farm_token(db: Database) -> str:
    from controller import provisioning

    token, _ = provisioning.create_token(db, "farm-admin", label="tests")
    return token


@pytest.fixture
def admin(client, farm_token):  # type: ignore[no-untyped-def]
    """A test client that sends the farm admin's token."""
    return AuthedClient(client, farm_token)
