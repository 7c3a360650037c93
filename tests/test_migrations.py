"""Schema migrations: applied once, recorded, and safe to run again."""

from __future__ import annotations

import psycopg
import pytest

from sql import migrate as migrate_module
from sql.migrate import Migration, available, migrate


def test_migrating_twice_is_a_no_op(pg_server):
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "mig_twice"')
        conn.execute('CREATE DATABASE "mig_twice"')
    dsn = pg_server.conninfo.replace("dbname=postgres", "dbname=mig_twice")
    first = migrate(dsn)
    assert first == [m.version for m in available()] and first[0] == "0001"
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tenants (id, domain, name) VALUES (gen_random_uuid(), 'keep.example', 'k')")
        conn.commit()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert migrate(dsn) == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == tables
        assert conn.execute("SELECT domain FROM tenants").fetchall() == [("keep.example",)]


def test_edited_migration_is_refused(dsn, monkeypatch):
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in available()]
    monkeypatch.setattr(migrate_module, "available", lambda: edited)
    with pytest.raises(RuntimeError, match="edited after it was applied"):
        migrate(dsn)


def test_schema_follows_multi_master_rules(dsn):
    with psycopg.connect(dsn) as conn:
        sequences = conn.execute("SELECT count(*) FROM pg_sequences WHERE schemaname = 'public'").fetchone()
        keys = conn.execute(
            """SELECT c.table_name, c.data_type FROM information_schema.table_constraints t
               JOIN information_schema.key_column_usage k USING (constraint_name, table_name)
               JOIN information_schema.columns c ON c.table_name = k.table_name AND c.column_name = k.column_name
               WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = 'public'
                 AND t.table_name <> 'schema_migrations'"""
        ).fetchall()
        stamped = conn.execute(
            """SELECT table_name, count(*) FILTER (WHERE column_name IN ('created_at', 'updated_at'))
               FROM information_schema.columns JOIN information_schema.tables USING (table_schema, table_name)
               WHERE table_schema = 'public' AND table_name <> 'schema_migrations' AND table_type = 'BASE TABLE'
               GROUP BY table_name"""
        ).fetchall()
    assert sequences == (0,)
    assert keys and all(data_type == "uuid" for _, data_type in keys)
    assert all(n == 2 for _, n in stamped), stamped
