"""Node watchers fed the recorded event streams: what lands in PostgreSQL, and how failures recover."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import pytest
from esl_support import event_stream, recording, rows, wait_until
from testsupport import free_port

from controller.config import Settings
from controller.database import Database
from controller.errors import Unavailable
from controller.metrics import Series
from controller.stores import registrations
from esl_workers.inbound import WorkerConfig, start_workers

JSON_EVENTS = event_stream("inbound-json-events.jsonl")
PLAIN_EVENTS = event_stream("inbound-plain-all-events.jsonl")
SHOW_CHANNELS = next(
    r
    for r in recording("inbound-api-commands.jsonl")
    if r["dir"] == "recv" and '"row_count":2,"rows":[{"uuid":"5055ebf8' in r["data"]
)["data"].split("\n\n", 1)[1]


def config(tmp_path: Path, **overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "spool_dir": tmp_path / "spool",
        "heartbeat_interval": 5.0,
        "backoff_min": 0.05,
        "backoff_max": 0.2,
        "connect_timeout": 1.0,
        "command_timeout": 1.0,
        "db_retry_interval": 0.1,
        "node_refresh_interval": 0.2,
    }
    return WorkerConfig(**{**values, **overrides})


def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=None,
        state_dir=tmp_path,
        embedded_pg_port=0,
        xmlcurl_user="freeswitch",
        xmlcurl_password="x",
        controller_address="127.0.0.1",
    )


@contextmanager
def watching(db: Any, tmp_path: Path, metrics: Series | None = None, **overrides: Any) -> Iterator[Any]:
    handle = start_workers(db, config(tmp_path, **overrides), metrics=metrics)
    try:
        yield handle
    finally:
        handle.stop()
        leftover = [g for w in handle.watchers.values() for g in w.greenlets if not g.dead]
        assert leftover == []


def cdr_count(db: Database) -> int:
    return int(rows(db, "SELECT count(*) AS n FROM esl_cdrs")[0]["n"])


def upto(stream: list[bytes], marker: bytes) -> list[bytes]:
    """The stream up to and including the first group containing ``marker``."""
    index = next(i for i, g in enumerate(stream) if marker in g)
    return stream[: index + 1]


def test_recorded_session_is_stored(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs(JSON_EVENTS)
    node = farm(fs.address)
    series = Series()

    def lag() -> dict[tuple[str, str | None], float]:
        return {(s.name, s.labels.get("le")): s.value for m in series.esl_lag_seconds.collect() for s in m.samples}

    with watching(db, tmp_path, metrics=series) as handle:
        wait_until(lambda: cdr_count(db) == 7)
        wait_until(lambda: rows(db, "SELECT health FROM nodes WHERE health = 'up'"))
        # Each ingested event's lag is recorded under its node's name.
        wait_until(
            lambda: lag().get(("fsfarm_esl_event_lag_seconds_count", None)) == handle.counters()["fs1"]["events"]
        )
    assert lag()[("fsfarm_esl_event_lag_seconds_count", None)] > 0
    assert lag()[("fsfarm_esl_event_lag_seconds_bucket", "30.0")] == 0  # stamped at the recording, long before now
    joined = "SELECT c.*, t.domain FROM esl_cdrs c JOIN tenants t ON t.id = c.tenant_id"
    cdrs = {r["channel_uuid"]: r for r in rows(db, joined)}
    a_leg = cdrs["5055ebf8-c30d-4d29-962f-4e79a664505d"]
    assert (a_leg["domain"], a_leg["caller_number"], a_leg["destination"], a_leg["billsec"], a_leg["hangup_cause"]) == (
        "acme.test",
        "1001",
        "1002",
        5,
        "NORMAL_CLEARING",
    )
    assert a_leg["answered_at"] is not None and a_leg["ended_at"] > a_leg["started_at"]
    assert cdrs["97454a82-b53e-4463-88e5-76d6edddd4d3"]["hangup_cause"] == "NO_ROUTE_DESTINATION"
    assert cdrs["97454a82-b53e-4463-88e5-76d6edddd4d3"]["answered_at"] is None
    assert rows(db, "SELECT count(*) AS n FROM esl_live_calls")[0]["n"] == 0  # every call hung up
    reg = rows(db, "SELECT * FROM esl_registrations")[0]
    assert (reg["username"], reg["realm"], reg["network_port"]) == ("1002", "acme.test", "15080")
    assert reg["expires_at"].isoformat() == "2026-11-21T13:11:53.383987+00:00"  # event time + expires 600
    with db.transaction() as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE domain = 'acme.test'").fetchone()["id"]
        expired = conn.execute("SELECT expires_at < now() AS past FROM esl_registrations").fetchone()["past"]
        listed_as_is = registrations.list_for_tenant(conn, tenant_id)
        conn.execute("UPDATE esl_registrations SET expires_at = now() + interval '10 minutes'")
        regs = registrations.list_for_tenant(conn, tenant_id)
    assert len(listed_as_is) == (0 if expired else 1)  # an expired registration is not listed
    assert [(r["username"], r["network_port"], r["node"]) for r in regs] == [("1002", "15080", "fs1")]
    stats = rows(db, "SELECT * FROM esl_node_stats WHERE node_id = %s", node.id)[0]
    assert stats["max_sessions"] == 1000 and stats["version"].startswith("1.10.12")
    health = rows(db, "SELECT health, health_reason, health_at FROM nodes WHERE id = %s", node.id)[0]
    assert health["health"] == "up" and health["health_at"] is not None


def test_live_calls_and_room_members_mid_call(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs(upto(JSON_EVENTS, b'"Action":"mute-member"'))
    farm(fs.address)
    with watching(db, tmp_path):
        wait_until(fs.streamed.is_set)
        members = wait_until(
            lambda: (
                len(rows(db, "SELECT * FROM esl_conference_members ORDER BY member_id")) == 2
                and rows(db, "SELECT * FROM esl_conference_members ORDER BY member_id")
            )
        )
        live = rows(db, "SELECT channel_uuid, state FROM esl_live_calls ORDER BY channel_uuid")
    assert [(m["member_id"], m["caller_number"], m["conference_name"]) for m in members] == [
        (1, "1001", "3000-acme.test"),
        (2, "1002", "3000-acme.test"),
    ]
    muted = wait_until(lambda: rows(db, "SELECT member_id FROM esl_conference_members WHERE NOT can_speak"))
    assert [m["member_id"] for m in muted] == [2]
    assert {c["channel_uuid"] for c in live} == {
        "96148cf1-633a-4f2f-9568-df709ce8a20c",
        "2549d962-c75a-437b-85e2-c1756101ed89",
    }


def test_same_events_twice_store_each_cdr_once(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs()
    fs.per_connection = [JSON_EVENTS, JSON_EVENTS]
    fs.close_after_events = True
    farm(fs.address)
    with watching(db, tmp_path):
        wait_until(lambda: fs.connections >= 2 and fs.streamed.is_set() and cdr_count(db) == 7)
        gevent.sleep(0.2)
    assert cdr_count(db) == 7


def test_background_job_result_finishes_the_job(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs(PLAIN_EVENTS)
    node = farm(fs.address)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO esl_command_jobs (id, node_id, command) VALUES (%s, %s, 'status')",
            ("7f4db78a-c0a9-4c44-9d7e-3b3c4b0fc001", node.id),
        )
    with watching(db, tmp_path, event_format="plain"):
        job = wait_until(lambda: rows(db, "SELECT * FROM esl_command_jobs WHERE status <> 'pending'"))
    assert job[0]["status"] == "done" and job[0]["result"].startswith("UP 0 years")
    assert fs.received[1].startswith(b"event plain ")
    assert cdr_count(db) == 7


class FlakyDatabase:
    """The real database behind a switch: while ``down`` every transaction fails as PostgreSQL would."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.down = False

    def transaction(self) -> Any:
        if self.down:
            raise Unavailable("the database cannot be reached", "test outage")
        return self.db.transaction()


def test_cdrs_spool_while_postgres_is_away_and_replay_once(
    db: Database, fake_fs: Any, farm: Any, tmp_path: Path
) -> None:
    fs = fake_fs()
    fs.per_connection = [[], JSON_EVENTS]  # the calls happen on the second connection, during the outage
    farm(fs.address)
    flaky = FlakyDatabase(db)
    handle = start_workers(flaky, config(tmp_path))  # type: ignore[arg-type]
    try:
        watcher = next(iter(handle.watchers.values()))
        wait_until(lambda: watcher.link.connected)
        flaky.down = True
        fs.drop_all()
        wait_until(lambda: watcher.ingest.counters.cdrs_spooled == 7)
        assert cdr_count(db) == 0
        spooled = [c.channel_uuid for c in watcher.ingest.spool.pending()]
        (seen,) = handle.counters().values()  # what /metrics exports as fsfarm_cdr_spool_depth and fsfarm_esl_*
        assert (seen["spool_depth"], seen["cdrs_spooled"]) == (7, 7) and seen["events"] > 0
        flaky.down = False
        wait_until(lambda: cdr_count(db) == 7 and not watcher.ingest.spool)
        assert next(iter(handle.counters().values()))["spool_depth"] == 0
        gevent.sleep(0.3)  # further retry ticks must not write anything twice
    finally:
        handle.stop()
    hangups = [g for g in JSON_EVENTS if b"CHANNEL_HANGUP_COMPLETE" in g]
    assert len(spooled) == len(set(spooled)) == 7
    assert spooled == sorted(spooled, key=lambda u: b"".join(hangups).index(u.encode()))  # arrival order
    assert cdr_count(db) == 7


def test_replayed_spool_skips_cdrs_already_stored(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs(JSON_EVENTS)
    node = farm(fs.address)
    with watching(db, tmp_path) as handle:
        wait_until(lambda: cdr_count(db) == 7)
        ingest = handle.watchers[node.id].ingest
        from esl_workers.cdr import from_event
        from esl_workers.protocol import FrameReader, parse_event

        frames = FrameReader().feed(b"".join(JSON_EVENTS))
        cdrs = [c for c in (from_event(parse_event(f)) for f in frames if f.content_type == "text/event-json") if c]
        ingest.spool.append(cdrs)  # a crash after commit but before the spool was emptied
        assert ingest.replay_spool() == 0
    assert cdr_count(db) == 7


def test_events_from_an_unknown_switch_are_not_stored(
    db: Database, fake_fs: Any, farm: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fs = fake_fs(JSON_EVENTS)
    farm(fs.address, switchname="fs-other")
    with caplog.at_level(logging.WARNING), watching(db, tmp_path) as handle:
        wait_until(fs.streamed.is_set)
        watcher = next(iter(handle.watchers.values()))
        wait_until(lambda: watcher.ingest.counters.foreign >= 66)
        assert watcher.link.connected
    assert cdr_count(db) == 0 and rows(db, "SELECT * FROM esl_registrations") == []
    assert "unknown switch 'vm'" in caplog.text


@pytest.mark.parametrize(
    "garbage",
    [
        b"this line has no colon\n\n",
        b'Content-Length: 100000\nContent-Type: text/event-json\n\n{"Event-Name":"HEARTBEAT"}',  # lies, then EOF
        b'Content-Length: 10\nContent-Type: text/event-json\n\n{"Event-Name":"HEARTBEAT","x":"y"}\n\n',  # too short
    ],
    ids=["malformed", "length-too-long-then-disconnect", "length-too-short"],
)
def test_bad_frames_drop_the_connection_which_recovers(
    db: Database, fake_fs: Any, farm: Any, tmp_path: Path, garbage: bytes
) -> None:
    fs = fake_fs()
    half = len(JSON_EVENTS) // 2
    fs.per_connection = [[*JSON_EVENTS[:half], garbage], JSON_EVENTS[half:]]
    fs.close_after_events = True
    farm(fs.address)
    with watching(db, tmp_path):
        wait_until(lambda: cdr_count(db) == 7)
    assert fs.connections >= 2


def test_disconnect_mid_event_loses_nothing_already_received(
    db: Database, fake_fs: Any, farm: Any, tmp_path: Path
) -> None:
    fs = fake_fs()
    cut = next(i for i, g in enumerate(JSON_EVENTS) if b"CHANNEL_HANGUP_COMPLETE" in g)
    fs.per_connection = [[*JSON_EVENTS[:cut], JSON_EVENTS[cut][: len(JSON_EVENTS[cut]) // 2]], JSON_EVENTS[cut:]]
    fs.close_after_events = True
    farm(fs.address)
    with watching(db, tmp_path):
        wait_until(lambda: cdr_count(db) == 7)
    assert fs.connections >= 2


def test_reconcile_removes_zombies_and_adds_missed_calls(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs([])
    fs.api["show channels as json"] = SHOW_CHANNELS
    node = farm(fs.address)
    with db.transaction() as conn:
        conn.execute(
            """INSERT INTO esl_live_calls (id, node_id, channel_uuid, updated_at)
                        VALUES (gen_random_uuid(), %s, 'zombie-uuid', now() - interval '1 hour')""",
            (node.id,),
        )
    with watching(db, tmp_path):
        live = wait_until(
            lambda: (
                {r["channel_uuid"] for r in rows(db, "SELECT * FROM esl_live_calls")}
                == {"5055ebf8-c30d-4d29-962f-4e79a664505d", "2eb50913-7470-48b5-b8e6-7d74ae0d6923"}
            )
        )
    assert live
    domains = rows(db, "SELECT DISTINCT t.domain FROM esl_live_calls c JOIN tenants t ON t.id = c.tenant_id")
    assert domains == [{"domain": "acme.test"}]


def test_silent_node_goes_suspect_then_down(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    one_beat = [next(g for g in JSON_EVENTS if b'"Event-Name":"HEARTBEAT"' in g)]
    fs = fake_fs(one_beat)
    node = farm(fs.address)
    seen: list[str] = []

    def health() -> str:
        value = str(rows(db, "SELECT health FROM nodes WHERE id = %s", node.id)[0]["health"])
        if not seen or seen[-1] != value:
            seen.append(value)
        return value

    with watching(db, tmp_path, heartbeat_interval=0.3, check_interval=0.02):
        wait_until(lambda: health() == "down", interval=0.01)
    assert seen[-3:] == ["up", "suspect", "down"]
    reason = rows(db, "SELECT health_reason FROM nodes WHERE id = %s", node.id)[0]["health_reason"]
    assert "no HEARTBEAT" in reason


def test_crashed_node_is_down_when_reconnect_is_refused(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    fs = fake_fs(JSON_EVENTS[:3])
    node = farm(fs.address)
    with watching(db, tmp_path):
        wait_until(lambda: rows(db, "SELECT health FROM nodes WHERE id = %s", node.id)[0]["health"] == "up")
        fs.stop()
        fs.drop_all()
        wait_until(lambda: rows(db, "SELECT health FROM nodes WHERE id = %s", node.id)[0]["health"] == "down")
    reason = rows(db, "SELECT health_reason FROM nodes WHERE id = %s", node.id)[0]["health_reason"]
    assert "refused" in reason


def test_server_that_never_answers_leaves_no_greenlet_behind(
    db: Database, fake_fs: Any, farm: Any, tmp_path: Path
) -> None:
    fs = fake_fs()
    fs.silent = True
    farm(fs.address)
    with watching(db, tmp_path, connect_timeout=0.2) as handle:
        watcher = next(iter(handle.watchers.values()))
        wait_until(lambda: watcher.link.failures >= 2)
        assert "no auth/request" in watcher.link.last_error
    assert all(g.dead for g in watcher.greenlets)


def test_reply_that_never_comes_fails_the_command_not_the_greenlet(fake_fs: Any) -> None:
    from greenswitch.esl import NotConnectedError

    from esl_workers.connection import FarmInboundESL

    fs = fake_fs()
    fs.on_command = lambda text, write: b"" if text.startswith("api ") else None  # swallow api commands
    host, port = fs.address.split(":")
    conn = FarmInboundESL(host, int(port), "ClueCon", timeout=1.0)
    conn.connect()
    with pytest.raises(NotConnectedError):
        conn.api("status", timeout=0.2)
    conn.stop(timeout=1.0)
    assert conn._receive_events_greenlet.dead and conn._process_events_greenlet.dead
    assert not conn.connected


def test_node_added_later_gets_a_watcher(db: Database, fake_fs: Any, farm: Any, tmp_path: Path) -> None:
    with watching(db, tmp_path) as handle:
        assert handle.watchers == {}
        fs = fake_fs(JSON_EVENTS)
        node = farm(fs.address)
        wait_until(lambda: node.id in handle.watchers)
        wait_until(lambda: cdr_count(db) == 7)


def test_a_node_never_seen_alive_is_not_declared_down(db: Database, farm: Any, tmp_path: Path) -> None:
    # First start in the README's order: the node is registered, FreeSWITCH is not running yet.
    node = farm(f"127.0.0.1:{free_port()}")
    with watching(db, tmp_path):
        wait_until(
            lambda: (
                "never seen alive"
                in rows(db, "SELECT health_reason FROM nodes WHERE id = %s", node.id)[0]["health_reason"]
            )
        )
        gevent.sleep(1.5)  # several refused reconnects later it is still not a dead node
        health = rows(db, "SELECT health, seen_alive_at FROM nodes WHERE id = %s", node.id)[0]
    assert health["health"] == "unknown" and health["seen_alive_at"] is None
