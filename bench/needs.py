"""What a benchmark needs on this machine: a missing piece is one line on stderr and exit 2, never a traceback.

Each bench calls ``check`` first thing in ``main``; ``.ci/install --bench`` installs everything checked here.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path


def missing(commands: Sequence[str] = (), modules: Sequence[str] = (), postgres: bool = False) -> list[str]:
    """The programs (on PATH), Python modules and PostgreSQL binaries that are not here."""
    gone = [f"`{c}`" for c in commands if shutil.which(c) is None]
    gone += [f"the Python module {m}" for m in modules if importlib.util.find_spec(m) is None]
    if postgres:
        from controller.database.embedded import debian_bindir, pgserver_bindir

        if debian_bindir() is None and pgserver_bindir() is None:
            gone.append("PostgreSQL's binaries (initdb, pg_ctl)")
    return gone


def check(commands: Sequence[str] = (), modules: Sequence[str] = (), postgres: bool = False) -> None:
    """Exit 2 with one line naming what is missing and how to get it."""
    gone = missing(commands, modules, postgres)
    if gone:
        name = Path(sys.argv[0]).name
        print(f"{name}: needs {', '.join(gone)}: run .ci/install --bench", file=sys.stderr)
        sys.exit(2)
