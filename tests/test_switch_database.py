"""The nodes' shared FreeSWITCH database: created by the controller, reachable as its own role, handed over.

FreeSWITCH creates its tables itself; here they are created with the columns sofia and the core use
(``sofia_glue.c`` and ``switch_core_sqldb.c``), as a node would have left them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from controller.database.switch import SwitchDatabase, adopted_profile, node_schema

RECOVERY = (
    "CREATE TABLE {s}.recovery (runtime_uuid varchar(255), technology varchar(255), profile_name varchar(255), "
    "hostname varchar(255), "
    "uuid text, metadata text)"
)
REGISTRATIONS = (
    "CREATE TABLE sofia.sip_registrations (call_id text, sip_user text, sip_host text, contact text, "
    "expires bigint, hostname text, network_ip text, network_port text, profile_name text)"
)
CHANNEL_XML = (
    "<cdr><variables><recovery_profile_name>internal</recovery_profile_name>"
    "<sip_call_id>abc</sip_call_id></variables></cdr>"
)


@pytest.fixture
def switch(dsn: str) -> Iterator[SwitchDatabase]:
    found = SwitchDatabase.for_farm(dsn, None)
    assert found is not None
    yield found
    found.drop()


def test_the_derived_database_is_created_with_its_own_role_and_the_schemas(switch: SwitchDatabase, dsn: str) -> None:
    dead, heir = uuid.uuid4(), uuid.uuid4()
    switch.ensure([dead, heir])
    switch.ensure([dead, heir])  # idempotent: every start and bootstrap runs it
    farm = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    assert switch.dbname == f"{farm}_switch"
    # The nodes log in as that role, with the password every controller derives from the farm key.
    with psycopg.connect(switch.conninfo) as conn:
        user = conn.execute("SELECT current_user").fetchone()
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert user is not None and user[0] == switch.dbname
    assert {"sofia", node_schema(dead), node_schema(heir)} <= schemas
    assert switch.sofia_dsn().startswith("pgsql://") and "search_path=sofia" in switch.sofia_dsn()
    assert f"search_path={node_schema(dead)}" in switch.core_dsn(dead)
    # The farm's own tables stay out of the nodes' reach (the role owns its database only).
    with psycopg.connect(psycopg.conninfo.make_conninfo(switch.conninfo, dbname=farm)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM nodes")


def test_local_keeps_state_on_each_node(dsn: str) -> None:
    assert SwitchDatabase.for_farm(dsn, "local") is None


def test_hand_over_gives_the_heir_the_dead_nodes_calls_and_registrations_only(switch: SwitchDatabase) -> None:
    dead, heir, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    switch.ensure([dead, heir, other])
    with psycopg.connect(switch.conninfo) as conn:
        for node in (dead, heir, other):
            conn.execute(RECOVERY.format(s=node_schema(node)))
        conn.execute(REGISTRATIONS)
        for node, leg in ((dead, "leg-a"), (dead, "leg-b"), (other, "leg-other")):
            conn.execute(
                f"INSERT INTO {node_schema(node)}.recovery VALUES ('run-1', 'sofia', 'internal', 'h', %s, %s)",
                [leg, CHANNEL_XML],
            )
        for user, host in (("1001", "fs-dead"), ("1002", "fs-dead"), ("1003", "fs-other")):
            conn.execute(
                "INSERT INTO sofia.sip_registrations (call_id, sip_user, sip_host, contact, expires, hostname) "
                "VALUES (%s, %s, 'acme.test', 'sip:x', 9999999999, %s)",
                [f"call-{user}", user, host],
            )
    name = adopted_profile("internal", "fs1")
    handed = switch.hand_over(dead, "fs-dead", heir, "fs-heir", name)
    assert sorted(handed.legs) == ["leg-a", "leg-b"] and handed.registrations == 2
    assert switch.tracked_legs(dead) == 0 and switch.tracked_legs(heir) == 2
    assert switch.tracked_legs(other) == 1  # a live node's calls are never touched
    with psycopg.connect(switch.conninfo) as conn:
        rows = conn.execute(f"SELECT profile_name, metadata FROM {node_schema(heir)}.recovery").fetchall()
    # Relabelled for the profile the heir answers at the dead node's address with: `sofia recover` attaches them.
    assert {r[0] for r in rows} == {name}
    assert all(f"<recovery_profile_name>{name}</recovery_profile_name>" in r[1] for r in rows)
    assert all("<sip_call_id>abc</sip_call_id>" in r[1] for r in rows)
    assert {r["hostname"] for r in switch.registrations("1001", "acme.test")} == {"fs-heir"}
    assert {r["hostname"] for r in switch.registrations("1003", "acme.test")} == {"fs-other"}
    # Without the address only the registrations would move; nothing is left to move twice.
    assert switch.hand_over(dead, "fs-dead", None, "fs-heir", name).legs == ()


def test_an_operator_s_own_database_is_used_as_given_and_never_created(dsn: str) -> None:
    given = SwitchDatabase.for_farm(dsn, "postgresql://fs:pw@db.example:6432/fsstate")
    assert given is not None and given.derived_from is None
    assert "host=db.example" in given.sofia_dsn() and "dbname=fsstate" in given.sofia_dsn()
    assert "pw" not in repr(given)  # a log line never shows the password
