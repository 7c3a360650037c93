"""The controller drives real mixer sidecars: HD rooms are created where placement puts them, and when a
mixer dies its rooms are recreated on another one and their FreeSWITCH legs sent there again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from testsupport import free_port

from controller import provisioning
from controller.mixers import MixerClient, MixerLoop
from esl_workers.recovery import rebridge_room
from tests.failover.chain import EslNode, in_thread


def start_mixer(token_file: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    sip, control = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli.entry",
            "mixer",
            "--listen",
            f"127.0.0.1:{sip}",
            "--control",
            f"127.0.0.1:{control}",
            "--log-level",
            "WARNING",
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{control}"
    deadline = time.monotonic() + 30
    while not MixerClient(url).healthy():
        assert proc.poll() is None and time.monotonic() < deadline, "mixer did not start"
        time.sleep(0.1)
    return proc, url, f"127.0.0.1:{sip}"


@pytest.fixture
def two_mixers(tmp_path: Path):  # type: ignore[no-untyped-def]
    started = [start_mixer(tmp_path / "m1.token"), start_mixer(tmp_path / "m2.token")]
    yield started
    for proc, _, _ in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def placed_mixer(db: Any) -> str | None:
    return provisioning.placement_overview(db)["conferences"][0]["mixer"]


def test_rooms_follow_placement_and_survive_a_dead_mixer(db: Any, two_mixers: Any, tmp_path: Path) -> None:
    (p1, url1, sip1), (p2, url2, sip2) = two_mixers
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
        tokens = {name: (tmp_path / f"{name}.token").read_text().strip() for name in ("m1", "m2")}
        for name, url, sip in (("m1", url1, sip1), ("m2", url2, sip2)):
            mixer = {"name": name, "sip_address": sip, "control_url": url, "control_token": tokens[name]}
            assert "control_token" not in provisioning.add_mixer(db, mixer).public()  # a secret: never shown
        tenant = provisioning.add_tenant(db, {"domain": "acme.example"})
        room = provisioning.add_child(db, "conferences", "acme.example", {"number": "3000", "profile": "hd"})
        loop = MixerLoop(db, rebridge=rebridge_room, failures_to_down=2)

        assert "created 1 room(s) on mixer" in loop.run_cycle()
        first = placed_mixer(db)
        urls = {"m1": url1, "m2": url2}
        held = MixerClient(urls[first], tokens[first]).rooms()
        assert held[str(room.id)]["rate"] == 48000  # the HD room, at the room's rate
        assert "nothing to do" in loop.run_cycle()  # idempotent

        # Two legs of the room are live on fs1 (as the ESL watcher recorded them).
        with db.transaction() as conn:
            for leg in ("leg-a", "leg-b"):
                conn.execute(
                    """INSERT INTO esl_live_calls (id, node_id, channel_uuid, tenant_id, destination)
                                SELECT %s, id, %s, %s, '3000' FROM nodes WHERE name = 'fs1'""",
                    [uuid.uuid4(), leg, tenant.id],
                )

        victim = p1 if first == "m1" else p2
        victim.kill()
        victim.wait(timeout=10)
        sentences = [in_thread(loop.run_cycle) for _ in range(3)]
        assert any(f"mixer {first} failed 2 health checks" in s for s in sentences), sentences
        second = placed_mixer(db)
        assert second not in (None, first)
        assert str(room.id) in MixerClient(urls[second], tokens[second]).rooms()
        assert sorted(c for c in node_esl.commands if c.startswith("uuid_transfer")) == [
            "uuid_transfer leg-a 3000 XML acme.example",
            "uuid_transfer leg-b 3000 XML acme.example",
        ]
    finally:
        node_esl.crash()


def test_a_mixer_registered_with_a_wrong_token_is_not_driven_until_it_is_replaced(
    db: Any, two_mixers: Any, tmp_path: Path
) -> None:
    (_, url, sip), _ = two_mixers
    provisioning.add_mixer(
        db, {"name": "m1", "sip_address": sip, "control_url": url, "control_token": "not-the-mixers-token"}
    )
    room = provisioning.add_child(
        db,
        "conferences",
        provisioning.add_tenant(db, {"domain": "acme.example"}).domain,
        {"number": "3000", "profile": "hd"},
    )
    loop = MixerLoop(db)
    said = loop.run_cycle()
    assert "mixer m1 could not be synced" in said and "refused the control token" in said, said
    token = (tmp_path / "m1.token").read_text().strip()
    assert str(room.id) not in MixerClient(url, token).rooms()
    provisioning.set_mixer_token(db, "m1", {"control_token": token})
    assert "created 1 room(s) on mixer m1" in loop.run_cycle()
    assert str(room.id) in MixerClient(url, token).rooms()
