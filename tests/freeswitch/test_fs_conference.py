"""Conferences on a real FreeSWITCH node: members, mute/unmute/kick from the API, and an HD room on the mixer.

One node (fs1) holds acme.test with phones 1001 (440 Hz) and 1002 (1200 Hz). Room 3000 is a
narrowband mod_conference room on the node; room 3100 is an HD room the controller places on an
``fsfarm mixer`` sidecar, which FreeSWITCH bridges both legs to.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from console_browser import chromium, loaded, shot, sign_in, until
from farm_harness import FSFARM, Controller, FreeSwitch, Phone, level_db, stop_together, wait_for
from testsupport import free_port

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
TONES = {"1001": 440, "1002": 1200}
ROOM = "3000"
ROOM_NAME = "3000-acme.test"  # mod_conference's name for it: <number>-<domain>
HD_ROOM = "3100"
WINDOW = 1.5  # seconds of decoded audio compared before/after a change


@dataclass
class Farm:
    controller: Controller
    fs1: FreeSwitch
    workdir: Path
    phones: dict[str, Phone] = field(default_factory=dict)

    def members(self, number: str = ROOM) -> list[dict[str, Any]]:
        """The room's members as the API shows them."""
        return list(self.controller.api("GET", f"/tenants/acme.test/conferences/{number}/members"))

    def node_members(self) -> dict[str, dict[str, Any]]:
        """caller number -> member, from the node's own ``conference <name> list``."""
        return {m["caller_number"]: m for m in parse_conference_list(self.fs1.esl.api(f"conference {ROOM_NAME} list"))}


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path) -> Iterator[Farm]:
    fs1 = FreeSwitch(controller, "fs1", workdir / "fs1")
    # The README's order: node, tenant, users and room first, FreeSWITCH started last.
    controller.cli(*fs1.node_add_args())
    controller.cli("tenant", "add", "acme.test")
    for ext in ("1001", "1002"):
        controller.cli("user", "add", "-t", "acme.test", ext, "--password", PASSWORDS[ext], "--name", f"User {ext}")
    controller.cli("conference", "add", "-t", "acme.test", ROOM, "--profile", "narrowband")
    f = Farm(controller, fs1, workdir)
    try:
        fs1.start()
        wait_for(lambda: all(n["health"] == "up" for n in controller.api("GET", "/nodes")), 30, "fs1 up")
        for ext in ("1001", "1002"):
            p = Phone(workdir, ext, "acme.test", PASSWORDS[ext], fs1.sip_address, TONES[ext])
            f.phones[ext] = p
            p.wait_registered()
        yield f
    finally:
        stop_together(*f.phones.values(), fs1)


# --------------------------------------------------------------------------- reading what a phone heard


def decoded(phone: Phone) -> tuple[np.ndarray, int]:
    """Everything the phone's current call has decoded so far (mono), read from the WAV baresip is still writing.

    libsndfile fills in the RIFF sizes only when the call ends, so the data chunk is taken to the end of the file.
    """
    files = phone.recordings()
    if not files:
        return np.zeros(0, dtype=np.int16), 8000
    raw = Path(files[-1]).read_bytes()
    pos, rate, channels = 12, 8000, 1
    while pos + 8 <= len(raw):
        kind, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if kind == b"fmt ":
            channels = int.from_bytes(raw[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(raw[pos + 12 : pos + 16], "little")
        if kind == b"data":
            body = raw[pos + 8 :]
            body = body[: len(body) // (2 * channels) * 2 * channels]
            return np.frombuffer(body, dtype=np.int16)[::channels], rate
        pos += 8 + size + (size & 1)
    return np.zeros(0, dtype=np.int16), rate


def mark(phone: Phone) -> int:
    """Where the phone's recording is now (in samples), to read what it hears from here on."""
    return len(decoded(phone)[0])


def window(phone: Phone, start: int, seconds: float = WINDOW) -> tuple[np.ndarray, int]:
    """``seconds`` of what the phone decoded from sample ``start`` on (waits until they are recorded)."""

    def enough() -> tuple[np.ndarray, int] | None:
        pcm, rate = decoded(phone)
        return (pcm[start : start + int(rate * seconds)], rate) if len(pcm) >= start + rate * seconds else None

    return wait_for(enough, 30, f"{seconds}s of audio recorded by {phone.user}")


def levels(phone: Phone, start: int, seconds: float = WINDOW) -> dict[str, float]:
    """Level (dB full scale) of each phone's tone in what ``phone`` heard in one window."""
    pcm, rate = window(phone, start, seconds)
    return {ext: level_db(pcm, rate, tone) for ext, tone in TONES.items()}


def parse_conference_list(text: str) -> list[dict[str, Any]]:
    """``conference NAME list`` lines of FreeSWITCH 1.10:
    ``id;channel;uuid;caller name;caller number;hear|speak|talking|floor;volume in;volume out;energy``."""
    members = []
    for line in text.splitlines():
        fields = line.split(";")
        if len(fields) < 9 or not fields[0].isdigit():
            continue
        members.append(
            {
                "member_id": fields[0],
                "channel": fields[1],
                "uuid": fields[2],
                "caller_name": fields[3],
                "caller_number": fields[4],
                "flags": set(fields[5].split("|")),
            }
        )
    return members


def hangup_all(farm: Farm) -> None:
    """End every call on fs1 (a phone's ``hangup`` ends only its current call, so the node kills the rest)."""
    for p in farm.phones.values():
        p.hangup()
    farm.fs1.esl.api("hupall NORMAL_CLEARING")
    wait_for(lambda: not farm.fs1.esl.channels(), 20, "every call on fs1 to end")


# --------------------------------------------------------------------------- register and call


def test_registered_phones_call_each_other_and_hear_each_other(farm: Farm) -> None:
    a, b = farm.phones["1001"], farm.phones["1002"]
    regs = wait_for(
        lambda: (lambda r: r if {"1001", "1002"} <= r else None)(
            {r["username"] for r in farm.controller.api("GET", "/tenants/acme.test/registrations")}
        ),
        20,
        "both registrations in the API",
    )
    assert regs == {"1001", "1002"}
    up = {p.user: len(p.saw("CALL_ESTABLISHED")) for p in (a, b)}
    closed = {p.user: len(p.saw("CALL_CLOSED")) for p in (a, b)}
    a.dial("1002")
    for p in (a, b):
        p.wait_event("CALL_ESTABLISHED", after=up[p.user])
    heard_a, heard_b = levels(a, mark(a)), levels(b, mark(b))
    assert heard_a["1002"] > -40 and heard_b["1001"] > -40, (heard_a, heard_b)
    a.hangup()
    for p in (a, b):
        p.wait_event("CALL_CLOSED", after=closed[p.user])
    wait_for(lambda: not farm.fs1.esl.channels(), 20, "the call to end on fs1")


# --------------------------------------------------------------------------- room 3000 on the node


@pytest.fixture(scope="class")
def room(farm: Farm) -> Iterator[Farm]:
    """1001 and 1002 in room 3000 (for one class of tests: the HD test after it needs the phones free)."""
    for ext in ("1001", "1002"):
        before = len(farm.phones[ext].saw("CALL_ESTABLISHED"))
        farm.phones[ext].dial(ROOM)
        farm.phones[ext].wait_event("CALL_ESTABLISHED", after=before)
    wait_for(lambda: len(farm.node_members()) == 2, 20, "two members on the node")
    yield farm
    hangup_all(farm)


class TestRoomOnTheNode:
    """Room 3000 (narrowband, mod_conference on fs1) with 1001 and 1002 in it."""

    def test_both_phones_are_members_on_the_node_and_in_the_api(self, room: Farm) -> None:
        node = room.node_members()
        assert set(node) == {"1001", "1002"}
        api = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(room.members()), 20, "two members in the API")
        by_number = {m["caller_number"]: m for m in api}
        assert set(by_number) == {"1001", "1002"}
        for ext in ("1001", "1002"):
            assert by_number[ext]["member_id"] == node[ext]["member_id"]
            assert by_number[ext]["channel_uuid"] == node[ext]["uuid"]
            assert by_number[ext]["node"] == "fs1"
            assert by_number[ext]["can_speak"] and by_number[ext]["can_hear"]
            assert {"hear", "speak"} <= node[ext]["flags"]

    def test_each_member_hears_the_other_and_not_itself(self, room: Farm) -> None:
        a, b = room.phones["1001"], room.phones["1002"]
        heard_a, heard_b = levels(a, mark(a)), levels(b, mark(b))
        assert heard_a["1002"] > -40 and heard_b["1001"] > -40, (heard_a, heard_b)
        # mod_conference never mixes a member back to itself
        assert heard_a["1001"] < heard_a["1002"] - 20, heard_a
        assert heard_b["1002"] < heard_b["1001"] - 20, heard_b

    def test_mute_from_the_api_silences_the_member_for_the_others_and_unmute_brings_it_back(self, room: Farm) -> None:
        ctl, b = room.controller, room.phones["1002"]
        member = room.node_members()["1001"]["member_id"]
        before = levels(b, mark(b))
        assert before["1001"] > -40, before

        answer = ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/mute", {"member": member})
        assert answer["ok"] and answer["node"] == "fs1", answer
        wait_for(lambda: "speak" not in room.node_members()["1001"]["flags"], 10, "1001 muted on the node")
        wait_for(
            lambda: any(m["member_id"] == member and not m["can_speak"] for m in room.members()),
            10,
            "1001 muted in the API",
        )
        listed = json.loads(ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/list")["result"])
        flags = {m["caller_id_number"]: m["flags"] for m in listed[0]["members"]}
        assert not flags["1001"]["can_speak"] and flags["1002"]["can_speak"], flags  # json_list agrees
        muted = levels(b, mark(b))
        assert muted["1001"] < before["1001"] - 30, (before, muted)
        assert levels(room.phones["1001"], mark(room.phones["1001"]))["1002"] > -40  # 1001 still hears

        ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/unmute", {"member": member})
        wait_for(lambda: "speak" in room.node_members()["1001"]["flags"], 10, "1001 unmuted on the node")
        after = levels(b, mark(b))
        assert after["1001"] > -40, (before, muted, after)

    def test_the_rooms_console_page_lists_the_members_and_its_mute_button_mutes_on_the_node(self, room: Farm) -> None:
        ctl = room.controller
        token = ctl.api("POST", "/tokens", {"scope": "tenant-admin", "tenant": "acme.test"}, 201)["token"]
        with chromium() as browser:
            page = loaded(
                sign_in(browser, ctl.url, token=token), f"{ctl.url}/console/tenants/acme.test/conferences/{ROOM}"
            )
            members = room.node_members()
            rows = {m: f"tr[data-key='{members[m]['member_id']}']" for m in ("1001", "1002")}
            until(lambda: all(page.locator(r).count() for r in rows.values()), page)
            shot(page, "tenant-room-members")
            page.locator(rows["1002"]).get_by_role("button", name="Mute", exact=True).click()
            wait_for(lambda: "speak" not in room.node_members()["1002"]["flags"], 10, "1002 muted on the node")
            assert "speak" in room.node_members()["1001"]["flags"]  # only the member whose button it was
            until(lambda: page.locator(f"{rows['1002']} td[data-col='can_speak']").inner_text() == "no", page)
            page.locator(rows["1002"]).get_by_role("button", name="Unmute").click()
            wait_for(lambda: "speak" in room.node_members()["1002"]["flags"], 10, "1002 unmuted on the node")

    def test_kick_from_the_api_ends_the_members_call_and_drops_it(self, room: Farm) -> None:
        ctl, b = room.controller, room.phones["1002"]
        member = room.node_members()["1002"]["member_id"]
        closed = len(b.saw("CALL_CLOSED"))
        answer = ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/kick", {"member": member})
        assert answer["ok"], answer
        b.wait_event("CALL_CLOSED", after=closed)
        wait_for(lambda: set(room.node_members()) == {"1001"}, 10, "1002 gone from the node's list")
        wait_for(lambda: [m["caller_number"] for m in room.members()] == ["1001"], 10, "1002 gone from the API")

    def test_bad_member_commands_answer_4xx_naming_the_field(self, room: Farm) -> None:
        ctl = room.controller
        bad = ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/mute", {"member": "1; hupall"}, expect=400)
        assert bad["detail"]["field"] == "member"
        assert "action" in ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/explode", {}, expect=400)["error"]
        ctl.api("POST", "/tenants/acme.test/conferences/3999/mute", {"member": "1"}, expect=404)
        # FreeSWITCH's own "-ERR Non-Existant ID 99" becomes a 404 naming the member
        gone = ctl.api("POST", f"/tenants/acme.test/conferences/{ROOM}/mute", {"member": "99"}, expect=404)
        assert gone["detail"]["field"] == "member" and "Non-Existant ID 99" in gone["detail"]["result"], gone


# --------------------------------------------------------------------------- room 3100 on the mixer sidecar


@dataclass
class Sidecar:
    process: subprocess.Popen[bytes]
    sip: str
    control: str
    log_path: Path
    token_file: Path

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}

    def room(self, room_id: str) -> dict[str, Any]:
        return dict(requests.get(f"{self.control}/rooms/{room_id}", headers=self.bearer, timeout=5).json())


@pytest.fixture(scope="module")
def mixer(farm: Farm) -> Iterator[Sidecar]:
    sip_port, control_port = free_port(socket.SOCK_DGRAM), free_port()
    log_path, token_file = farm.workdir / "mixer.log", farm.workdir / "mixer.token"  # the mixer writes the token
    process = subprocess.Popen(
        [
            *(FSFARM, "mixer", "--listen", f"127.0.0.1:{sip_port}", "--control", f"127.0.0.1:{control_port}"),
            *("--token-file", str(token_file)),
        ],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    side = Sidecar(process, f"127.0.0.1:{sip_port}", f"http://127.0.0.1:{control_port}", log_path, token_file)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"fsfarm mixer exited:\n{log_path.read_text()[-2000:]}")
        try:
            return requests.get(side.control + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, 20, "the mixer's control API")
        farm.controller.cli(
            "mixers", "add", "m1", "--sip", side.sip, "--control", side.control, "--token-file", str(token_file)
        )
        yield side
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_hd_room_on_the_mixer_is_wideband_each_hears_only_the_other_and_the_api_mutes_and_kicks_there(
    farm: Farm, mixer: Sidecar
) -> None:
    ctl = farm.controller
    ctl.cli("conference", "add", "-t", "acme.test", HD_ROOM, "--profile", "hd")
    placed = wait_for(
        lambda: next(
            (c for c in ctl.api("GET", "/placement")["conferences"] if c["conference"] == HD_ROOM and c.get("mixer")),
            None,
        ),
        20,
        "room 3100 placed on a mixer",
    )
    assert placed["mixer"] == "m1"
    rooms = wait_for(
        lambda: requests.get(mixer.control + "/rooms", headers=mixer.bearer, timeout=5).json()["rooms"],
        20,
        "the controller to create the room on the mixer",
    )
    assert len(rooms) == 1 and rooms[0]["rate"] == 48000, rooms
    room_id = rooms[0]["room"]
    a, b = farm.phones["1001"], farm.phones["1002"]
    try:
        for p in (a, b):
            before = len(p.saw("CALL_ESTABLISHED"))
            p.dial(HD_ROOM)
            p.wait_event("CALL_ESTABLISHED", after=before)
        people = wait_for(
            lambda: (lambda r: r["participants"] if len(r["participants"]) == 2 else None)(mixer.room(room_id)),
            20,
            "both legs bridged to the mixer",
        )
        # Wideband end to end: the mixer leg carries the phone's own G.722, and the phones decode 16 kHz.
        assert [p["codec"] for p in people] == ["G722/8000", "G722/8000"], people
        assert decoded(a)[1] == decoded(b)[1] == 16000
        heard_a, heard_b = levels(a, mark(a)), levels(b, mark(b))
        assert heard_a["1002"] > -40 and heard_b["1001"] > -40, (heard_a, heard_b)
        assert heard_a["1001"] < heard_a["1002"] - 20, heard_a
        assert heard_b["1002"] < heard_b["1001"] - 20, heard_b

        # The API shows the mixer's legs as the room's members, by caller, and mutes and kicks them there.
        members = {m["caller_number"]: m for m in farm.members(HD_ROOM)}
        assert set(members) == {"1001", "1002"} and {m["mixer"] for m in members.values()} == {"m1"}, members
        assert {m["member_id"] for m in members.values()} == {p["id"] for p in people}
        muting = members["1001"]["member_id"]
        answer = ctl.api("POST", f"/tenants/acme.test/conferences/{HD_ROOM}/mute", {"member": muting})
        assert answer["ok"] and answer["mixer"] == "m1", answer
        assert {p["id"]: p["muted"] for p in mixer.room(room_id)["participants"]}[muting] is True
        muted = levels(b, mark(b))
        assert muted["1001"] < heard_b["1001"] - 30, (heard_b, muted)
        ctl.api("POST", f"/tenants/acme.test/conferences/{HD_ROOM}/unmute", {"member": muting})
        assert levels(b, mark(b))["1001"] > -40

        closed = len(b.saw("CALL_CLOSED"))
        ctl.api("POST", f"/tenants/acme.test/conferences/{HD_ROOM}/kick", {"member": members["1002"]["member_id"]})
        b.wait_event("CALL_CLOSED", after=closed)  # the mixer's BYE ends the bridge, then the phone's call
        wait_for(lambda: [m["caller_number"] for m in farm.members(HD_ROOM)] == ["1001"], 10, "1002 gone")
    finally:
        hangup_all(farm)
    wait_for(lambda: not mixer.room(room_id)["participants"], 20, "the mixer to drop both legs")
