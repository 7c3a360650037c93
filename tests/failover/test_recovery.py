"""A dead node's live room comes back on the spare: its members are called back into it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import gevent

from controller import provisioning
from controller.app.farm import Farm
from controller.config import Settings
from controller.stores import conferences, failovers, nodes
from esl_workers.recovery import rejoin_command
from tests.failover.chain import EslNode, in_thread


def a_room_on_a_dead_node(db):  # type: ignore[no-untyped-def]
    """fs1 (down) hosted acme's room 3000 with three members, two of them registered phones; spare1 is up."""
    esl = {name: EslNode(name) for name in ("fs1", "spare1")}
    for name, node in esl.items():
        provisioning.add_node(
            db,
            {
                "name": name,
                "sip_address": f"127.0.0.1:{5070 + len(name)}",
                "esl_address": node.address,
                "esl_password": "ClueCon",
                "spare": name == "spare1",
            },
        )
    provisioning.add_tenant(db, {"domain": "acme.example"})
    provisioning.add_child(db, "conferences", "acme.example", {"number": "3000", "profile": "hd"})
    with db.transaction() as conn:
        fs1 = nodes.get(conn, "fs1")
        tenant_id = conn.execute("SELECT id FROM tenants").fetchone()["id"]
        assert fs1 is not None
        # What the watcher stored from conference::maintenance and sofia::register before the crash.
        for member_id, number, speak in ((1, "1001", True), (2, "1002", False), (3, "+15557654321", True)):
            conn.execute(
                """INSERT INTO esl_conference_members (id, node_id, conference_name, member_id, tenant_id,
                       caller_number, can_speak) VALUES (%s, %s, '3000-acme.example', %s, %s, %s, %s)""",
                [uuid.uuid4(), fs1.id, member_id, tenant_id, number, speak],
            )
        for user in ("1001", "1002"):
            conn.execute(
                """INSERT INTO esl_registrations (id, node_id, tenant_id, realm, username, call_id, contact,
                       expires_at) VALUES (%s, %s, %s, 'acme.example', %s, %s, %s, now() + interval '1 hour')""",
                [uuid.uuid4(), fs1.id, tenant_id, user, uuid.uuid4().hex, f"<sip:{user}@192.0.2.10:5062>"],
            )
        nodes.set_health(conn, fs1.id, "down", "ESL closed, reconnect refused")

    return esl, fs1, tenant_id


def test_room_members_are_called_back_on_the_spare(db, monkeypatch):
    monkeypatch.setenv("FSFARM_SIP_PROXIES", "127.0.0.1:5060")
    esl, fs1, tenant_id = a_room_on_a_dead_node(db)
    loop = Farm(Settings.from_env(), db).failover_loop()  # as `fsfarm up` and `failover watch` build it
    sentence = in_thread(loop.run_cycle)
    try:
        assert "spare spare1" in sentence
        with db.transaction() as conn:
            [row] = failovers.for_node(conn, fs1.id)
            room = conferences.store.get(conn, tenant_id, "3000")
        assert (row.rooms_total, row.rooms_recreated, row.legs_total, row.legs_recovered) == (1, 1, 3, 2)
        sent = esl["spare1"].commands
        assert sent.index("xml_flush_cache") < sent.index("sofia profile internal rescan")
        originates = [c for c in sent if c.startswith("originate")]
        assert len(originates) == 2
        assert "sofia/internal/1001@192.0.2.10:5062;fs_path=sip:127.0.0.1:5060" in originates[0]
        assert originates[0].endswith("&conference(3000-acme.example@hd)")
        assert originates[1].endswith("&conference(3000-acme.example@hd+flags{mute})")  # stays muted
        assert esl["fs1"].commands == []  # nothing was sent to the dead node
        assert [m["caller_number"] for m in room.state["members"]] == ["1001", "1002", "+15557654321"]
    finally:
        for node in esl.values():
            node.crash()


def test_failover_watch_flushes_the_spare_and_calls_room_members_back(db, tmp_path):
    """`fsfarm failover watch` runs the loop `fsfarm up` runs: after the move, the spare is told to
    refetch its config and the room's members are called back (before, it only moved the rows)."""
    esl, fs1, _ = a_room_on_a_dead_node(db)
    env = {
        **os.environ,
        "FSFARM_DATABASE_URL": db.conninfo,
        "FSFARM_STATE_DIR": str(tmp_path),
        "FSFARM_SIP_PROXIES": "127.0.0.1:5060",
    }
    env.pop("FSFARM_CELERY_BROKER", None)
    fsfarm = Path(sys.executable).with_name("fsfarm")
    watch = subprocess.Popen(
        [str(fsfarm), "failover", "watch", "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):  # the node fakes answer from this process's hub: wait cooperatively
            if sum(c.startswith("originate") for c in esl["spare1"].commands) == 2:
                break
            gevent.sleep(0.1)
        sent = esl["spare1"].commands
        assert sent.index("xml_flush_cache") < sent.index("sofia profile internal rescan"), sent
        assert sum(c.startswith("originate") for c in sent) == 2
        for _ in range(100):  # the record is written once every step has run
            with db.transaction() as conn:
                [row] = failovers.for_node(conn, fs1.id)
            if row.state == "done":
                break
            gevent.sleep(0.1)
        assert (row.rooms_recreated, row.legs_recovered) == (1, 2)
    finally:
        watch.terminate()
        _, err = watch.communicate(timeout=30)
        for node in esl.values():
            node.crash()
    assert watch.returncode == 0 and "Traceback" not in err, err


def test_rejoin_command_carries_flags():
    member = {
        "contact": "<sip:2001@198.51.100.7:5060;transport=udp>",
        "can_speak": True,
        "can_hear": False,
        "is_moderator": True,
    }
    cmd = rejoin_command("7000-beta.example", "wideband", member, "beta.example", None)
    assert "sofia/internal/2001@198.51.100.7:5060;transport=udp &conference(" in cmd
    assert cmd.endswith("@wideband+flags{deaf|moderator})")
    assert "fsfarm_tenant=beta.example" in cmd


def test_push_config_asks_the_node_to_refetch(db, monkeypatch):
    from controller.app import tasks

    node_esl = EslNode("fs1")
    try:
        provisioning.add_node(
            db,
            {
                "name": "fs1",
                "sip_address": "127.0.0.1:5080",
                "esl_address": node_esl.address,
                "esl_password": "ClueCon",
            },
        )
        monkeypatch.setattr(tasks, "_farm", Farm(Settings.from_env(), db))
        tasks.configure(None)
        sentence = in_thread(lambda: tasks.push_config.delay("fs1").get())
        assert sentence.startswith("node fs1: ")
        assert node_esl.commands == ["xml_flush_cache", "reloadxml", "sofia profile internal rescan"]
    finally:
        node_esl.crash()
