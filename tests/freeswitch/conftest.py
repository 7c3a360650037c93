"""The ``freeswitch`` tier: real FreeSWITCH nodes configured only by fsfarm, baresip phones, Kamailio.

Without a FreeSWITCH binary or baresip the tier is skipped, except under ``CI=true`` when the test
bundle (``../shared/freeswitch``) is there: then a missing binary is a failure, never a silent skip.
Each module gets its own database and ``fsfarm up`` (module-scoped fixtures), so FreeSWITCH and the
phones started in one module are shared by its tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from farm_harness import SHARED_BUNDLE, Controller, freeswitch_binary, stop_everything

from controller.database.embedded import EmbeddedPostgres


def _require(what: str, present: bool, hint: str) -> None:
    if present:
        return
    if os.environ.get("CI") == "true" and SHARED_BUNDLE.exists():
        pytest.fail(f"{what} is missing but CI=true and {SHARED_BUNDLE} exists: run .ci/install --test ({hint})")
    pytest.skip(f"no {what} ({hint})")


@pytest.fixture(scope="module", autouse=True)
def _real_parts() -> Iterator[None]:
    _require("FreeSWITCH binary", freeswitch_binary() is not None, "FREESWITCH_BIN or /opt/fsfarm-freeswitch")
    _require("baresip", shutil.which("baresip") is not None, "Debian baresip-core")
    _require("kamailio", shutil.which("kamailio") is not None, "Debian kamailio")
    yield
    stop_everything()  # set up first, torn down last: whatever the module's fixtures left running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.freeswitch)


@pytest.fixture(scope="module")
def farm_dsn(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A new, empty database for one module; ``fsfarm up`` migrates it as it would a fresh install."""
    name = f"fs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.conninfo.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        # The nodes' shared FreeSWITCH database `fsfarm up` derived from this one (controller.database.switch).
        conn.execute(f'DROP DATABASE IF EXISTS "{name}_switch" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{name}_switch"')


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"fsfarm-fs-{os.getpid()}-"))
    yield path
    if os.environ.get("FSFARM_KEEP_TEST_DIRS") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path) -> Iterator[Controller]:
    """``fsfarm up`` for one module (its log: ``<workdir>/controller.log``)."""
    ctl = Controller(farm_dsn, workdir).start()
    yield ctl
    ctl.stop()
