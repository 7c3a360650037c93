"""Change notices: the one listener every room uses, and every write a node or Kamailio sees announcing itself."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
import pytest

from controller import provisioning
from controller.database import Database
from controller.drain import DrainLoop
from controller.failover import FailoverLoop
from controller.join import activate_on_first_heartbeat, join
from controller.stores import changes, nodes
from controller.stores.changes import CHANNEL, Change, ChangeListener, Notice


def _until(check: Callable[[], Any], what: str, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    return value


def _terminate_listener(dsn: str, application_name: str) -> int:
    """Kill the server side of a listener's connection, as a database restart or a network cut would."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND query LIKE 'LISTEN%%'",
            [application_name],
        ).fetchall()
    return len(rows)


def test_the_listener_delivers_notices_and_starts_over_after_losing_its_connection(db: Database, dsn: str) -> None:
    heard: queue.Queue[Change] = queue.Queue()
    connected: list[int] = []
    lost: list[Exception | None] = []
    listener = ChangeListener(
        f"{dsn} application_name=test-listener",
        heard.put,
        on_connected=lambda: connected.append(len(connected)),
        on_lost=lost.append,
        retry_seconds=0.05,
    )
    listener.start()
    try:
        assert listener.listening.wait(15)
        assert connected == [0]
        tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
        assert heard.get(timeout=15) == Change(Notice.TENANT, tenant.id)

        assert _terminate_listener(dsn, "test-listener") == 1
        _until(lambda: len(connected) == 2, "on_connected was not called again after the reconnect")
        assert len(lost) == 1 and isinstance(lost[0], psycopg.OperationalError)
        assert listener.listening.wait(15)
        provisioning.update_tenant(db, "acme.example", {"name": "Acme"})
        while (change := heard.get(timeout=15)).what != Notice.TENANT or change.tenant != tenant.id:
            pass  # a placement notice of the add may come first
    finally:
        listener.stop()
    assert not listener.listening.is_set()
    assert lost[-1] is None  # told that it stopped listening, so its users stop trusting what they hold


def test_an_unreadable_notice_reaches_listeners_as_farm_wide_unknown(db: Database, dsn: str) -> None:
    heard: queue.Queue[Change] = queue.Queue()
    listener = ChangeListener(dsn, heard.put)
    listener.start()
    try:
        assert listener.listening.wait(15)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "{not json"))
        assert heard.get(timeout=15) == Change(Notice.UNKNOWN, None)
    finally:
        listener.stop()


def test_announce_takes_only_a_notice_and_sends_nothing_on_rollback(db: Database, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as listening:
        listening.execute(f"LISTEN {CHANNEL}")
        with db.transaction() as conn, pytest.raises(TypeError):
            changes.announce(conn, "node")  # type: ignore[arg-type]
        with pytest.raises(RuntimeError), db.transaction() as conn:
            changes.announce(conn, Notice.NODE)
            raise RuntimeError("rolled back")
        with db.transaction() as conn:
            changes.announce(conn, Notice.IVR, uuid.UUID(int=7))
        got = next(listening.notifies(timeout=15))
    assert got.payload == '{"what": "IVR", "tenant": "00000000-0000-0000-0000-000000000007"}'


# ---------------------------------------------------------------- every write announces itself


class Heard:
    """A LISTEN connection that returns what one write announced: everything before a marker sent after it."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def after(self, write: Callable[[], Any]) -> set[tuple[Notice, UUID | None]]:
        write()
        marker = f"marker-{uuid.uuid4()}"
        # Notices arrive in commit order, so the write's are all in before the marker.
        self.conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, marker))
        out = set()
        for notice in self.conn.notifies(timeout=15):
            if notice.payload == marker:
                return out
            change = Change.parse(notice.payload)
            out.add((change.what, change.tenant))
        raise AssertionError("the marker notice never arrived")


@pytest.fixture
def heard(dsn: str) -> Iterator[Heard]:
    h = Heard(dsn)
    yield h
    h.conn.close()


NODE = {"sip_address": "127.0.0.1:5060", "esl_address": "127.0.0.1:8021", "esl_password": "x"}


def test_every_provisioning_write_announces_what_it_changed(db: Database, heard: Heard) -> None:
    farm_wide = {(Notice.NODE, None)}
    assert farm_wide <= heard.after(lambda: provisioning.add_node(db, {"name": "fs1", **NODE}))
    assert farm_wide <= heard.after(lambda: provisioning.add_node(db, {"name": "fs2", **NODE, "spare": True}))
    assert farm_wide <= heard.after(lambda: provisioning.update_node(db, "fs1", {"capacity": 500}))
    mixer = {
        "name": "m1",
        "sip_address": "127.0.0.1:5090",
        "control_url": "http://127.0.0.1:5091",
        "control_token": "mixer-token-0123456789",
    }
    assert {(Notice.MIXER, None)} <= heard.after(lambda: provisioning.add_mixer(db, mixer))
    assert {(Notice.MIXER, None)} <= heard.after(lambda: provisioning.remove_mixer(db, "m1"))

    tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
    mine = {(Notice.TENANT, tenant.id)}
    assert mine <= heard.after(lambda: provisioning.update_tenant(db, "acme.example", {"name": "Acme"}))
    children = {
        "users": (Notice.USER, {"extension": "1001", "password": "pw-1001-x"}, "1001", {"display_name": "A"}),
        "conferences": (Notice.CONFERENCE, {"number": "3000"}, "3000", {"name": "Room"}),
        "ivrs": (Notice.IVR, {"name": "menu", "extension": "4000"}, "menu", {"description": "Main"}),
        "gateways": (Notice.GATEWAY, {"name": "carrier", "proxy": "127.0.0.1:5070"}, "carrier", {"register": True}),
        "numbers": (
            Notice.NUMBER,
            {"number": "+15550001", "target_type": "user", "target": "1001"},
            "+15550001",
            {"description": "main"},
        ),
    }
    for kind, (notice, data, ref, update) in children.items():
        expected = {(notice, tenant.id)}
        assert expected <= heard.after(partial(provisioning.add_child, db, kind, "acme.example", data)), kind
        assert expected <= heard.after(partial(provisioning.update_child, db, kind, "acme.example", ref, update)), kind
    for kind in ("numbers", "users", "conferences", "ivrs", "gateways"):
        notice, _, ref, _ = children[kind]
        assert {(notice, tenant.id)} <= heard.after(partial(provisioning.remove_child, db, kind, "acme.example", ref))

    # Kamailio routes by placement: moving the tenant's node away announces the new placement.
    moved = heard.after(lambda: provisioning.drain_node(db, "fs1"))
    assert {(Notice.NODE, None), (Notice.PLACEMENT, None)} <= moved
    assert mine <= heard.after(lambda: provisioning.remove_tenant(db, "acme.example", force=True))
    assert farm_wide <= heard.after(lambda: provisioning.remove_node(db, "fs1", force=True))


def test_node_lifecycle_outside_provisioning_announces_itself(db: Database, heard: Heard) -> None:
    """Self-join, first heartbeat, the end of a drain and a failover all change what Kamailio routes to."""
    token, _ = provisioning.create_token(db, "node-join")
    provisioning.add_tenant(db, {"domain": "acme.example"})
    joined: list[Any] = []
    assert {(Notice.NODE, None)} <= heard.after(
        lambda: joined.append(
            join(db, token, {"name": "fs1", "sip_address": "127.0.0.1:5060", "esl_address": "127.0.0.1:8021"})
        )
    )
    node = joined[0][0]

    def first_heartbeat() -> None:
        with db.transaction() as conn:
            nodes.set_health(conn, node.id, "up", "heartbeat")
            assert activate_on_first_heartbeat(conn, node.id)

    assert {(Notice.NODE, None), (Notice.PLACEMENT, None)} <= heard.after(first_heartbeat)

    provisioning.add_node(db, {"name": "spare1", **NODE, "spare": True})

    def node_dies() -> None:
        with db.transaction() as conn:
            nodes.set_health(conn, node.id, "down", "ESL socket closed, reconnect refused")
        assert "spare spare1" in FailoverLoop(db, controller_id="test").run_cycle()

    assert {(Notice.PLACEMENT, None)} <= heard.after(node_dies)

    provisioning.update_node(db, "spare1", {"admin_state": "draining"})
    assert {(Notice.NODE, None)} <= heard.after(lambda: DrainLoop(db, live_calls=lambda conn, node_id: 0).run_cycle())
