"""A real SIP phone (baresip) calls into an HD room and talks with a Python test phone."""

from __future__ import annotations

import glob
import json
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from mixer_testkit import DTMF, LOCAL, Swarm, level_db

from mixer_ext.engine import Mixer
from mixer_ext.rtp import parse_event

pytestmark = pytest.mark.skipif(
    shutil.which("baresip") is None, reason="baresip is not on PATH (Debian package baresip-core)"
)
BARESIP_TONE = 440.0
MODULES = "/usr/lib/baresip/modules"


def free_port_pair() -> int:
    """A UDP/TCP port p with p+1 also free (baresip binds SIP on p and TLS on p+1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOCAL, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((LOCAL, port))
                b.bind((LOCAL, port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]


def ctrl(sock: socket.socket, command: str, params: str = "") -> None:
    """One ctrl_tcp command as a netstring of JSON."""
    body = json.dumps({"command": command, "params": params, "token": command}).encode()
    sock.sendall(str(len(body)).encode() + b":" + body + b",")


def read_wav(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[:: w.getnchannels()]
        return pcm, w.getframerate()


def test_baresip_call_hears_is_heard_and_its_dtmf_passes_in_an_hd_room(
    tmp_path: Path, mixer: Mixer, swarm: Swarm
) -> None:
    mixer.create_room("bs", 16000)
    phone = swarm.add(1000, "G722", dtmf=True)
    assert phone.invite((LOCAL, mixer.sip_port), "bs")[0] == 200
    sip_port, ctrl_port = free_port_pair(), free_tcp_port()
    (tmp_path / "rec").mkdir()
    (tmp_path / "accounts").write_text("<sip:tester@127.0.0.1>;regint=0;answermode=auto\n")
    # ausine only runs at 48 kHz stereo; baresip resamples to the codec. sndfile records what it hears.
    (tmp_path / "config").write_text(f"""poll_method epoll
sip_listen {LOCAL}:{sip_port}
net_interface {LOCAL}
audio_player aubridge,fsfarm
audio_alert aubridge,fsfarm
audio_source ausine,{int(BARESIP_TONE)}
ausrc_srate 48000
ausrc_channels 2
module_path {MODULES}
module account.so
module menu.so
module g711.so
module g722.so
module ausine.so
module aubridge.so
module sndfile.so
module_app ctrl_tcp.so
ctrl_tcp_listen {LOCAL}:{ctrl_port}
snd_path {tmp_path / "rec"}
""")
    log = (tmp_path / "baresip.log").open("w")
    proc = subprocess.Popen(
        ["baresip", "-f", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                control = socket.create_connection((LOCAL, ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"baresip did not start: {(tmp_path / 'baresip.log').read_text()[-2000:]}")
                time.sleep(0.1)
        with control:
            ctrl(control, "dial", f"sip:room-bs@{LOCAL}:{mixer.sip_port}")
            swarm.run(0.5)
            people = mixer.describe_room("bs")["participants"]
            assert len(people) == 2, (tmp_path / "baresip.log").read_text()[-2000:]
            phone.clear()
            swarm.run(1.0)
            ctrl(control, "sndcode", "5")  # an RFC 4733 digit from the real phone
            swarm.run(1.0)
            ctrl(control, "hangup")
            time.sleep(0.3)
        # The Python phone hears baresip's sine, and not its own tone.
        heard = phone.heard()
        assert level_db(heard, 16000, BARESIP_TONE) > -35
        assert level_db(heard, 16000, 1000) < level_db(heard, 16000, BARESIP_TONE) - 40
        # The digit reached the other participant as telephone-events on its own payload type.
        digits = {parse_event(pl).event for pt, _, _, pl in phone.received if pt == DTMF.payload_type}
        assert digits == {5}
        # baresip decoded the Python phone's tone (G.722, 16 kHz) and not its own.
        (dec,) = glob.glob(str(tmp_path / "rec" / "*-dec.wav"))
        pcm, rate = read_wav(dec)
        pcm = pcm[rate // 2 :]
        assert rate == 16000
        assert level_db(pcm, rate, 1000) > -35
        assert level_db(pcm, rate, BARESIP_TONE) < level_db(pcm, rate, 1000) - 40
        # Its BYE took it out of the room.
        assert [p["call_id"] for p in mixer.describe_room("bs")["participants"]] == [phone.call_id]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
