"""Command endpoints never guess: a lost or malformed body runs nothing, and recordings land in the tenant's folder."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller import provisioning
from controller.database import Database
from controller.stores import tenants

ROOM = "/api/v1/tenants/acme.test/conferences/3000"
MALFORMED = ['{"member": "1"', "{'member': '1'}", "member=1", '{"member": NaN}', "[" * 100_000, "\xff\xfe"]


@pytest.fixture
def room(db: Database, fake_fs: Any, farm: Any) -> Any:
    fs = fake_fs()
    farm(fs.address)
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3000", "name": "Standup"})
    return fs


def _commands_sent(fs: Any) -> list[bytes]:
    return [r for r in fs.received if r.startswith((b"api ", b"bgapi "))]


@pytest.mark.parametrize("action", ["mute", "kick", "deaf", "norecord"])
@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_body_on_a_room_command_runs_nothing(admin: Any, room: Any, action: str, raw: str) -> None:
    resp = admin.post(f"{ROOM}/{action}", data=raw.encode("utf-8", "surrogatepass"), content_type="application/json")
    assert resp.status_code == 400 and resp.json["detail"]["field"] == "body", resp.json
    assert _commands_sent(room) == []


@pytest.mark.parametrize("action", ["mute", "kick", "norecord"])
def test_a_missing_body_on_a_sweeping_room_command_runs_nothing(admin: Any, room: Any, action: str) -> None:
    resp = admin.post(f"{ROOM}/{action}")
    assert resp.status_code == 400 and resp.json["detail"]["field"] == "body", resp.json
    assert _commands_sent(room) == []


def test_node_flush_needs_an_explicit_body(admin: Any, room: Any) -> None:
    for kwargs in ({}, {"data": b'{"arg": "directory"', "content_type": "application/json"}):
        resp = admin.post("/api/v1/nodes/fs1/commands/xml_flush_cache", **kwargs)
        assert resp.status_code == 400 and resp.json["detail"]["field"] == "body", resp.json
    assert _commands_sent(room) == []
    room.api["xml_flush_cache"] = "+OK\n"
    assert admin.post("/api/v1/nodes/fs1/commands/xml_flush_cache", json={}).json["ok"] is True
    assert _commands_sent(room) == [b"api xml_flush_cache\n\n"]


def test_click_to_call_refuses_a_malformed_body_and_a_wait_that_is_not_a_number(admin: Any, room: Any) -> None:
    calls = "/api/v1/tenants/acme.test/calls"
    for raw in ('{"from": "1001", "to": "1002"', '{"from": "1001", "to": "1002", "wait": Infinity}'):
        resp = admin.post(calls, data=raw, content_type="application/json")
        assert resp.status_code == 400 and resp.json["detail"]["field"] == "body", resp.json
    for wait in ("soon", 1e300, -1, True):
        resp = admin.post(calls, json={"from": "1001", "to": "1002", "wait": wait})
        assert resp.status_code == 400 and resp.json["detail"]["field"] == "wait", resp.json
    assert _commands_sent(room) == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"path": "/etc/freeswitch/freeswitch.xml"}, "path"),
        ({"path": "../../beta.test/voicemail/1001/msg.wav"}, "path"),
        ({"name": "../x.wav"}, "name"),
        ({"name": ".."}, "name"),
        ({"name": "a/b.wav"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": 3}, "name"),
    ],
)
def test_recording_paths_are_refused(app: Any, admin: Any, room: Any, body: dict[str, Any], field: str) -> None:
    _with_shared_mount(app, "/mnt/fsfarm")
    resp = admin.post(f"{ROOM}/record", json=body)
    assert resp.status_code == 400 and resp.json["detail"]["field"] == field, resp.json
    assert _commands_sent(room) == []


def test_a_recording_goes_to_the_tenants_own_folder(app: Any, db: Database, admin: Any, room: Any) -> None:
    _with_shared_mount(app, "/mnt/fsfarm")
    with db.transaction() as conn:
        acme = tenants.by_domain(conn, "acme.test")
        assert acme is not None
    folder = f"/mnt/fsfarm/{acme.id}/recordings/conf-3000"
    room.api[f"conference 3000-acme.test record {folder}/standup.wav"] = "+OK\n"
    resp = admin.post(f"{ROOM}/record", json={"name": "standup.wav"})
    assert resp.status_code == 200, resp.json
    assert _commands_sent(room) == [f"api conference 3000-acme.test record {folder}/standup.wav\n\n".encode()]
    admin.post(f"{ROOM}/record", json={})  # no name: a dated one, in the same folder
    assert _commands_sent(room)[-1].startswith(f"api conference 3000-acme.test record {folder}/".encode())


def test_recording_without_a_shared_mount_is_a_conflict(admin: Any, room: Any) -> None:
    resp = admin.post(f"{ROOM}/record", json={"name": "standup.wav"})
    assert resp.status_code == 409, resp.json
    assert _commands_sent(room) == []


def _with_shared_mount(app: Any, mount: str) -> None:
    settings = app.extensions["fsfarm.settings"]
    storage = dataclasses.replace(settings.storage, shared_mount=mount)
    app.extensions["fsfarm.settings"] = dataclasses.replace(settings, storage=storage)
