"""FreeSWITCH's own state in PostgreSQL, shared by the nodes: what lets a spare stand in for a dead node.

Every node's sofia profile keeps registrations, nonces, dialogs and subscriptions in one shared
schema (``sofia``), so a node that never saw a phone's REGISTER still finds the phone (sofia's
contact lookup filters by user and domain only). Each node keeps its core database in a schema of
its own (``node_<id>``), because ``sofia recover`` takes every tracked call of the profile name it
is given from the core database it uses: with one shared core schema a node would adopt the calls
of every other live node. At a failover the controller hands the dead node's tracked calls
(``recovery`` rows, written by ``track-calls``) and its registrations to the node that adopts its
address; FreeSWITCH creates its tables itself (mod_pgsql), the controller creates the role, the
database and the schemas.

One database per site (``<farm db>_switch`` on the farm's server, owned by a role of the same
name whose password every controller derives from the farm key), unless
``FSFARM_SWITCH_DATABASE_URL`` names another; ``FSFARM_SWITCH_DATABASE_URL=local`` keeps each
node's state on its own disk (no registration or call survives the node). It is not replicated
between sites: it describes calls and phones on this site's nodes only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from controller import secrets
from controller.errors import Unavailable

log = logging.getLogger(__name__)

SOFIA_SCHEMA = "sofia"
LOCAL = "local"  # FSFARM_SWITCH_DATABASE_URL value: every node keeps its own SQLite files
# sofia tables whose rows a node expires or cleans by its own hostname (switchname).
HOSTNAME_TABLES = ("sip_registrations", "sip_subscriptions", "sip_presence", "sip_dialogs", "sip_authentication")


def adopted_profile(profile: str, dead_name: str) -> str:
    """The SIP profile an heir answers at a dead node's address with (its calls are recovered on it)."""
    return f"{profile}-{re.sub(r'[^A-Za-z0-9_-]', '_', dead_name)}"


def node_schema(node_id: UUID) -> str:
    """The schema one node's core database lives in."""
    return f"node_{node_id.hex}"


@dataclass(frozen=True)
class Handover:
    """What a dead node's heir was given: the tracked call legs (their UUIDs) and registrations."""

    legs: tuple[str, ...]
    registrations: int


@dataclass(frozen=True)
class SwitchDatabase:
    """Where the nodes keep FreeSWITCH's state; ``conninfo`` is the libpq DSN they (and the controller) use."""

    conninfo: str = field(repr=False)  # holds a password: never in a log line
    derived_from: str | None = field(default=None, repr=False)  # the farm DSN it was derived from (then created)

    @classmethod
    def for_farm(cls, farm_conninfo: str, configured: str | None) -> SwitchDatabase | None:
        """The farm's switch database: ``configured`` (FSFARM_SWITCH_DATABASE_URL), else derived; None if local."""
        if configured and configured.strip().lower() == LOCAL:
            return None
        if configured:
            return cls(make_conninfo(configured))
        farm = conninfo_to_dict(farm_conninfo)
        name = f"{farm.get('dbname', 'fsfarm')}_switch"[:63]
        password = secrets.active().derive(f"switch-database:{name}")
        # TCP even when the farm is reached over a socket: nodes on other machines use the same DSN.
        host = str(farm.get("host") or "127.0.0.1")
        host = "127.0.0.1" if host.startswith("/") else host
        dsn = make_conninfo(farm_conninfo, host=host, dbname=name, user=name, password=password, connect_timeout=3)
        return cls(dsn, derived_from=farm_conninfo)

    @property
    def dbname(self) -> str:
        return str(conninfo_to_dict(self.conninfo).get("dbname", ""))

    def _pgsql(self, schema: str) -> str:
        # mod_pgsql hands everything after "pgsql://" to PQconnectdb.
        params = conninfo_to_dict(self.conninfo)
        params.pop("options", None)
        return "pgsql://" + make_conninfo(**params, options=f"-c search_path={schema}")

    def sofia_dsn(self) -> str:
        """The ``odbc-dsn`` of every node's sofia profile: the shared schema."""
        return self._pgsql(SOFIA_SCHEMA)

    def core_dsn(self, node_id: UUID) -> str:
        """The ``core-db-dsn`` of one node: its own schema."""
        return self._pgsql(node_schema(node_id))

    def ensure(self, node_ids: Iterable[UUID]) -> None:
        """Create what the nodes need before they start: role and database (when derived), the schemas."""
        if self.derived_from is not None:
            self._create_database()
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                for schema in [SOFIA_SCHEMA, *(node_schema(n) for n in node_ids)]:
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        except psycopg.Error as exc:
            raise Unavailable(
                f"the nodes' shared database {self.dbname!r} cannot be prepared: {exc}".strip(),
                {"database": self.dbname},
            ) from None

    def _create_database(self) -> None:
        assert self.derived_from is not None
        params = conninfo_to_dict(self.conninfo)
        name, password = str(params["dbname"]), str(params["password"])
        try:
            with psycopg.connect(self.derived_from, autocommit=True) as conn:
                role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
                verb = "ALTER" if role else "CREATE"
                conn.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
                )
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name))
                    )
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass  # another controller created it at the same moment
        except psycopg.Error as exc:
            raise Unavailable(
                f"cannot create the nodes' shared database {name!r} (the farm's database user needs CREATEROLE "
                f"and CREATEDB, or set FSFARM_SWITCH_DATABASE_URL): {str(exc).strip()}",
                {"database": name},
            ) from None

    def drop(self) -> None:
        """Remove the derived database and role (a test farm's teardown)."""
        if self.derived_from is None:
            return
        name = self.dbname
        with psycopg.connect(self.derived_from, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def tracked_legs(self, node_id: UUID) -> int:
        """Answered call legs the node's sofia tracks for recovery (0 if its core tables do not exist yet)."""
        with psycopg.connect(self.conninfo) as conn:
            return _count(conn, node_schema(node_id), "recovery")

    def hand_over(
        self, dead_id: UUID, dead_switchname: str, heir_id: UUID | None, heir_switchname: str, profile: str = ""
    ) -> Handover:
        """Give the dead node's tracked calls and registrations to its heir, in one transaction.

        The recovery rows move into the heir's core schema, relabelled for ``profile`` (the profile
        the heir answers at the dead node's address with: ``sofia profile <it> recover`` then finds
        them, and their runtime is not the heir's); the registrations, subscriptions and dialogs are
        relabelled with the heir's hostname, so the heir expires them and the dead node, when it
        starts again, does not delete them. Without an heir for the calls (``heir_id`` None: the
        address stays) only the registrations move.
        """
        legs: tuple[str, ...] = ()
        registrations = 0
        with psycopg.connect(self.conninfo) as conn:
            dead_schema = node_schema(dead_id)
            if heir_id is not None and _exists(conn, dead_schema, "recovery"):
                heir_schema = node_schema(heir_id)
                if _exists(conn, heir_schema, "recovery"):
                    # recovery_profile_name inside the channel's XML is what sofia attaches the leg to.
                    moved = conn.execute(
                        sql.SQL(
                            "WITH gone AS (DELETE FROM {dead}.recovery RETURNING *) "
                            "INSERT INTO {heir}.recovery (runtime_uuid, technology, profile_name, hostname, uuid, "
                            "metadata) SELECT runtime_uuid, technology, %(profile)s::text, hostname, uuid, "
                            "regexp_replace(metadata, '<recovery_profile_name>[^<]*</recovery_profile_name>', "
                            "'<recovery_profile_name>' || %(profile)s::text || '</recovery_profile_name>') "
                            "FROM gone RETURNING uuid"
                        ).format(dead=sql.Identifier(dead_schema), heir=sql.Identifier(heir_schema)),
                        {"profile": profile},
                    )
                    legs = tuple(str(r[0]) for r in moved.fetchall())
            for table in HOSTNAME_TABLES:
                if not _exists(conn, SOFIA_SCHEMA, table):
                    continue
                done = conn.execute(
                    sql.SQL("UPDATE {}.{} SET hostname = %s WHERE hostname = %s").format(
                        sql.Identifier(SOFIA_SCHEMA), sql.Identifier(table)
                    ),
                    [heir_switchname, dead_switchname],
                )
                if table == "sip_registrations":
                    registrations = done.rowcount
        return Handover(legs, registrations)

    def registrations(self, user: str, domain: str) -> list[dict[str, Any]]:
        """The shared registrations of ``user@domain`` (contact, hostname of the node that expires it)."""
        with psycopg.connect(self.conninfo, row_factory=dict_row) as conn:
            if not _exists(conn, SOFIA_SCHEMA, "sip_registrations"):
                return []
            return conn.execute(
                "SELECT contact, hostname, expires, network_ip, network_port FROM sofia.sip_registrations "
                "WHERE sip_user = %s AND sip_host = %s",
                [user, domain],
            ).fetchall()


def _exists(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found", [f'"{schema}"."{table}"']).fetchone()
    return bool(row and (row["found"] if isinstance(row, dict) else row[0]))


def _count(conn: psycopg.Connection[Any], schema: str, table: str) -> int:
    if not _exists(conn, schema, table):
        return 0
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
    found = row.fetchone()
    return int(found[0]) if found else 0
