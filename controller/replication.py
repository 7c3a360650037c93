"""Two-site multi-master for the fsfarm schema: bidirectional logical replication.

``fsfarm db replicate --peer DSN`` makes each site subscribe to the other:

* PostgreSQL 16 and later: native publications and subscriptions with ``origin = none`` (a row
  that came from the peer is not sent back), plus a per-row trigger that fires only while the
  subscription applies changes and keeps the row with the newest ``updated_at``.
* PostgreSQL 15 with pglogical (Debian ``postgresql-15-pglogical``): a pglogical node per site,
  ``forward_origins = '{}'``, and pglogical's own ``last_update_wins`` (commit time) resolution.

Either way a concurrent update of the same row at both sites ends with the newest write at both.
What must not be written at both sites at once is in ``docs/operations.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from controller.errors import Invalid, Unavailable

PUBLICATION = "fsfarm"
# Site-local bookkeeping that must not travel: each site migrates itself.
LOCAL_TABLES = {"schema_migrations"}

LWW_FUNCTION = """
CREATE OR REPLACE FUNCTION fsfarm_last_writer_wins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Fires only for rows the subscription applies: keep ours when it is newer.
    IF NEW.updated_at < OLD.updated_at THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;
"""


@dataclass(frozen=True)
class Site:
    name: str
    dsn: str


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not slug or len(slug) > 40:
        raise Invalid("site names must be 1-40 letters, digits or '_'", {"name": name})
    return slug


def replicated_tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()
    return [r[0] for r in rows if r[0] not in LOCAL_TABLES]


def _version(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]


def _connect(dsn: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise Unavailable("cannot reach a replication site", str(exc).strip()) from exc


def prepare(site: Site) -> None:
    """Make a site publish the fsfarm tables (publication, or pglogical node and set); idempotent."""
    with _connect(site.dsn) as conn:
        if conn.execute("SHOW wal_level").fetchone()[0] != "logical":  # type: ignore[index]
            raise Invalid(f"site {site.name}: wal_level must be 'logical' (see docs/operations.md)")
        if _version(conn) >= 160000:
            _publish_native(conn)
        else:
            _publish_pglogical(conn, site)


def subscribe(local: Site, peer: Site) -> str:
    """Make ``local`` apply the changes made at ``peer`` (idempotent). Returns what it did."""
    with _connect(local.dsn) as conn:
        if _version(conn) >= 160000:
            return _subscribe_native(conn, local, peer)
        return _subscribe_pglogical(conn, local, peer)


def _publish_native(conn: psycopg.Connection[Any]) -> None:
    tables = replicated_tables(conn)
    if not conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [PUBLICATION]).fetchone():
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(PUBLICATION), sql.SQL(", ").join(map(sql.Identifier, tables))
            )
        )
    conn.execute(LWW_FUNCTION)
    for table in tables:
        has_stamp = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = 'updated_at'", [table]
        ).fetchone()
        exists = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'fsfarm_lww' AND tgrelid = %s::regclass", [table]
        ).fetchone()
        if has_stamp and not exists:
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER fsfarm_lww BEFORE UPDATE ON {} FOR EACH ROW "
                    "EXECUTE FUNCTION fsfarm_last_writer_wins()"
                ).format(sql.Identifier(table))
            )
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE REPLICA TRIGGER fsfarm_lww").format(sql.Identifier(table)))


def _subscribe_native(conn: psycopg.Connection[Any], local: Site, peer: Site) -> str:
    name = f"fsfarm_from_{_slug(peer.name)}"
    if conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", [name]).fetchone():
        return f"{local.name} already subscribes to {peer.name}"
    conn.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (origin = none, copy_data = false)").format(
            sql.Identifier(name), sql.Literal(peer.dsn), sql.Identifier(PUBLICATION)
        )
    )
    return f"{local.name} now applies {peer.name}'s changes (native logical replication, origin = none)"


def _publish_pglogical(conn: psycopg.Connection[Any], site: Site) -> None:
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pglogical'").fetchone()
    if not available:
        raise Invalid(f"site {site.name} runs PostgreSQL < 16 without pglogical: install postgresql-15-pglogical")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pglogical")
    node = f"fsfarm_{_slug(site.name)}"
    if not conn.execute("SELECT 1 FROM pglogical.node WHERE node_name = %s", [node]).fetchone():
        conn.execute("SELECT pglogical.create_node(node_name := %s, dsn := %s)", [node, site.dsn])
    in_set = {
        r[0]
        for r in conn.execute(
            "SELECT set_reloid::text FROM pglogical.replication_set_table t JOIN pglogical.replication_set s "
            "USING (set_id) WHERE s.set_name = 'default'"
        ).fetchall()
    }
    for table in replicated_tables(conn):
        if table not in in_set:
            conn.execute("SELECT pglogical.replication_set_add_table('default', %s::regclass, true)", [table])


def _subscribe_pglogical(conn: psycopg.Connection[Any], local: Site, peer: Site) -> str:
    name = f"fsfarm_from_{_slug(peer.name)}"
    if conn.execute("SELECT 1 FROM pglogical.subscription WHERE sub_name = %s", [name]).fetchone():
        return f"{local.name} already subscribes to {peer.name}"
    conn.execute(
        "SELECT pglogical.create_subscription(subscription_name := %s, provider_dsn := %s, "
        "replication_sets := ARRAY['default'], synchronize_structure := false, synchronize_data := false, "
        "forward_origins := '{}')",
        [name, peer.dsn],
    )
    return f"{local.name} now applies {peer.name}'s changes (pglogical, last update wins)"


def replicate(local: Site, peer: Site, on_step: Callable[[int, int, str | None], None] | None = None) -> list[str]:
    """Set up both directions; safe to run again. Database refusals become one-line errors.

    ``on_step(done, total, what)`` is called as each of the four steps starts, and once at the end
    (``fsfarm db replicate`` draws its progress with it: a subscription waits for the peer's open
    transactions before its slot exists, which can take a while on a busy site).
    """
    steps: list[tuple[str, Callable[[], str | None]]] = [
        (f"preparing {local.name}", lambda: prepare(local)),
        (f"preparing {peer.name}", lambda: prepare(peer)),
        (f"subscribing {local.name} to {peer.name}", lambda: subscribe(local, peer)),
        (f"subscribing {peer.name} to {local.name}", lambda: subscribe(peer, local)),
    ]
    said: list[str] = []
    try:
        for done, (what, run) in enumerate(steps):
            if on_step is not None:
                on_step(done, len(steps), what)
            sentence = run()
            if sentence:
                said.append(sentence)
        if on_step is not None:
            on_step(len(steps), len(steps), None)
        return said
    except psycopg.Error as exc:
        raise Invalid("a site refused the replication set-up", str(exc).strip()[:500]) from exc


# What a PostgreSQL 15 site needs in postgresql.conf for pglogical (restart after adding).
PGLOGICAL_SETTINGS = (
    "wal_level = logical",
    "shared_preload_libraries = 'pglogical'",
    "track_commit_timestamp = on",
    "pglogical.conflict_resolution = 'last_update_wins'",
    "max_replication_slots = 10",
    "max_wal_senders = 10",
    "max_worker_processes = 16",
)
