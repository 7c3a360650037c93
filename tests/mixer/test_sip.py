"""SDP offer/answer and the SIP UAS, driven with datagrams (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer_ext.codecs import get_spec
from mixer_ext.sdp import NoCommonCodec, SdpError, build_answer, choose, parse_offer
from mixer_ext.sip import Leg, SipUas, parse_sip

# What FreeSWITCH 1.10 offers on a bridged leg (trimmed to the lines that matter).
FS_OFFER = """v=0\r
o=FreeSWITCH 1700000000 1700000001 IN IP4 127.0.0.1\r
s=FreeSWITCH\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 24000 RTP/AVP 0 102 9 8 101 13\r
a=rtpmap:102 opus/48000/2\r
a=fmtp:102 useinbandfec=1; maxplaybackrate=48000\r
a=rtpmap:9 G722/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=sendrecv\r
"""


# A real offer FreeSWITCH 1.10 sent on a bridged leg (from the shared ESL fixtures).
FS_REAL_OFFER = (
    "v=0\r\no=FreeSWITCH 1795245127 1795245128 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 20992 RTP/AVP 0 8 102 101 13 103 104\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:102 opus/48000/2\r\na=fmtp:102 useinbandfec=0; cbr=1; "
    "maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40; stereo=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtpmap:103 telephone-event/48000\r\n"
    "a=fmtp:103 0-15\r\na=rtpmap:13 CN/8000\r\na=rtpmap:104 CN/48000\r\na=ptime:20\r\na=sendrecv\r\n"
)


@pytest.mark.parametrize(
    ("rate", "codec", "dtmf"),
    [
        (8000, "PCMU", (101, 8000)),
        (16000, "opus", (103, 48000)),
        (48000, "opus", (103, 48000)),
    ],
)
def test_real_freeswitch_offer_gets_codec_and_matching_event_clock(
    rate: int, codec: str, dtmf: tuple[int, int]
) -> None:
    choice = choose(parse_offer(FS_REAL_OFFER), rate)
    assert choice.codec.name == codec
    assert (choice.dtmf_payload_type, choice.dtmf_clock_rate) == dtmf
    answer = build_answer(choice, "127.0.0.1", 4000, 1, 1)
    assert f"a=rtpmap:{dtmf[0]} telephone-event/{dtmf[1]}" in answer
    assert "CN" not in answer  # no comfort noise negotiated, so none is sent to us


def test_parse_freeswitch_offer() -> None:
    offer = parse_offer(FS_OFFER)
    assert (offer.address, offer.port) == ("127.0.0.1", 24000)
    assert [f.name for f in offer.formats] == ["PCMU", "opus", "G722", "PCMA", "telephone-event"]
    assert offer.session_version == 1700000001


@pytest.mark.parametrize(
    ("rate", "codec", "pt"),
    [
        (8000, "PCMU", 0),  # nothing above 4 kHz in the room: the offerer's first choice wins
        (16000, "opus", 102),  # the first offered codec that carries 16 kHz
        (48000, "opus", 102),
    ],
)
def test_best_common_codec_for_the_room_rate(rate: int, codec: str, pt: int) -> None:
    choice = choose(parse_offer(FS_OFFER), rate)
    assert (choice.codec.name, choice.payload_type, choice.dtmf_payload_type) == (codec, pt, 101)


def test_wideband_preferred_over_narrowband_in_hd_room_when_opus_absent() -> None:
    offer = parse_offer(FS_OFFER.replace("RTP/AVP 0 102 9 8 101 13", "RTP/AVP 0 8 9"))
    assert choose(offer, 16000).codec.name == "G722"
    assert choose(offer, 8000).codec.name == "PCMU"


def test_narrowband_only_caller_still_joins_an_hd_room() -> None:
    offer = parse_offer(FS_OFFER.replace("0 102 9 8 101 13", "8"))
    assert choose(offer, 48000).codec.name == "PCMA"


def test_no_common_codec() -> None:
    offer = parse_offer(FS_OFFER.replace("0 102 9 8 101 13", "3 18").replace("opus", "GSM"))
    with pytest.raises(NoCommonCodec):
        choose(offer, 16000)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "v=0\r\n",
        "v=0\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 1.2.3.4\r\n",
        "v=0\r\nm=audio x RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n",
        "v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
    ],
)
def test_unusable_sdp_is_an_error(body: str) -> None:
    with pytest.raises(SdpError):
        parse_offer(body)


def test_answer_names_the_choice_and_telephone_event() -> None:
    choice = choose(parse_offer(FS_OFFER), 16000)
    answer = parse_offer(build_answer(choice, "127.0.0.1", 30000, 1, 1))
    assert (answer.port, [f.payload_type for f in answer.formats]) == (30000, [102, 101])
    assert answer.formats[0].name == "opus" and answer.formats[0].channels == 2


class FakeConference:
    def __init__(self) -> None:
        self.rooms = {"42": 16000}
        self.joined: list[Leg] = []
        self.updated: list[Leg] = []
        self.left: list[str] = []

    def room_rate(self, room_id: str) -> int | None:
        return self.rooms.get(room_id)

    def media_address(self) -> tuple[str, int]:
        return "127.0.0.1", 40000

    def join(self, leg: Leg) -> None:
        self.joined.append(leg)

    def update(self, leg: Leg) -> None:
        self.updated.append(leg)

    def leave(self, call_id: str, reason: str) -> None:
        self.left.append(call_id)


SRC = ("127.0.0.1", 5062)


def invite(
    room: str = "42", body: str = FS_OFFER, call_id: str = "abc@host", to_tag: str = "", cseq: int = 1, drop: str = ""
) -> bytes:
    headers = {
        "Via": "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1",
        "From": "<sip:fs@127.0.0.1>;tag=fs1",
        "To": f"<sip:room-{room}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID": call_id,
        "CSeq": f"{cseq} INVITE",
        "Contact": "<sip:fs@127.0.0.1:5062>",
        "Content-Type": "application/sdp",
    }
    headers.pop(drop, None)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"INVITE sip:room-{room}@127.0.0.1:5090 SIP/2.0\r\n{head}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def simple(method: str, call_id: str = "abc@host", cseq: int = 2, to_tag: str = "") -> bytes:
    to = "<sip:room-42@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:room-42@127.0.0.1:5090 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK2\r\n"
        f"From: <sip:fs@127.0.0.1>;tag=fs1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def uas() -> SipUas:
    return SipUas(FakeConference(), "127.0.0.1", 5090)  # type: ignore[arg-type]


def reply(uas: SipUas, data: bytes) -> object:
    out = uas.handle(data, SRC)
    assert len(out) == 1 and out[0][1] == SRC
    return parse_sip(out[0][0])


def test_invite_joins_the_room_and_answers_with_sdp(uas: SipUas) -> None:
    resp = reply(uas, invite())
    assert resp.status == 200  # type: ignore[attr-defined]
    answer = parse_offer(resp.body)  # type: ignore[attr-defined]
    assert answer.port == 40000 and answer.formats[0].name == "opus"
    conf: FakeConference = uas.conference  # type: ignore[assignment]
    assert conf.joined[0].room_id == "42" and conf.joined[0].remote_media == ("127.0.0.1", 24000)
    assert "tag=" in resp.get("to")  # type: ignore[attr-defined]


def test_retransmitted_invite_gets_the_same_answer_and_joins_once(uas: SipUas) -> None:
    first = uas.handle(invite(), SRC)
    second = uas.handle(invite(), SRC)
    assert first == second
    assert len(uas.conference.joined) == 1  # type: ignore[attr-defined]


def test_unknown_room_is_404(uas: SipUas) -> None:
    assert reply(uas, invite(room="nope")).status == 404  # type: ignore[attr-defined]


def test_no_common_codec_is_488(uas: SipUas) -> None:
    body = FS_OFFER.replace("0 102 9 8 101 13", "3 18").replace("opus", "GSM")
    resp = reply(uas, invite(body=body))
    assert resp.status == 488  # type: ignore[attr-defined]
    assert uas.conference.joined == [] and uas.counters["no_common_codec"] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("header", ["Call-ID", "From", "To", "CSeq"])
def test_missing_mandatory_header_is_400(uas: SipUas, header: str) -> None:
    resp = reply(uas, invite(drop=header))
    assert resp.status == 400  # type: ignore[attr-defined]
    assert uas.counters["bad_request"] == 1 and uas.conference.joined == []  # type: ignore[attr-defined]


def test_no_via_means_no_reply_but_no_crash(uas: SipUas) -> None:
    assert uas.handle(invite(drop="Via"), SRC) == []
    assert uas.counters["bad_request"] == 1


@pytest.mark.parametrize("garbage", [b"", b"\xff\xfe\x00garbage", b"HELLO", b"INVITE sip:x SIP/2.0\r\nnocolon\r\n\r\n"])
def test_garbage_on_the_sip_port_is_counted_and_ignored(uas: SipUas, garbage: bytes) -> None:
    assert uas.handle(garbage, SRC) == []
    assert uas.counters["garbage"] == 1


def test_options_is_answered(uas: SipUas) -> None:
    resp = reply(uas, simple("OPTIONS", call_id="ping"))
    assert resp.status == 200 and "INVITE" in resp.get("allow")  # type: ignore[attr-defined]


def test_bye_leaves_and_unknown_bye_is_481(uas: SipUas) -> None:
    tag = parse_sip(uas.handle(invite(), SRC)[0][0]).get("to").split("tag=")[1]
    assert reply(uas, simple("BYE", to_tag=tag)).status == 200  # type: ignore[attr-defined]
    assert uas.conference.left == ["abc@host"]  # type: ignore[attr-defined]
    assert reply(uas, simple("BYE", call_id="other", to_tag=tag)).status == 481  # type: ignore[attr-defined]


def test_reinvite_moves_media_and_can_change_codec(uas: SipUas) -> None:
    tag = parse_sip(uas.handle(invite(), SRC)[0][0]).get("to").split("tag=")[1]
    moved = FS_OFFER.replace("24000", "26000").replace("0 102 9 8 101 13", "9 101")
    resp = reply(uas, invite(body=moved, to_tag=tag, cseq=2))
    assert resp.status == 200  # type: ignore[attr-defined]
    conf: FakeConference = uas.conference  # type: ignore[assignment]
    assert conf.updated[0].remote_media == ("127.0.0.1", 26000)
    assert conf.updated[0].choice.codec == get_spec("G722")
    assert len(conf.joined) == 1


def test_session_refresh_without_sdp_gets_the_current_stream(uas: SipUas) -> None:
    tag = parse_sip(uas.handle(invite(), SRC)[0][0]).get("to").split("tag=")[1]
    resp = reply(uas, invite(body="", to_tag=tag, cseq=2))
    assert resp.status == 200  # type: ignore[attr-defined]
    assert parse_offer(resp.body).formats[0].name == "opus"  # type: ignore[attr-defined]
    assert uas.conference.updated == [] and "abc@host" in uas.legs  # type: ignore[attr-defined]


def test_record_route_is_echoed_and_followed_by_our_bye(uas: SipUas) -> None:
    data = invite().replace(b"Contact:", b"Record-Route: <sip:10.0.0.1;lr>\r\nContact:")
    resp = reply(uas, data)
    assert resp.get("record-route") == "<sip:10.0.0.1;lr>"  # type: ignore[attr-defined]
    bye = parse_sip(uas.bye("abc@host")[0])  # type: ignore[index]
    assert bye.get("route") == "<sip:10.0.0.1;lr>"


def test_failed_reinvite_keeps_the_call(uas: SipUas) -> None:
    tag = parse_sip(uas.handle(invite(), SRC)[0][0]).get("to").split("tag=")[1]
    resp = reply(uas, invite(body=FS_OFFER.replace("0 102 9 8 101 13", "3"), to_tag=tag, cseq=2))
    assert resp.status == 488  # type: ignore[attr-defined]
    assert "abc@host" in uas.legs and uas.conference.updated == []  # type: ignore[attr-defined]


def test_unknown_method_is_405(uas: SipUas) -> None:
    assert reply(uas, simple("SUBSCRIBE")).status == 405  # type: ignore[attr-defined]
    assert reply(uas, simple("XYZZY")).status == 405  # type: ignore[attr-defined]
    assert uas.counters["other_method"] == 2 and "xyzzy" not in uas.counters


def test_kick_builds_an_in_dialog_bye(uas: SipUas) -> None:
    uas.handle(invite(), SRC)
    data, dest = uas.bye("abc@host")  # type: ignore[misc]
    bye = parse_sip(data)
    assert bye.method == "BYE" and bye.uri == "sip:fs@127.0.0.1:5062" and dest == SRC
    assert bye.get("call-id") == "abc@host" and "fs1" in bye.get("to") and bye.get("cseq").endswith("BYE")
    assert uas.bye("abc@host") is None


def test_new_dialog_on_a_live_call_id_is_refused(uas: SipUas) -> None:
    uas.handle(invite(), SRC)
    resp = reply(uas, invite(cseq=5))
    assert resp.status == 400  # type: ignore[attr-defined]
    assert len(uas.conference.joined) == 1  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_datagrams_never_crash_the_uas(data: bytes) -> None:
    uas = SipUas(FakeConference(), "127.0.0.1", 5090)  # type: ignore[arg-type]
    for out, _ in uas.handle(data, SRC):
        assert parse_sip(out).status in (400, 404, 405, 481, 488, 200)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 400), flip=st.integers(0, 399), byte=st.integers(0, 255))
def test_mangled_invites_never_crash_the_uas(cut: int, flip: int, byte: int) -> None:
    data = bytearray(invite())
    if flip < len(data):
        data[flip] = byte
    uas = SipUas(FakeConference(), "127.0.0.1", 5090)  # type: ignore[arg-type]
    uas.handle(bytes(data[: len(data) - cut]), SRC)
