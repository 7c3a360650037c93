"""mod_voicemail's leave-message event becomes a message the voicemail API lists, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gevent

from controller import provisioning
from controller.storage import voicemail as vm_store
from controller.storage.audio import make_wav
from controller.storage.local import LocalStorage
from esl_workers.inbound import Ingest, WorkerConfig
from esl_workers.protocol import parse_json_event
from esl_workers.voicemail import from_event


def leave_message(path: str, user: str = "1001", domain: str = "acme.example") -> Any:
    return parse_json_event(
        json.dumps(
            {
                "Event-Name": "CUSTOM",
                "Event-Subclass": "vm::maintenance",
                "VM-Action": "leave-message",
                "VM-User": user,
                "VM-Domain": domain,
                "VM-File-Path": path,
                "VM-Caller-ID-Number": "+15551234567",
                "VM-Caller-ID-Name": "Bob",
                "VM-Message-Len": "2",
                "FreeSWITCH-Switchname": "fs1",
            }
        )
    )


def test_only_deposits_inside_the_shared_tree_count():
    tid = "6f1c3c5e-5d2a-4c55-9d0e-3f2c9b1a7e10"
    ok = from_event(leave_message(f"/srv/shared/{tid}/voicemail/1001/msg_a.wav"), "/srv/shared")
    assert ok is not None and ok.relative == "1001/msg_a.wav" and str(ok.tenant_id) == tid
    for path in (
        f"/var/lib/freeswitch/{tid}/voicemail/1001/msg_a.wav",  # outside the mount
        f"/srv/shared/{tid}/voicemail/../../x/voicemail/1001/a.wav",  # path tricks
        f"/srv/shared/{tid}/voicemail/1002/msg_a.wav",  # another mailbox than VM-User
        "/srv/shared/not-a-uuid/voicemail/1001/msg_a.wav",
        f"/srv/shared/{tid}/prompts/1001/msg_a.wav",
    ):
        assert from_event(leave_message(path), "/srv/shared") is None, path
    assert from_event(leave_message(f"/srv/shared/{tid}/voicemail/1001/msg_a.wav"), "") is None


def test_recorded_message_is_registered_once(db: Any, tmp_path: Path, monkeypatch: Any):
    mount = tmp_path / "shared"
    node = provisioning.add_node(
        db, {"name": "fs1", "sip_address": "127.0.0.1", "esl_address": "127.0.0.1", "esl_password": "x"}
    )
    tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
    provisioning.add_child(db, "users", "acme.example", {"extension": "1001", "password": "pw-1001-long"})
    # What the node wrote through its FUSE mount of the same volume.
    recording = mount / str(tenant.id) / "voicemail" / "1001" / "msg_0b1c.wav"
    recording.parent.mkdir(parents=True)
    recording.write_bytes(make_wav(2.0, rate=16000))

    storage = LocalStorage(str(mount))
    ingest = Ingest(db, node, WorkerConfig(spool_dir=tmp_path / "spool", shared_mount=str(mount)))
    ingest.storage = storage
    event = leave_message(str(recording))
    box = vm_store.mailbox(db, tenant, "1001")

    def listed() -> list[Any]:
        return vm_store.list_messages(db, box)

    ingest.handle([event])
    deadline = 50
    while not listed() and deadline:
        gevent.sleep(0.1)
        deadline -= 1
    [message] = listed()
    assert (message.caller_id_number, message.sample_rate, message.duration_ms) == ("+15551234567", 16000, 2000)
    ingest.handle([event])  # announced twice (a reconnect replays it): still one message
    gevent.sleep(0.5)
    assert len(listed()) == 1
    _, audio = vm_store.message_audio(db, storage, box, str(message.id))
    assert audio == recording.read_bytes()
