"""Voicemail on a bare node: phrases over xml_curl, prompts from the farm's storage, a deposit end to end.

The node has only ``fsfarm freeswitch bootstrap`` files and no sound files. The controller runs with a
shared mount (here a local directory that is both its storage and the nodes' mount), generates the
voicemail prompts there with espeak-ng, and serves mod_voicemail's phrase macros over xml_curl.
1002 has a mailbox and a phone that rings but never answers; 1001 calls 1002, the ring timeout sends
the call to voicemail, 1001 hears the greeting, leaves its tone as the message and hangs up.
"""

from __future__ import annotations

import glob
import re
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from farm_harness import Controller, FreeSwitch, Phone, level_db, stop_together, wait_for

PASSWORDS = {"1001": "pw-1001-long", "1002": "pw-1002-long"}
TONES = {"1001": 440, "1002": 1200}
RING_SECONDS = 5
MESSAGE_SECONDS = 5  # over mod_voicemail's min-record-len (3 s), or the message is discarded


@pytest.fixture(scope="module")
def shared(workdir: Path) -> Path:
    """The shared volume: the controller's storage root and the path every node mounts it at."""
    path = workdir / "shared"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def controller(farm_dsn: str, workdir: Path, shared: Path) -> Iterator[Controller]:
    """``fsfarm up`` with shared storage, as the Terraform controller role runs it."""
    ctl = Controller(
        farm_dsn, workdir, env={"FSFARM_STORAGE": f"local:{shared}", "FSFARM_SHARED_MOUNT": str(shared)}
    ).start()
    yield ctl
    ctl.stop()


@dataclass
class Farm:
    controller: Controller
    fs1: FreeSwitch
    shared: Path
    tenant_id: str
    caller: Phone
    callee: Phone

    def box(self) -> Path:
        return self.shared / self.tenant_id / "voicemail" / "1002"


@pytest.fixture(scope="module")
def farm(controller: Controller, workdir: Path, shared: Path) -> Iterator[Farm]:
    """The README's order: node, tenant and users first, then FreeSWITCH from its bootstrap files."""
    fs1 = FreeSwitch(controller, "fs1", workdir / "fs1")
    controller.cli(*fs1.node_add_args())
    tenant = controller.cli_json("tenant", "add", "acme.test")
    controller.cli("user", "add", "-t", "acme.test", "1001", "--password", PASSWORDS["1001"])
    box = ["--password", PASSWORDS["1002"], "--vm-pin", "4321", "--set", f"ring_timeout={RING_SECONDS}"]
    controller.cli("user", "add", "-t", "acme.test", "1002", *box)
    phones: list[Phone] = []
    try:
        fs1.start()
        wait_for(
            lambda: (shared / "farm/sounds/en/us/fsfarm/manifest.json").exists(),
            60,
            "the controller to generate the farm prompts",
        )
        callee = Phone(workdir, "1002", "acme.test", PASSWORDS["1002"], fs1.sip_address, TONES["1002"], answer=False)
        phones.append(callee)
        caller = Phone(workdir, "1001", "acme.test", PASSWORDS["1001"], fs1.sip_address, TONES["1001"])
        phones.append(caller)
        callee.wait_registered()
        caller.wait_registered()
        yield Farm(controller, fs1, shared, str(tenant["id"]), caller, callee)
    finally:
        stop_together(*phones, fs1)


@dataclass
class Deposit:
    message_file: Path
    recording_seconds: float  # from the message file appearing to the caller's hangup


@pytest.fixture(scope="module")
def deposit(farm: Farm) -> Deposit:
    """1001 calls 1002, nobody answers, 1001 leaves MESSAGE_SECONDS of its tone and hangs up."""
    farm.caller.dial("1002")
    farm.callee.wait_event("CALL_INCOMING", timeout=20)  # 1002 rings first: voicemail only after the ring timeout
    farm.caller.wait_event("CALL_ESTABLISHED", timeout=RING_SECONDS + 20)
    # mod_voicemail opens msg_<uuid>.wav when recording starts, after the greeting and the beep.
    message = wait_for(
        lambda: glob.glob(str(farm.box() / "msg_*.wav")),
        60,
        f"recording to start in {farm.box()} (node log: {farm.fs1.workdir}/log/freeswitch.log)",
    )
    started = time.monotonic()
    time.sleep(MESSAGE_SECONDS)
    farm.caller.hangup()
    recording_seconds = time.monotonic() - started
    farm.caller.wait_event("CALL_CLOSED", timeout=20)
    return Deposit(Path(message[0]), recording_seconds)


def _log_lines(log: str, pattern: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(pattern, line)]


def test_the_node_loads_voicemail_and_sofia_config_without_errors_or_deprecation_warnings(farm: Farm) -> None:
    log = farm.fs1.log()
    assert _log_lines(log, r"Added Profile default"), "mod_voicemail did not add its profile"
    for bad in (
        r"Failed to process configuration",
        r"play-new-messages",
        r"rtp-timeout-sec deprecated",
        r"rtp-hold-timeout-sec deprecated",
        r"Open of languages and phrases failed",
    ):
        assert not _log_lines(log, bad), f"node log has {bad!r}: {_log_lines(log, bad)[:3]}"
    # The media timeouts now come as the channel variables 1.10 reads, inherited from global variables.
    assert farm.fs1.esl.api("global_getvar media_timeout").strip() == "300000"
    assert farm.fs1.esl.api("global_getvar media_hold_timeout").strip() == "1800000"


def test_the_caller_hears_the_greeting_spoken_from_farm_prompts(farm: Farm, deposit: Deposit) -> None:
    pcm, rate = farm.caller.heard(skip=0.5)
    greeting = pcm[: rate * 4]  # the first seconds after the answer: the spoken greeting
    x = greeting.astype(np.float64) / 32768.0
    rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)
    assert rms_db > -40, f"the caller heard silence during the greeting ({rms_db:.1f} dBFS)"
    # Speech spreads over many frequencies; a tone (the record beep, an echo of the caller) sits in one band.
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    peak = freqs[int(np.argmax(power))]
    assert power[(freqs > peak - 20) & (freqs < peak + 20)].sum() < 0.5 * power.sum(), "a tone, not speech"
    assert level_db(greeting, rate, TONES["1001"]) < -30
    log = farm.fs1.log()
    assert not _log_lines(log, r"Error Opening File|File .* not found|Can't find macro")


def test_the_message_is_in_storage_listed_by_the_api_and_carries_the_callers_tone(farm: Farm, deposit: Deposit) -> None:
    assert deposit.message_file.is_file() and deposit.message_file.stat().st_size > 0
    ctl = farm.controller
    messages = wait_for(
        lambda: ctl.api("GET", "/tenants/acme.test/users/1002/voicemail") or None, 30, "the deposit listed by the API"
    )
    assert len(messages) == 1
    message: dict[str, Any] = messages[0]
    assert message["path"] == f"1002/{deposit.message_file.name}"
    assert message["caller_id_number"] == "1001"
    assert 3000 <= message["duration_ms"] <= (deposit.recording_seconds + 1) * 1000, message
    audio = ctl.http.get(f"{ctl.url}/api/v1/tenants/acme.test/users/1002/voicemail/{message['id']}/audio", timeout=30)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    with wave.open(BytesIO(audio.content)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[:: w.getnchannels()]
    assert level_db(pcm, rate, TONES["1001"]) > -40, "the message does not carry 1001's tone"
    assert level_db(pcm, rate, TONES["1002"]) < level_db(pcm, rate, TONES["1001"]) - 20


def test_the_mailbox_owner_gets_message_waiting(farm: Farm, deposit: Deposit) -> None:
    def waiting() -> list[dict[str, Any]]:
        return [e for e in farm.callee.saw("MWI_NOTIFY") if "messages-waiting: yes" in str(e.get("param")).lower()]

    events = wait_for(waiting, 30, f"1002's phone to be told a message waits (log: {farm.callee.log_path})")
    assert "1/0" in str(events[-1].get("param")), events[-1]  # one new, none saved
    assert farm.fs1.esl.api("vm_boxcount 1002@acme.test").strip() == "1"


def test_the_node_still_stops_cleanly_after_voicemail_and_mwi(farm: Farm, deposit: Deposit) -> None:
    """A leaked sofia profile lock (MWI for a domain that is no profile alias) made FreeSWITCH hang on exit."""
    stopping = [threading.Thread(target=phone.stop) for phone in (farm.caller, farm.callee)]
    for thread in stopping:  # side by side: each baresip waits for its MWI unsubscribe before it exits
        thread.start()
    for thread in stopping:
        thread.join()
    assert farm.fs1.process is not None
    farm.fs1.stop()  # SIGTERM, then SIGKILL only if it has not exited after 20 s
    assert farm.fs1.process.returncode != -9, "FreeSWITCH hung on shutdown and had to be killed"
