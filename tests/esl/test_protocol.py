"""ESL framing and event parsing on the bytes a real FreeSWITCH 1.10.12 sent."""

from __future__ import annotations

import json
import random

import pytest
from esl_support import recording

from esl_workers.protocol import EventError, FrameReader, ProtocolError, parse_event, parse_plain_event


def stream(name: str) -> bytes:
    return b"".join(r["data"].encode() for r in recording(name) if r["dir"] == "recv")


def frames_of(data: bytes, cuts: int = 1) -> list:
    reader, frames, pos = FrameReader(), [], 0
    rng = random.Random(cuts)
    while pos < len(data):
        step = rng.randint(1, 3000) if cuts > 1 else len(data)
        frames += reader.feed(data[pos : pos + step])
        pos += step
    assert reader.buffered == 0
    return frames


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_frames_survive_any_tcp_cut(seed: int) -> None:
    data = stream("inbound-json-events.jsonl")
    whole = frames_of(data)
    assert frames_of(data, cuts=seed) == whole
    assert [f.content_type for f in whole].count("text/event-json") == 66


def test_background_job_body_is_cut_by_its_own_length() -> None:
    events = [
        parse_event(f)
        for f in frames_of(stream("inbound-plain-all-events.jsonl"))
        if f.content_type == "text/event-plain"
    ]
    job = next(e for e in events if e.name == "BACKGROUND_JOB")
    assert job.get("Job-UUID") == "7f4db78a-c0a9-4c44-9d7e-3b3c4b0fc001"
    assert job.get("Job-Command") == "status"
    assert "Content-Length" not in job.headers
    assert job.body is not None and job.body.startswith("UP 0 years")
    assert job.body.endswith("Current Stack Size/Max 240K/8192K\n") and len(job.body.encode()) == 371


def test_plain_values_are_decoded_one_by_one() -> None:
    events = [
        parse_event(f)
        for f in frames_of(stream("inbound-plain-all-events.jsonl"))
        if f.content_type == "text/event-plain"
    ]
    api = next(e for e in events if e.name == "API" and e.get("API-Command") == "originate")
    assert api.get("API-Command-Argument") == "loopback/3000/acme.test &park"
    assert api.get("FreeSWITCH-IPv6") == "fd00::2"
    encoded_newline = parse_plain_event("Event-Name: CUSTOM\nReply: line1%0Aline2: x\nNext: y\n\n")
    assert encoded_newline.get("Reply") == "line1\nline2: x" and encoded_newline.get("Next") == "y"


def test_json_events_parse_as_json() -> None:
    events = [
        parse_event(f) for f in frames_of(stream("inbound-json-events.jsonl")) if f.content_type == "text/event-json"
    ]
    reg = next(e for e in events if e.subclass == "sofia::register")
    assert reg.key == "sofia::register"
    assert reg.get("contact") == '"" <sip:1002-0x55e653f03540@127.0.0.1:15080>'
    hangups = [e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE"]
    assert len(hangups) == 7
    assert {e.get("Hangup-Cause") for e in hangups} == {"NORMAL_CLEARING", "NO_ROUTE_DESTINATION"}


def test_api_response_bodies_are_exact() -> None:
    frames = frames_of(stream("inbound-api-commands.jsonl"))
    bodies = [f.body for f in frames if f.content_type == "api/response"]
    regs = json.loads(bodies[3])
    assert [r["reg_user"] for r in regs["rows"]] == ["1001", "1002"]
    assert bodies[-1] == "Reload XML [Success]\n+OK scan complete\n"


@pytest.mark.parametrize(
    "bad",
    [
        b"this is not esl\n\n",
        b"Content-Type: api/response\nContent-Length: banana\n\n",
        b"Content-Type: api/response\nContent-Length: -5\n\n",
        b"Content-Type: api/response\nContent-Length: 99999999999\n\n",
    ],
)
def test_malformed_frames_are_protocol_errors(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameReader().feed(bad)


def test_unreadable_event_bodies_are_event_errors() -> None:
    with pytest.raises(EventError):
        parse_event(FrameReader().feed(b"Content-Length: 5\nContent-Type: text/event-json\n\n{nope")[0])
    with pytest.raises(EventError):
        parse_plain_event("Event-Name: BACKGROUND_JOB\nContent-Length: 50\n\nshort")
