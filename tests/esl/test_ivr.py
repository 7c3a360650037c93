"""The IVR server against the recorded outbound socket, and scripts that fail in every way."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from esl_support import recording

from controller import provisioning
from controller.database import Database
from esl_workers.ivr import IvrConfig, serve_ivr
from esl_workers.protocol import FrameReader

OUTBOUND = recording("outbound-ivr-dtmf.jsonl")
CONNECT_REPLY = OUTBOUND[1]["data"].encode()
CALL_UUID = "3713aaad-d550-4f90-844b-63b2c98f49f7"

DIGITS_DEMO = """
import logging
from esl_workers.ivr import ivr

log = logging.getLogger("ivr.demo")

@ivr("digits-demo")
def demo(session):
    pressed = []
    session.on_dtmf(pressed.append)
    session.answer()
    digits = session.play_and_get_digits("tone_stream://%(300,200,600)", min_digits=1, max_digits=4, tries=2,
                                         timeout_ms=6000, terminators="#", invalid="silence_stream://250",
                                         var="ivr_digits", regex="\\\\d+", digit_timeout_ms=3000)
    log.info("call %s got digits %s, keys %s", session.uuid, digits, "".join(pressed))
    session.playback("tone_stream://%(500,0,400)")
"""


def write_script(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 1))  # a rewrite within the same second still counts
    return path


def read_exactly(sock: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            break
        data += more
    return data


def replay_recorded_call(port: int) -> list[tuple[bytes, bytes]]:
    """Play FreeSWITCH's side of the recorded call; return (expected, received) for each of our writes."""
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    compared = []
    try:
        for rec in OUTBOUND:
            data = rec["data"].encode()
            if rec["dir"] == "recv":
                sock.sendall(data)
            else:
                compared.append((data, read_exactly(sock, len(data))))
    finally:
        sock.close()
    return compared


def scripted_call(port: int, connect_reply: bytes = CONNECT_REPLY) -> list[str]:
    """A FreeSWITCH that completes every app at once; returns the commands our server sent."""
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    sent: list[str] = []
    buf = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return sent
            buf += chunk
            while b"\n\n" in buf:
                raw, buf = buf.split(b"\n\n", 1)
                cmd = raw.decode()
                sent.append(cmd)
                if cmd == "connect":
                    sock.sendall(connect_reply)
                elif cmd.startswith("api uuid_getvar"):
                    body = b"_undef_"
                    sock.sendall(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body))
                elif cmd == "exit":  # what FreeSWITCH's listener does: reply, say goodbye, close
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
                    sock.sendall(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
                    return sent
                elif "call-command: hangup" in cmd:
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
                    sock.sendall(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
                    return sent
                else:
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
                    app = next(
                        (line.split(": ", 1)[1] for line in cmd.split("\n") if line.startswith("execute-app-name: ")),
                        "",
                    )
                    if app:
                        body = (
                            f"Event-Name: CHANNEL_EXECUTE_COMPLETE\nUnique-ID: {CALL_UUID}\nApplication: {app}\n\n"
                        ).encode()
                        sock.sendall(b"Content-Length: %d\nContent-Type: text/event-plain\n\n%s" % (len(body), body))
    finally:
        sock.close()


@pytest.fixture
def ivr_db(db: Database) -> Database:
    provisioning.add_tenant(db, {"domain": "acme.test"})
    provisioning.add_child(db, "ivrs", "acme.test", {"name": "digits-demo", "extension": "5000"})
    provisioning.add_child(db, "ivrs", "acme.test", {"name": "fine"})  # the channel may name only its tenant's IVRs
    return db


def start(db: Database | None, scripts: Path, **config: Any) -> Any:
    return serve_ivr(db, None, scripts, host="127.0.0.1", port=0, config=IvrConfig(**config))


def test_recorded_call_is_driven_byte_for_byte(
    ivr_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_script(tmp_path, "demo.py", DIGITS_DEMO)
    server = start(ivr_db, tmp_path)
    try:
        with caplog.at_level(logging.INFO):
            compared = replay_recorded_call(server.port)
            gevent.sleep(0.05)
    finally:
        server.stop()
    assert [got for _, got in compared] == [want for want, _ in compared]
    assert len(compared) == 8  # connect, myevents, linger, answer, play_and_get_digits, uuid_getvar, playback, hangup
    assert f"call {CALL_UUID} got digits 123, keys 123#" in caplog.text


def test_connect_reply_without_content_length_is_the_channel_data() -> None:
    frames = FrameReader().feed(CONNECT_REPLY)
    assert len(frames) == 1
    data = frames[0].headers
    assert data["Content-Type"] == "command/reply"
    assert data["Unique-ID"] == CALL_UUID
    assert data["Caller-Destination-Number"] == "5000"
    assert data["variable_current_application_data"] == "127.0.0.1:18084 async full"
    assert data["Reply-Text"] == "+OK\n"


def routed_to(name: str) -> bytes:
    """The recorded connect reply with the dialplan's ``fsfarm_ivr`` variable added."""
    marker = b"Content-Type: command/reply"
    return CONNECT_REPLY.replace(marker, b"variable_fsfarm_ivr: " + name.encode() + b"\n" + marker)


def error_prompt_played(sent: list[str]) -> bool:
    return any(
        "execute-app-name: playback\nexecute-app-arg: ivr/ivr-call_cannot_be_completed_as_dialed.wav" in c for c in sent
    )


def test_script_that_raises_ends_only_its_call(
    ivr_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_script(
        tmp_path,
        "broken.py",
        """
        from esl_workers.ivr import ivr

        @ivr("digits-demo")
        def broken(session):
            session.answer()
            1 / 0
    """,
    )
    write_script(
        tmp_path,
        "fine.py",
        """
        from esl_workers.ivr import ivr

        @ivr("fine")
        def fine(session):
            session.answer()
            session.playback("ivr/fine.wav")
    """,
    )
    fine_reply = routed_to("fine")
    server = start(ivr_db, tmp_path)
    try:
        with caplog.at_level(logging.INFO):
            bad, good = gevent.spawn(scripted_call, server.port), gevent.spawn(scripted_call, server.port, fine_reply)
            gevent.joinall([bad, good], raise_error=True)
    finally:
        server.stop()
    assert error_prompt_played(bad.value)
    assert bad.value[-1] == "sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_TEMPORARY_FAILURE"
    assert not error_prompt_played(good.value)
    assert "execute-app-arg: ivr/fine.wav" in "".join(good.value)
    assert good.value[-1] == "sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING"
    failure = [r for r in caplog.records if "failed" in r.getMessage() and CALL_UUID in r.getMessage()]
    assert failure and failure[0].exc_info and failure[0].exc_info[0] is ZeroDivisionError


def test_syntax_error_is_logged_and_other_scripts_keep_working(
    ivr_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_script(tmp_path, "typo.py", "from esl_workers.ivr import ivr\n@ivr('digits-demo')\ndef f(session)\n  pass\n")
    write_script(
        tmp_path,
        "fine.py",
        """
        from esl_workers.ivr import ivr

        @ivr("fine")
        def fine(session):
            session.answer()
    """,
    )
    fine_reply = routed_to("fine")
    server = start(ivr_db, tmp_path)
    try:
        with caplog.at_level(logging.INFO):
            broken = scripted_call(server.port)
            fine = scripted_call(server.port, fine_reply)
    finally:
        server.stop()
    assert error_prompt_played(broken)
    assert not error_prompt_played(fine)
    assert "typo.py failed to load" in caplog.text and "SyntaxError" in caplog.text


def test_hanging_script_is_stopped_by_the_call_timeout(ivr_db: Database, tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "slow.py",
        """
        import gevent
        from esl_workers.ivr import ivr

        @ivr("digits-demo")
        def slow(session):
            session.answer()
            gevent.sleep(3600)
    """,
    )
    server = start(ivr_db, tmp_path, call_timeout=0.3)
    try:
        sent = scripted_call(server.port)
    finally:
        server.stop()
    assert error_prompt_played(sent)
    assert sent[-1].endswith("hangup-cause: NORMAL_TEMPORARY_FAILURE")


def test_changed_script_serves_the_next_call_without_restart(ivr_db: Database, tmp_path: Path) -> None:
    script = 'from esl_workers.ivr import ivr\n@ivr("digits-demo")\ndef v(session):\n    session.playback("{}")\n'
    write_script(tmp_path, "menu.py", script.format("ivr/v1.wav"))
    server = start(ivr_db, tmp_path)
    try:
        first = scripted_call(server.port)
        write_script(tmp_path, "menu.py", script.format("ivr/v2.wav"))
        second = scripted_call(server.port)
    finally:
        server.stop()
    assert "execute-app-arg: ivr/v1.wav" in "\n".join(first)
    assert "execute-app-arg: ivr/v2.wav" in "\n".join(second)


def test_number_routed_to_an_ivr_runs_it(db: Database, tmp_path: Path) -> None:
    provisioning.add_tenant(db, {"domain": "acme.test"})
    provisioning.add_child(db, "ivrs", "acme.test", {"name": "main-menu", "options": {"greeting": "ivr/acme.wav"}})
    provisioning.add_child(db, "numbers", "acme.test", {"number": "5000", "target_type": "ivr", "target": "main-menu"})
    write_script(
        tmp_path,
        "menu.py",
        """
        from esl_workers.ivr import ivr

        @ivr("main-menu")
        def menu(session):
            session.playback(session.options["greeting"])
    """,
    )
    server = start(db, tmp_path)
    try:
        sent = scripted_call(server.port)
    finally:
        server.stop()
    assert "execute-app-arg: ivr/acme.wav" in "\n".join(sent)
    assert not error_prompt_played(sent)


def test_transferred_call_is_released_not_hung_up(ivr_db: Database, tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "menu.py",
        """
        from esl_workers.ivr import ivr

        @ivr("digits-demo")
        def menu(session):
            session.answer()
            session.transfer("1002")
            session.playback("ivr/never.wav")  # the call is no longer the script's: CallEnded
    """,
    )
    server = start(ivr_db, tmp_path)
    try:
        sent = scripted_call(server.port)
    finally:
        server.stop()
    assert "execute-app-name: transfer\nexecute-app-arg: 1002 XML acme.test" in sent[-2]
    assert sent[-1] == "exit"
    assert not any("hangup" in c or "never.wav" in c for c in sent)


def test_shipped_examples_load() -> None:
    from esl_workers.ivr.loader import ScriptLibrary

    library = ScriptLibrary(Path(__file__).parents[2] / "esl_workers" / "examples")
    assert library.names() == ["conference-pin", "main-menu"]
    assert all(not f.error for f in library.files.values())
