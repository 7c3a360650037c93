"""Prompts, voicemail and recordings through the REST API, on both backends."""

from __future__ import annotations

import io
from typing import Any

import pytest

from controller import provisioning
from controller.storage import TenantFiles
from controller.storage.audio import make_wav
from controller.stores.voicemail_messages import VoicemailMessage
from tests.conftest import AuthedClient


@pytest.fixture
def farm(db: Any) -> dict[str, Any]:
    """Two tenants with a user each, and a tenant-admin token for each."""
    out: dict[str, Any] = {}
    for domain in ("acme.example", "beta.example"):
        tenant = provisioning.add_tenant(db, {"domain": domain})
        provisioning.add_child(db, "users", domain, {"extension": "1001", "password": "long-secret-1"})
        token, _ = provisioning.create_token(db, "tenant-admin", domain)
        out[domain] = tenant
        out[f"{domain}:token"] = token
    return out


@pytest.fixture
def stored(app: Any, backend: Any, farm: dict[str, Any]) -> Any:
    """The app on the backend under test (both, in turn)."""
    app.extensions["fsfarm.storage"] = backend.storage
    return backend


def tenant_client(client: Any, farm: dict[str, Any], domain: str) -> AuthedClient:
    return AuthedClient(client, farm[f"{domain}:token"])


WAV = make_wav(1.5, 16000)


def test_prompt_upload_raw_list_download_delete(admin: Any, farm: dict[str, Any], stored: Any) -> None:
    r = admin.put(
        "/api/v1/tenants/acme.example/prompts/ivr/welcome.wav", data=WAV, headers={"Content-Type": "audio/wav"}
    )
    assert r.status_code == 201, r.json
    assert r.json["name"] == "ivr/welcome.wav" and r.json["rate"] == 16000 and r.json["duration_ms"] == 1500
    # What a FreeSWITCH node reads from its mount of the same volume.
    assert stored.read_directly(f"{farm['acme.example'].id}/prompts/ivr/welcome.wav") == WAV
    assert [p["name"] for p in admin.get("/api/v1/tenants/acme.example/prompts").json] == ["ivr/welcome.wav"]
    got = admin.get("/api/v1/tenants/acme.example/prompts/ivr/welcome.wav")
    assert got.status_code == 200 and got.data == WAV and got.mimetype == "audio/wav"
    assert admin.delete("/api/v1/tenants/acme.example/prompts/ivr/welcome.wav").status_code == 200
    assert admin.get("/api/v1/tenants/acme.example/prompts").json == []
    assert admin.delete("/api/v1/tenants/acme.example/prompts/ivr/welcome.wav").status_code == 404


def test_prompt_upload_multipart_by_a_tenant_admin(client: Any, farm: dict[str, Any], stored: Any) -> None:
    acme = tenant_client(client, farm, "acme.example")
    r = acme.post(
        "/api/v1/tenants/acme.example/prompts",
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(WAV), "hold-music.wav")},
    )
    assert r.status_code == 201, r.json
    assert r.json["name"] == "hold-music.wav"
    r = acme.post(
        "/api/v1/tenants/acme.example/prompts",
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(WAV), "x.wav"), "name": "menus/main"},
    )
    assert r.json["name"] == "menus/main.wav"
    assert [p["name"] for p in acme.get("/api/v1/tenants/acme.example/prompts").json] == [
        "hold-music.wav",
        "menus/main.wav",
    ]


BAD_PROMPTS = [
    ("mp3", b"ID3\x03 this is an mp3", 400, "not a WAV"),
    ("stereo", make_wav(1, 8000, channels=2), 400, "mono"),
    ("44k1", make_wav(1, 44100), 400, "44100 Hz"),
    ("8bit", make_wav(1, 8000, sample_width=1), 400, "16-bit"),
    ("too-long", make_wav(301, 8000), 400, "300 s limit"),
    ("truncated", make_wav(1, 8000)[:-100], 400, "truncated"),
    ("too-big", make_wav(220, 48000), 413, "limit"),  # 21 MB
    ("empty", b"", 400, "empty"),
]


def test_bad_prompts_are_refused_and_nothing_is_stored(admin: Any, farm: dict[str, Any], stored: Any) -> None:
    for case, audio, status, says in BAD_PROMPTS:
        r = admin.put("/api/v1/tenants/acme.example/prompts/bad.wav", data=audio)
        assert (case, r.status_code) == (case, status)
        assert says in r.json["error"], case
    assert admin.get("/api/v1/tenants/acme.example/prompts").json == []


def test_prompt_names_with_path_tricks_are_refused(admin: Any, farm: dict[str, Any]) -> None:
    for name in (
        "..%2F..%2Fetc%2Fpasswd",
        "a%5Cb.wav",
        "%2Fetc%2Fpasswd",
        "a%00b.wav",
        "x/..%2F..%2Fy.wav",
        "menu.mp3",
        "ok/./x.wav",
    ):
        # A leading slash never matches the route at all; everything else is refused by the path check.
        expected = 404 if name.startswith("%2F") else 400
        r = admin.put(f"/api/v1/tenants/acme.example/prompts/{name}", data=WAV)
        assert (name, r.status_code) == (name, expected)
        if expected == 400:
            assert "name" in r.json["error"], name
            assert admin.get(f"/api/v1/tenants/acme.example/prompts/{name}").status_code == 400
    assert admin.get("/api/v1/tenants/acme.example/prompts").json == []


def test_prompts_of_another_tenant_do_not_exist_for_a_tenant_admin(
    client: Any, admin: Any, farm: dict[str, Any], stored: Any
) -> None:
    admin.put("/api/v1/tenants/acme.example/prompts/secret.wav", data=WAV)
    beta = tenant_client(client, farm, "beta.example")
    assert beta.get("/api/v1/tenants/acme.example/prompts").status_code == 404
    assert beta.get("/api/v1/tenants/acme.example/prompts/secret.wav").status_code == 404
    assert beta.put("/api/v1/tenants/acme.example/prompts/x.wav", data=WAV).status_code == 404
    assert beta.get("/api/v1/tenants/beta.example/prompts").json == []


def deposit(api: Any, domain: str = "acme.example", ext: str = "1001", audio: bytes = WAV) -> Any:
    return api.post(
        f"/api/v1/tenants/{domain}/users/{ext}/voicemail?caller_id_number=%2B15551230000&caller_id_name=Bob",
        data=audio,
        headers={"Content-Type": "audio/wav"},
    )


def test_voicemail_deposit_list_download_mark_read_delete(
    admin: Any, client: Any, farm: dict[str, Any], stored: Any
) -> None:
    r = deposit(admin)
    assert r.status_code == 201, r.json
    message = r.json
    assert (message["caller_id_number"], message["duration_ms"], message["read_at"]) == ("+15551230000", 1500, None)
    key = f"{farm['acme.example'].id}/voicemail/1001/{message['id']}.wav"
    assert stored.read_directly(key) == WAV
    acme = tenant_client(client, farm, "acme.example")
    base = "/api/v1/tenants/acme.example/users/1001/voicemail"
    assert [m["id"] for m in acme.get(base).json] == [message["id"]]
    assert acme.get(f"{base}/{message['id']}/audio").data == WAV
    read = acme.post(f"{base}/{message['id']}/read")
    assert read.status_code == 200 and read.json["read_at"] is not None
    assert acme.get(f"{base}/{message['id']}").json["read_at"] == read.json["read_at"]
    assert acme.delete(f"{base}/{message['id']}").status_code == 200
    assert acme.get(base).json == []
    assert stored.read_directly(key) is None
    assert acme.get(f"{base}/{message['id']}/audio").status_code == 404


def test_a_tenant_asking_for_another_tenants_voicemail_gets_404(
    client: Any, admin: Any, farm: dict[str, Any], stored: Any
) -> None:
    message = deposit(admin).json
    beta = tenant_client(client, farm, "beta.example")
    for path in (
        "/api/v1/tenants/acme.example/users/1001/voicemail",
        f"/api/v1/tenants/acme.example/users/1001/voicemail/{message['id']}/audio",
        f"/api/v1/tenants/beta.example/users/1001/voicemail/{message['id']}/audio",
        f"/api/v1/tenants/beta.example/users/1001/voicemail/{message['id']}",
    ):
        assert beta.get(path).status_code == 404, path
    assert beta.delete(f"/api/v1/tenants/beta.example/users/1001/voicemail/{message['id']}").status_code == 404
    assert beta.get("/api/v1/tenants/beta.example/users/1001/voicemail").json == []
    assert len(admin.get("/api/v1/tenants/acme.example/users/1001/voicemail").json) == 1


def test_voicemail_for_an_unknown_user_or_bad_audio_is_refused(admin: Any, farm: dict[str, Any]) -> None:
    assert deposit(admin, ext="4242").status_code == 404
    assert deposit(admin, audio=b"not audio").status_code == 400
    assert admin.get("/api/v1/tenants/acme.example/users/1001/voicemail").json == []
    assert admin.get("/api/v1/tenants/acme.example/users/1001/voicemail/not-a-uuid").status_code == 404


def test_unreachable_storage_answers_503_and_stores_no_metadata(
    app: Any, admin: Any, farm: dict[str, Any], unreachable: Any
) -> None:
    app.extensions["fsfarm.storage"] = unreachable
    for r in (
        deposit(admin),
        admin.put("/api/v1/tenants/acme.example/prompts/a.wav", data=WAV),
        admin.get("/api/v1/tenants/acme.example/prompts"),
    ):
        assert r.status_code == 503
        assert r.is_json and "storage" in r.json["error"]
    assert admin.get("/api/v1/tenants/acme.example/users/1001/voicemail").json == []


def test_a_failed_metadata_write_removes_the_stored_audio(
    admin: Any, farm: dict[str, Any], stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_insert(conn: Any, message: VoicemailMessage) -> VoicemailMessage:
        raise RuntimeError("database went away mid-write")

    monkeypatch.setattr("controller.stores.voicemail_messages.insert", broken_insert)
    assert deposit(admin).status_code == 500
    assert TenantFiles(stored.storage, farm["acme.example"].id).list("voicemail") == []


def test_deleting_while_storage_is_down_keeps_the_message(
    app: Any, admin: Any, farm: dict[str, Any], stored: Any, unreachable: Any
) -> None:
    message = deposit(admin).json
    app.extensions["fsfarm.storage"] = unreachable
    assert admin.delete(f"/api/v1/tenants/acme.example/users/1001/voicemail/{message['id']}").status_code == 503
    app.extensions["fsfarm.storage"] = stored.storage
    assert admin.get(f"/api/v1/tenants/acme.example/users/1001/voicemail/{message['id']}/audio").data == WAV


def test_recordings_written_by_a_node_are_listed_and_downloaded(client: Any, farm: dict[str, Any], stored: Any) -> None:
    # A node writes recordings through its FUSE mount; here straight into the backend.
    TenantFiles(stored.storage, farm["acme.example"].id).put("recordings", "conf-3000/2024-05-01.wav", WAV)
    acme = tenant_client(client, farm, "acme.example")
    listed = acme.get("/api/v1/tenants/acme.example/recordings").json
    assert [r["name"] for r in listed] == ["conf-3000/2024-05-01.wav"]
    assert acme.get("/api/v1/tenants/acme.example/recordings?folder=conf-3000").json == listed
    assert acme.get("/api/v1/tenants/acme.example/recordings/conf-3000/2024-05-01.wav").data == WAV
    beta = tenant_client(client, farm, "beta.example")
    assert beta.get("/api/v1/tenants/acme.example/recordings").status_code == 404
    assert beta.get("/api/v1/tenants/beta.example/recordings").json == []
    assert acme.get("/api/v1/tenants/acme.example/recordings/..%2F..%2Fx.wav").status_code in (400, 404)
