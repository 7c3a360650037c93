"""A real PostgreSQL server that fsfarm starts by itself when no DSN is configured.

Binaries come from Debian's ``postgresql`` package when present (newest major), else from the
``pgserver`` wheel. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (or an ``fsfarm`` system user created for it).
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)


def debian_bindir() -> Path | None:
    """The newest Debian PostgreSQL's bin directory, if one is installed."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(debian[-1]) if debian and Path(debian[-1], "initdb").exists() else None


def pgserver_bindir() -> Path | None:
    """The PostgreSQL 16 that the ``pgserver`` wheel bundles, if installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.origin:
        return None
    bundled = Path(spec.origin).parent / "pginstall" / "bin"
    return bundled if (bundled / "initdb").exists() else None


def find_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres: Debian's newest, else pgserver's bundled one."""
    found = debian_bindir() or pgserver_bindir()
    if found is None:
        raise RuntimeError("no PostgreSQL binaries: install Debian's postgresql or `pip install pgserver`")
    return found


def _service_user() -> str | None:
    """The system user that owns the cluster when we are root; None when we can run it ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "fsfarm"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "fsfarm"],
        check=True,
        capture_output=True,
    )
    return "fsfarm"


def _make_reachable(path: Path) -> None:
    """Let the service user traverse every parent of ``path`` (a root-owned tmp dir is 0700)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in ``datadir``, listening on loopback ``port`` and a socket in datadir."""

    datadir: Path
    port: int = 5432
    host: str = "127.0.0.1"
    dbname: str = "fsfarm"
    settings: tuple[str, ...] = ()  # extra postgresql.conf lines, e.g. for logical replication
    bindir: Path | None = None  # default: find_bindir()

    def __post_init__(self) -> None:
        self.datadir = Path(self.datadir).absolute()
        self.user = _service_user()
        self.bindir = self._usable(Path(self.bindir) if self.bindir else find_bindir())

    def _usable(self, bindir: Path) -> Path:
        """As root, binaries under a private home (pgserver's wheel) are copied where the service user can run them."""
        # (/root is 0700: the postgres user could not even reach them there.)
        if not self.user or str(bindir).startswith("/usr/"):
            return bindir
        install = bindir.parent  # .../site-packages/pgserver/pginstall
        copy = self.datadir.parent / f"pginstall-{install.stat().st_ino}"
        # The wheel's binaries find their libraries at $ORIGIN/../../../pgserver.libs: keep that shape.
        target = copy / install.parent.name / install.name
        libs = install.parent.parent / f"{install.parent.name}.libs"
        if not (target / "bin" / "initdb").exists():
            shutil.copytree(install, target, symlinks=True, dirs_exist_ok=True)
            if libs.is_dir():
                shutil.copytree(libs, copy / libs.name, symlinks=True, dirs_exist_ok=True)
            for path in [copy, *copy.rglob("*")]:
                path.chmod(path.stat().st_mode | (0o055 if path.is_dir() else 0o044))
        return target / "bin"

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={self.dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd="/")

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        try:
            with psycopg.connect(self.conninfo.replace(f"dbname={self.dbname}", "dbname=postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Create the cluster if needed, start it, and create the fsfarm database; idempotent."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.user:
            _make_reachable(self.datadir.parent)
            shutil.chown(self.datadir, self.user, self.user)
        self.datadir.chmod(0o700)
        if not self.initialised():
            log.info("creating a PostgreSQL cluster in %s", self.datadir)
            self._run(
                "initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-instructions"
            )
        conf = self.datadir / "postgresql.conf"
        if self.settings and "# fsfarm settings" not in conf.read_text():
            conf.write_text(conf.read_text() + "\n# fsfarm settings\n" + "\n".join(self.settings) + "\n")
        if not self.running():
            opts = f"-p {self.port} -c listen_addresses={self.host} -k {self.datadir}"
            self._run(
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-o",
                opts,
                "-l",
                str(self.datadir / "server.log"),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            )
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not accept connections; see {self.datadir}/server.log")
            time.sleep(0.1)
        admin = self.conninfo.replace(f"dbname={self.dbname}", "dbname=postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.dbname}"')

    def stop(self) -> None:
        if self.initialised() and (self.datadir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")


def borrow(server: EmbeddedPostgres) -> None:
    """Start ``server`` for this process if it is not running, and stop it again when the process exits.

    A CLI command run while the controller is stopped leaves no PostgreSQL behind; one run beside
    ``fsfarm up`` uses that server and leaves it alone.
    """
    if server.running():
        return
    server.start()
    atexit.register(server.stop)
