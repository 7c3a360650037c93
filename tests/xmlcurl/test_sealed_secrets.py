"""Secrets at rest: a database dump reveals none, yet every node is still given exactly what it needs."""

from __future__ import annotations

import hashlib
from typing import Any

from test_configuration import config, settings
from test_routes import dial
from xmlcurl_support import actions, parse_answer, pick, post

from controller import provisioning
from controller import secrets as farm_secrets
from controller.stores import rows
from xmlcurl.snapshot import Snapshot

SEALED_COLUMNS = [(table, column) for table, columns in rows.SEALED.values() for column in columns]
# Sealed values the farm fixture and secrets_of() set: the node's ESL password, one gateway's, one room PIN,
# four users' a1-hashes and three vm-a1-hashes (2001 has no PIN).
SET_VALUES = 1 + 1 + 1 + 4 + 3


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def dump(db: Any) -> str:
    """Every row of every table holding a sealed column, as an operator's ``pg_dump`` would show them."""
    with db.transaction() as conn:
        tables = sorted({table for table, _ in SEALED_COLUMNS})
        return "\n".join(str(conn.execute(f"SELECT row_to_json(t) FROM {table} t").fetchall()) for table in tables)


def secrets_of(farm: Any, db: Any) -> dict[str, str]:
    provisioning.add_child(
        db, "gateways", "acme.test", {"name": "carrier", "proxy": "203.0.113.5", "password": "carrier-pw-77"}
    )
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3200", "pin": "4321"})
    return {
        "ESL password": "ClueCon",
        "carrier password": "carrier-pw-77",
        "room PIN": "4321",
        "a1-hash": md5("1003:acme.test:secret-1003-x"),
        "vm-a1-hash": md5("1003:acme.test:1234"),
    }


def test_a_dump_shows_no_secret_while_each_node_gets_what_it_needs(
    client: Any, db: Any, farm: Any, recorded: Any
) -> None:
    values = secrets_of(farm, db)
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    stored = dump(db)
    for what, value in values.items():
        assert value not in stored, what
    assert stored.count("enc:v1:") == SET_VALUES

    assert settings(config(client, recorded, "event_socket.conf"))["password"] == "ClueCon"
    gateway = config(client, recorded, "sofia.conf").find("profiles/profile/gateways/gateway")
    assert settings(gateway, "params/param")["password"] == "carrier-pw-77"
    assert ("conference", "3200-acme.test@wideband+4321") in actions(dial(client, recorded, "3200"))
    request = pick(recorded, "directory user_call")
    body = request.with_fields(user="1003")
    user = parse_answer(post(client, body)).find("section/domain/groups/group/users/user")
    params = {p.get("name"): p.get("value") for p in user.iterfind("params/param")}
    assert (params["a1-hash"], params["vm-a1-hash"]) == (values["a1-hash"], values["vm-a1-hash"])


def test_rows_written_in_clear_still_read_and_are_sealed_once(db: Any, farm: Any) -> None:
    values = secrets_of(farm, db)
    with db.transaction() as conn:  # as an fsfarm before sealing stored them
        before = {}
        for table, column in SEALED_COLUMNS:
            for row in conn.execute(f"SELECT id, {column} AS v, updated_at FROM {table}").fetchall():
                clear = farm_secrets.active().open(row["v"], rows.where(table, column, row["id"]))
                conn.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [clear, row["id"]])
                before[(table, row["id"])] = row["updated_at"]
    assert all(value in dump(db) for value in values.values())

    def answers() -> tuple[Any, ...]:
        snapshot = Snapshot()
        with db.reads() as conn:
            snapshot.load_all(conn)
        acme = farm["acme"].id
        user = snapshot.user(acme, "1003")
        return (
            snapshot.node("vm").esl_password,
            snapshot.gateways(acme)[0].password,
            snapshot.conference(acme, "3200").pin,
            user.a1_hash,
            user.vm_a1_hash,
        )

    expected = tuple(values.values())
    assert answers() == expected  # read as they are

    with db.transaction() as conn:
        assert rows.seal_stored(conn) == SET_VALUES
    stored = dump(db)
    assert not any(value in stored for value in values.values())
    assert answers() == expected
    with db.transaction() as conn:
        assert rows.seal_stored(conn) == 0  # once
        for (table, id), updated_at in before.items():  # the value did not change: no newer write for another site
            assert (
                conn.execute(f"SELECT updated_at FROM {table} WHERE id = %s", [id]).fetchone()["updated_at"]
                == updated_at
            )
