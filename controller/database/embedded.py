"""A real PostgreSQL server that fsfarm starts by itself when no DSN is configured.

Binaries come from Debian's ``postgresql`` package when present (newest major), else from the
``pgserver`` wheel. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (or an ``fsfarm`` system user created for it).

Every connection authenticates with a password (scram-sha-256): the superuser's is generated once
into ``postgres-password`` beside the data dir (the state dir; mode 0600), and the server listens
on loopback and on a unix socket inside the data dir (0700) only. A cluster an older fsfarm
initialised with ``trust`` is switched over when it starts: the password is set, pg_hba.conf
rewritten and the configuration reloaded.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

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


def _make_reachable(path: Path, user: str) -> None:
    """Let the service user traverse ``path`` (through its group: 0710) and every parent of it (a
    root-owned tmp dir is 0700)."""
    shutil.chown(path, group=pwd.getpwnam(user).pw_gid)
    path.chmod(path.stat().st_mode & 0o700 | 0o010)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


# What pg_hba.conf says once fsfarm manages it: a password for everyone, on the socket and loopback only.
HBA = """# Written by fsfarm: password (scram-sha-256) authentication only, on the unix socket and loopback.
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""
_TRUST = re.compile(r"^\s*(local|host\w*)\s.*\btrust\s*$", re.MULTILINE)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in ``datadir``, listening on loopback ``port`` and a socket in datadir,
    with the superuser's password in ``password_file`` (default: ``postgres-password`` beside datadir)."""

    datadir: Path
    port: int = 5432
    host: str = "127.0.0.1"
    dbname: str = "fsfarm"
    settings: tuple[str, ...] = ()  # extra postgresql.conf lines, e.g. for logical replication
    bindir: Path | None = None  # default: find_bindir()
    password_file: Path | None = None

    def __post_init__(self) -> None:
        self.datadir = Path(self.datadir).absolute()
        self.password_file = Path(self.password_file or self.datadir.parent / "postgres-password").absolute()
        self._password: str | None = None
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
    def password(self) -> str:
        """The superuser's password, generated into ``password_file`` (mode 0600) the first time."""
        if self._password is None:
            path = self.password_file
            assert path is not None
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:  # another process made it first: use theirs
                    pass
                else:
                    with os.fdopen(fd, "w") as f:
                        f.write(secrets.token_urlsafe(32) + "\n")
            path.chmod(0o600)
            self._password = path.read_text().strip()
        return self._password

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} user=postgres password={self.password} dbname={self.dbname}"

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
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                raise RuntimeError(
                    f"the embedded PostgreSQL in {self.datadir} refuses the password in {self.password_file}"
                ) from exc
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Create the cluster if needed, start it, and create the fsfarm database; idempotent."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.user:
            _make_reachable(self.datadir.parent, self.user)
            shutil.chown(self.datadir, self.user, self.user)
        self.datadir.chmod(0o700)
        if not self.initialised():
            log.info("creating a PostgreSQL cluster in %s", self.datadir)
            self._initdb()
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
        self._require_passwords(admin)
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.dbname}"')

    def _initdb(self) -> None:
        """initdb with password authentication; the password goes through a file only the service user reads."""
        pwfile = self.datadir.parent / f".postgres-pwfile-{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        try:
            if self.user:
                shutil.chown(pwfile, self.user, self.user)
            self._run(
                "initdb",
                "-D",
                str(self.datadir),
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _require_passwords(self, admin: str) -> None:
        """Switch a cluster an older fsfarm made with ``trust`` to passwords: set the superuser's, rewrite
        pg_hba.conf, reload. (Under trust the password in ``admin`` is ignored, so the connection works.)"""
        hba = self.datadir / "pg_hba.conf"
        if not _TRUST.search(hba.read_text()):
            return
        log.warning("the embedded PostgreSQL in %s trusted every local user: switching it to passwords", self.datadir)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(self.password)))
            hba.write_text(HBA)  # keeps its owner (the service user) and mode
            conn.execute("SELECT pg_reload_conf()")

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
