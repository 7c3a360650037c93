"""Commands through the REST API reach the node owning the call or room, byte-exact, tenant-scoped."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import requests
from esl_support import AUTH_REQUEST, api_reply, command_reply, rows
from testsupport import free_port
from werkzeug.serving import make_server

from controller import provisioning
from controller.database import Database
from mixer_ext.api import create_app
from mixer_ext.engine import Mixer

A_LEG = "5055ebf8-c30d-4d29-962f-4e79a664505d"


def add_call(db: Database, node_id: Any, domain: str, channel: str = A_LEG) -> None:
    with db.transaction() as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE domain = %s", (domain,)).fetchone()["id"]
        conn.execute(
            "INSERT INTO esl_live_calls (id, node_id, channel_uuid, tenant_id) VALUES (%s, %s, %s, %s)",
            (uuid.uuid4(), node_id, channel, tenant_id),
        )


def tenant_token(db: Database, domain: str) -> str:
    token, _ = provisioning.create_token(db, "tenant-admin", domain, label="t")
    return token


def test_hangup_goes_to_the_node_owning_the_call(db: Database, admin: Any, fake_fs: Any, farm: Any) -> None:
    fs1, fs2 = fake_fs(), fake_fs()
    farm(fs1.address, name="fs1", switchname="fs1")
    node2 = farm(fs2.address, name="fs2", switchname="fs2")
    add_call(db, node2.id, "acme.test")
    fs2.api[f"uuid_kill {A_LEG} NORMAL_CLEARING"] = "+OK\n"
    resp = admin.delete(f"/api/v1/tenants/acme.test/calls/{A_LEG}")
    assert resp.status_code == 200, resp.json
    assert resp.json == {"node": "fs2", "command": f"uuid_kill {A_LEG} NORMAL_CLEARING", "ok": True, "result": "+OK\n"}
    assert fs2.received == [b"auth ClueCon\n\n", f"api uuid_kill {A_LEG} NORMAL_CLEARING\n\n".encode(), b"exit\n\n"]
    assert fs1.received == []


def test_other_tenants_calls_are_404(db: Database, client: Any, fake_fs: Any, farm: Any) -> None:
    fs = fake_fs()
    node = farm(fs.address)
    add_call(db, node.id, "acme.test")
    beta = {"Authorization": f"Bearer {tenant_token(db, 'beta.test')}"}
    assert client.delete(f"/api/v1/tenants/beta.test/calls/{A_LEG}", headers=beta).status_code == 404
    assert client.get("/api/v1/tenants/acme.test/calls", headers=beta).status_code == 404
    assert client.get("/api/v1/tenants/acme.test/cdrs", headers=beta).status_code == 404
    acme = {"Authorization": f"Bearer {tenant_token(db, 'acme.test')}"}
    listed = client.get("/api/v1/tenants/acme.test/calls", headers=acme)
    assert [c["channel_uuid"] for c in listed.json] == [A_LEG]
    assert fs.received == []


def test_freeswitch_refusal_is_a_conflict_with_its_words(db: Database, admin: Any, fake_fs: Any, farm: Any) -> None:
    fs = fake_fs()
    node = farm(fs.address)
    add_call(db, node.id, "acme.test")
    fs.api[f"uuid_kill {A_LEG} NORMAL_CLEARING"] = "-ERR No such channel!\n"
    resp = admin.delete(f"/api/v1/tenants/acme.test/calls/{A_LEG}")
    assert resp.status_code == 409
    assert "No such channel" in resp.json["error"]


def test_conference_mute_runs_on_the_rooms_node(db: Database, admin: Any, fake_fs: Any, farm: Any) -> None:
    fs = fake_fs()
    farm(fs.address)
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3000", "name": "Standup"})
    fs.api["conference 3000-acme.test mute all"] = "+OK mute 2\n+OK mute 1\n"
    resp = admin.post("/api/v1/tenants/acme.test/conferences/3000/mute", json={})
    assert resp.status_code == 200, resp.json
    assert resp.json["result"] == "+OK mute 2\n+OK mute 1\n"
    assert b"api conference 3000-acme.test mute all\n\n" in fs.received
    bad = admin.post("/api/v1/tenants/acme.test/conferences/3000/mute", json={"member": "1\n\napi hupall"})
    assert bad.status_code == 400


def test_unknown_member_or_idle_room_is_404_in_freeswitchs_words(
    db: Database, admin: Any, fake_fs: Any, farm: Any
) -> None:
    fs = fake_fs()
    farm(fs.address)
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3000"})
    # the exact answers of FreeSWITCH 1.10.12 (tests/freeswitch/test_fs_conference.py sees them live)
    fs.api["conference 3000-acme.test kick 99"] = "-ERR Non-Existant ID 99\n"
    fs.api["conference 3000-acme.test mute 1"] = "-ERR Conference 3000-acme.test not found\n"
    gone = admin.post("/api/v1/tenants/acme.test/conferences/3000/kick", json={"member": "99"})
    assert gone.status_code == 404 and gone.json["detail"]["field"] == "member", gone.json
    idle = admin.post("/api/v1/tenants/acme.test/conferences/3000/mute", json={"member": "1"})
    assert idle.status_code == 404 and "nobody" in idle.json["error"], idle.json


MIXER_TOKEN = "mixer-token-0123456789"


@pytest.fixture
def mixer_api() -> Iterator[str]:
    """A real mixer sidecar (engine and control API) on loopback; yields its control URL."""
    engine = Mixer("127.0.0.1").start()
    server = make_server("127.0.0.1", 0, create_app(engine, MIXER_TOKEN), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        engine.stop()


def test_hd_room_commands_go_to_its_mixer_not_to_mod_conference(
    db: Database, admin: Any, fake_fs: Any, farm: Any, mixer_api: str
) -> None:
    fs = fake_fs()
    farm(fs.address)
    mixer = {"name": "m1", "sip_address": "127.0.0.1:5090", "control_url": mixer_api, "control_token": MIXER_TOKEN}
    provisioning.add_mixer(db, mixer)
    room = provisioning.add_child(db, "conferences", "acme.test", {"number": "3100", "profile": "hd"})
    base = "/api/v1/tenants/acme.test/conferences/3100"
    # not created on the mixer yet: nobody in it
    assert admin.get(f"{base}/members").json == []
    bearer = {"Authorization": f"Bearer {MIXER_TOKEN}"}
    requests.post(f"{mixer_api}/rooms", json={"room": str(room.id), "rate": 48000}, headers=bearer, timeout=5)
    listed = admin.post(f"{base}/list", json={})
    assert listed.status_code == 200 and listed.json["mixer"] == "m1" and listed.json["result"] == "[]", listed.json
    gone = admin.post(f"{base}/mute", json={"member": "p0000000"})
    assert gone.status_code == 404 and gone.json["detail"]["field"] == "member", gone.json
    assert admin.post(f"{base}/mute", json={}).json["result"] == "+OK\n"  # all of nobody
    record = admin.post(f"{base}/record", json={"path": "/tmp/x.wav"})
    assert record.status_code == 400 and record.json["detail"]["field"] == "action", record.json
    assert fs.received == []


def test_hd_room_on_an_unreachable_mixer_is_503(db: Database, admin: Any, fake_fs: Any, farm: Any) -> None:
    fs = fake_fs()
    farm(fs.address)
    provisioning.add_mixer(
        db,
        {
            "name": "m1",
            "sip_address": "127.0.0.1:5090",
            "control_url": f"http://127.0.0.1:{free_port()}",
            "control_token": MIXER_TOKEN,
        },
    )
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3100", "profile": "hd"})
    resp = admin.post("/api/v1/tenants/acme.test/conferences/3100/kick", json={"member": "p1"})
    assert resp.status_code == 503 and "m1" in resp.json["error"], resp.json
    assert fs.received == []


def test_node_commands_are_farm_admin_only(db: Database, admin: Any, client: Any, fake_fs: Any, farm: Any) -> None:
    fs = fake_fs()
    farm(fs.address)
    fs.api["reloadxml"] = "+OK [Success]\n"
    fs.api["sofia profile internal rescan"] = "Reload XML [Success]\n+OK scan complete\n"
    assert admin.post("/api/v1/nodes/fs1/commands/reloadxml").json["ok"] is True
    assert admin.post("/api/v1/nodes/fs1/commands/sofia_rescan", json={"arg": "internal"}).json["ok"] is True
    acme = {"Authorization": f"Bearer {tenant_token(db, 'acme.test')}"}
    assert client.post("/api/v1/nodes/fs1/commands/reloadxml", headers=acme).status_code == 404
    assert fs.received.count(b"api reloadxml\n\n") == 1


def test_click_to_call_is_a_bgapi_job_with_its_result_stored(db: Database, admin: Any, fake_fs: Any, farm: Any) -> None:
    fs = fake_fs()
    farm(fs.address)

    def bgapi(text: str, write: Any) -> bytes | None:
        if not text.startswith("bgapi "):
            return None
        job = text.split("Job-UUID: ")[1]
        body = b"+OK 7f4db78a-0000-0000-0000-000000000001\n"
        event = (
            b"Event-Name: BACKGROUND_JOB\nJob-UUID: " + job.encode() + b"\nContent-Length: %d\n\n" % len(body) + body
        )
        gevent.spawn_later(0.05, write, b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(event) + event)
        return command_reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n")

    fs.on_command = bgapi
    resp = admin.post("/api/v1/tenants/acme.test/calls", json={"from": "1001", "to": "1002", "wait": 5})
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "done" and resp.json["result"].startswith("+OK")
    sent = next(r for r in fs.received if r.startswith(b"bgapi ")).decode()
    assert sent.startswith(
        "bgapi originate {fsfarm_tenant=acme.test,origination_caller_id_number=1001,"
        "ignore_early_media=true}user/1001@acme.test 1002 XML acme.test\nJob-UUID: "
    )
    stored = rows(db, "SELECT status, result FROM esl_command_jobs")
    assert stored == [{"status": "done", "result": "+OK 7f4db78a-0000-0000-0000-000000000001\n"}]
    again = admin.get(f"/api/v1/tenants/acme.test/jobs/{resp.json['id']}")
    assert again.json["status"] == "done"


def test_unreachable_node_is_503(db: Database, admin: Any, farm: Any) -> None:
    from esl_support import FakeFreeSWITCH

    fs = FakeFreeSWITCH().start()
    address = fs.address
    fs.stop()
    farm(address)
    assert admin.post("/api/v1/nodes/fs1/commands/reloadxml").status_code == 503


def test_fixture_bytes_used_by_the_fake_are_the_recorded_ones() -> None:
    from esl_support import recording

    recv = [r["data"].encode() for r in recording("inbound-api-commands.jsonl") if r["dir"] == "recv"]
    assert recv[0] == AUTH_REQUEST
    assert recv[-1] == api_reply("Reload XML [Success]\n+OK scan complete\n")
