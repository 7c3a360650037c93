"""The control API: every route, its errors as JSON, and room state moving between two mixers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from mixer_testkit import LOCAL, TOKEN, Swarm, control_client

from mixer_ext.engine import Mixer, caller_of


@pytest.fixture
def client(mixer: Mixer) -> Iterator[FlaskClient]:
    yield control_client(mixer)


def call_in(mixer: Mixer, swarm: Swarm, room: str, n: int) -> None:
    for i in range(n):
        assert swarm.add(400 + 100 * i, "PCMU").invite((LOCAL, mixer.sip_port), room)[0] == 200


def test_room_lifecycle(client: FlaskClient) -> None:
    r = client.post("/rooms", json={"room": "r1", "rate": 48000, "loudest_k": 8})
    assert r.status_code == 201 and r.json == {"room": "r1", "rate": 48000, "loudest_k": 8}
    assert client.get("/rooms").json == {"rooms": [{"room": "r1", "rate": 48000, "loudest_k": 8, "participants": 0}]}
    assert client.get("/rooms/r1").json["participants"] == []
    assert client.delete("/rooms/r1").status_code == 204
    assert client.get("/rooms").json == {"rooms": []}


@pytest.mark.parametrize(
    "body",
    [
        {"room": "x", "rate": 44100},
        {"room": "x", "rate": "16000"},
        {"room": "bad id!", "rate": 8000},
        {"room": "x", "rate": 8000, "loudest_k": -1},
        {"rate": 8000},
    ],
)
def test_bad_room_definitions_are_400_json(client: FlaskClient, body: dict) -> None:
    r = client.post("/rooms", json=body)
    assert r.status_code == 400 and set(r.json) == {"error", "detail"}


def test_non_json_body_is_400(client: FlaskClient) -> None:
    r = client.post("/rooms", data="rate=8000", content_type="text/plain")
    assert r.status_code == 400 and "JSON" in r.json["error"]


def test_duplicate_room_is_409(client: FlaskClient) -> None:
    client.post("/rooms", json={"room": "dup", "rate": 8000})
    assert client.post("/rooms", json={"room": "dup", "rate": 8000}).status_code == 409


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/rooms/ghost"),
        ("delete", "/rooms/ghost"),
        ("get", "/rooms/ghost/state"),
        ("get", "/rooms/ghost/participants"),
        ("delete", "/rooms/ghost/participants/p1"),
    ],
)
def test_unknown_room_is_404_json(client: FlaskClient, method: str, path: str) -> None:
    r = getattr(client, method)(path)
    assert r.status_code == 404
    assert r.json == {"error": "no room ghost on this mixer", "detail": {"room": "ghost"}}


def test_unknown_room_patch_is_404_json(client: FlaskClient) -> None:
    r = client.patch("/rooms/ghost/participants/p1", json={"muted": True})
    assert r.status_code == 404 and r.json["detail"] == {"room": "ghost"}


def test_unknown_route_is_json_too(client: FlaskClient) -> None:
    r = client.get("/nothing/here")
    assert r.status_code == 404 and "error" in r.json


def test_participants_mute_deaf_gain_and_kick(client: FlaskClient, mixer: Mixer, swarm: Swarm) -> None:
    client.post("/rooms", json={"room": "p", "rate": 16000})
    call_in(mixer, swarm, "p", 3)
    people = client.get("/rooms/p/participants").json["participants"]
    assert len(people) == 3 and {p["codec"] for p in people} == {"PCMU/8000"}
    assert {p["caller"] for p in people} == {"tester"}  # the user part of each leg's From
    pid = people[0]["id"]
    r = client.patch(f"/rooms/p/participants/{pid}", json={"muted": True, "deaf": True, "gain": 2.0})
    assert r.status_code == 200 and (r.json["muted"], r.json["deaf"], r.json["gain"]) == (True, True, 2.0)
    assert client.patch(f"/rooms/p/participants/{pid}", json={"gain": 99}).status_code == 400
    assert client.patch(f"/rooms/p/participants/{pid}", json={"muted": "yes"}).status_code == 400
    assert client.patch(f"/rooms/p/participants/{pid}", json={"volume": 1}).status_code == 400
    assert client.patch("/rooms/p/participants/nobody", json={"muted": True}).status_code == 404
    assert client.delete(f"/rooms/p/participants/{pid}").status_code == 204
    assert len(client.get("/rooms/p/participants").json["participants"]) == 2


def test_state_export_import_between_two_mixers(mixer_factory: Callable[[], Mixer], swarm: Swarm) -> None:
    a, b = mixer_factory(), mixer_factory()
    ca, cb = control_client(a), control_client(b)
    ca.post("/rooms", json={"room": "hot", "rate": 32000, "loudest_k": 3})
    call_in(a, swarm, "hot", 4)
    pid = ca.get("/rooms/hot/participants").json["participants"][2]["id"]
    ca.patch(f"/rooms/hot/participants/{pid}", json={"muted": True, "gain": 0.25})
    state = ca.get("/rooms/hot/state").json
    assert state["version"] == 1 and state["rate"] == 32000 and len(state["participants"]) == 4
    r = cb.post("/rooms/import", json=state)
    assert r.status_code == 201
    before = {p["id"]: (p["call_id"], p["codec"], p["muted"], p["gain"]) for p in state["participants"]}
    after = {
        p["id"]: (p["call_id"], p["codec"], p["muted"], p["gain"])
        for p in cb.get("/rooms/hot/participants").json["participants"]
    }
    assert after == before
    assert cb.get("/rooms/hot").json["loudest_k"] == 3
    # Importing again is a conflict (the room is live there), and bad state is a 400.
    assert cb.post("/rooms/import", json=state).status_code == 409
    broken = dict(state, room="other", participants=[{"id": "x"}])
    assert cb.post("/rooms/import", json=broken).status_code == 400
    assert cb.post("/rooms/import", json={"version": 99}).status_code == 400
    assert cb.get("/rooms/other").status_code == 404  # a failed import leaves nothing behind


def test_whole_mixer_snapshot_and_stale_state_moves_streams_on(
    mixer_factory: Callable[[], Mixer], swarm: Swarm
) -> None:
    a, b = mixer_factory(), mixer_factory()
    ca, cb = control_client(a), control_client(b)
    for room in ("s1", "s2"):
        ca.post("/rooms", json={"room": room, "rate": 8000})
    call_in(a, swarm, "s1", 2)
    snapshot = ca.get("/state").json["rooms"]
    assert sorted(r["room"] for r in snapshot) == ["s1", "s2"]
    state = next(r for r in snapshot if r["room"] == "s1")
    state["exported_at"] -= 10.0  # the old mixer died ten seconds after this snapshot
    cb.post("/rooms/import", json=state)
    for old in state["participants"]:
        new = b.participant("s1", old["id"])
        assert new.ssrc == old["rtp"]["ssrc"]
        # 10 s is 500 frames: the stream resumes where it would be, not in the past.
        assert (new.sequence - old["rtp"]["sequence"]) & 0xFFFF >= 500
        assert (new.timestamp - old["rtp"]["timestamp"]) & 0xFFFFFFFF >= 500 * 160


def test_healthz_and_metrics(client: FlaskClient, mixer: Mixer, swarm: Swarm) -> None:
    client.post("/rooms", json={"room": "m", "rate": 8000})
    call_in(mixer, swarm, "m", 2)
    swarm.run(0.3)
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json["ok"] is True and h.json["participants"] == 2
    text = client.get("/metrics").get_data(as_text=True)
    for name in (
        "fsfarm_mixer_frame_seconds_bucket",
        "fsfarm_mixer_overruns_total",
        "fsfarm_mixer_participants 2.0",
        "fsfarm_mixer_packets_lost_total",
        "fsfarm_mixer_packets_received_total",
        'fsfarm_mixer_sip_messages_total{kind="invite"} 2.0',
    ):
        assert name in text


def test_healthz_reports_a_stopped_mixer() -> None:
    m = Mixer(LOCAL)  # never started: no media thread
    try:
        assert control_client(m).get("/healthz").status_code == 503
    finally:
        m.stop()


@pytest.mark.parametrize(
    ("header", "caller"),
    [
        ('"1001" <sip:1001@127.0.0.1:5080>;tag=Qx9', "1001"),  # how FreeSWITCH's bridge leg presents the caller
        ("<sip:+15551230000@carrier.example;user=phone>;tag=a", "+15551230000"),
        ("sip:anonymous@anonymous.invalid", "anonymous"),
        ("<sip:example.com>", ""),
        ("", ""),
    ],
)
def test_caller_is_the_user_part_of_the_from(header: str, caller: str) -> None:
    assert caller_of(header) == caller


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
    # Fixed ids: the token is random per process, and parallel workers must collect the same test names.
    ids=["none", "empty", "no-token", "wrong-token", "basic-scheme", "token-plus-one", "no-scheme"],
)
def test_control_requests_without_the_token_are_refused_and_change_nothing(
    mixer: Mixer, authorization: str | None
) -> None:
    client = control_client(mixer)
    if authorization is None:
        del client.environ_base["HTTP_AUTHORIZATION"]
    else:
        client.environ_base["HTTP_AUTHORIZATION"] = authorization
    for method, path, body in [
        ("POST", "/rooms", {"room": "r1", "rate": 8000}),
        ("GET", "/rooms", None),
        ("GET", "/state", None),
        ("POST", "/rooms/import", {"room": "r2", "rate": 8000, "participants": []}),
        ("DELETE", "/rooms/r0", None),
        ("PATCH", "/rooms/r0/participants/p1", {"muted": True}),
        ("GET", "/no/such/route", None),  # unknown routes too: nothing to learn without the token
    ]:
        r = client.open(path, method=method, json=body)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json["error"].startswith("the control API needs Authorization: Bearer")
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert mixer.rooms.keys() == set()


def test_with_the_token_control_works_and_probes_need_none(mixer: Mixer) -> None:
    client = control_client(mixer)
    assert client.post("/rooms", json={"room": "r0", "rate": 8000}).status_code == 201
    assert client.get("/rooms").json["rooms"][0]["room"] == "r0"
    del client.environ_base["HTTP_AUTHORIZATION"]
    assert client.get("/healthz").status_code == 200  # load balancers and the controller's health check
    assert client.get("/metrics").status_code == 200  # Prometheus scrapes without a token
    assert client.get("/rooms").status_code == 401
