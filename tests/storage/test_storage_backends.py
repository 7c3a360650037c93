"""The storage interface behaves the same on the local directory and on GlusterFS."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from controller.errors import Invalid, NotFound, Unavailable
from controller.storage import TenantFiles, open_storage, parse_spec
from controller.storage.gluster import GlusterStorage
from controller.storage.local import LocalStorage
from controller.storage.paths import check_relative

BAD_PATHS = [
    "../other-tenant/prompts/x.wav",
    "a/../../b.wav",
    "/etc/passwd",
    "a\\..\\b.wav",
    "a\x00.wav",
    "",
    "a//b.wav",
    "./a.wav",
    "C:/x.wav",
    ".hidden.wav",
    "a/.fsfarm-tmp-1",
]


def test_put_is_read_back_by_another_client(backend: Any) -> None:
    files = TenantFiles(backend.storage, uuid.uuid4())
    data = bytes(range(256)) * 5000  # over one 1 MiB write chunk
    info = files.put("prompts", "ivr/main-menu.wav", data)
    assert (info.path, info.size) == ("ivr/main-menu.wav", len(data))
    assert backend.read_directly(f"{files.tenant_id}/prompts/ivr/main-menu.wav") == data
    assert files.get("prompts", "ivr/main-menu.wav") == data
    assert files.exists("prompts", "ivr/main-menu.wav")
    assert files.stat("prompts", "ivr/main-menu.wav").size == len(data)


def test_put_replaces_whole_file_and_leaves_no_temp_files(backend: Any) -> None:
    files = TenantFiles(backend.storage, uuid.uuid4())
    files.put("prompts", "a.wav", b"first version, longer than the second")
    files.put("prompts", "a.wav", b"second")
    assert files.get("prompts", "a.wav") == b"second"
    assert [i.path for i in files.list("prompts")] == ["a.wav"]


def test_list_is_recursive_sorted_and_per_area(backend: Any) -> None:
    files = TenantFiles(backend.storage, uuid.uuid4())
    for path in ("b.wav", "a/z.wav", "a/b.wav"):
        files.put("prompts", path, b"x")
    files.put("recordings", "room-3000/r1.wav", b"rec")
    assert [i.path for i in files.list("prompts")] == ["a/b.wav", "a/z.wav", "b.wav"]
    assert [i.path for i in files.list("prompts", "a")] == ["a/b.wav", "a/z.wav"]
    assert [i.path for i in files.list("recordings")] == ["room-3000/r1.wav"]
    assert files.list("voicemail") == []


def test_delete_and_missing_files(backend: Any) -> None:
    files = TenantFiles(backend.storage, uuid.uuid4())
    files.put("prompts", "gone.wav", b"x")
    assert files.delete("prompts", "gone.wav") is True
    assert files.delete("prompts", "gone.wav") is False
    assert not files.exists("prompts", "gone.wav")
    assert backend.read_directly(f"{files.tenant_id}/prompts/gone.wav") is None
    with pytest.raises(NotFound):
        files.get("prompts", "gone.wav")
    with pytest.raises(NotFound):
        files.stat("prompts", "gone.wav")
    with pytest.raises(NotFound):
        files.get("prompts", "nothing-here.wav")


def test_a_tenant_never_sees_another_tenants_files(backend: Any) -> None:
    a, b = TenantFiles(backend.storage, uuid.uuid4()), TenantFiles(backend.storage, uuid.uuid4())
    a.put("voicemail", "1001/msg.wav", b"secret")
    assert b.list("voicemail") == []
    assert not b.exists("voicemail", "1001/msg.wav")
    with pytest.raises(NotFound):
        b.get("voicemail", "1001/msg.wav")
    with pytest.raises(Invalid):
        b.get("voicemail", f"../../{a.tenant_id}/voicemail/1001/msg.wav")


class Spy:
    """A backend that records every call: path checks must refuse before it is reached."""

    description = "spy"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> Any:
            self.calls.append(name)
            return []

        return record


@pytest.mark.parametrize("path", BAD_PATHS)
def test_path_tricks_are_refused_before_the_backend(path: str) -> None:
    spy = Spy()
    files = TenantFiles(spy, uuid.uuid4())  # type: ignore[arg-type]
    for call in (
        lambda: files.put("prompts", path, b"x"),
        lambda: files.get("prompts", path),
        lambda: files.delete("prompts", path),
        lambda: files.list("prompts", path or ".."),
    ):
        with pytest.raises(Invalid):
            call()
    assert spy.calls == []


@pytest.mark.parametrize("path", BAD_PATHS)
def test_backends_refuse_bad_keys_themselves(backend: Any, path: str) -> None:
    with pytest.raises(Invalid):
        backend.storage.put(f"{uuid.uuid4()}/prompts/{path}" if path else "", b"x")


def test_unreachable_storage_is_unavailable_and_writes_nothing(unreachable: Any) -> None:
    files = TenantFiles(unreachable, uuid.uuid4())
    with pytest.raises(Unavailable) as caught:
        files.put("prompts", "a.wav", b"x")
    assert "storage" in caught.value.message


def test_configuration_picks_the_backend(tmp_path: Any) -> None:
    assert isinstance(open_storage(None, tmp_path), LocalStorage)
    assert open_storage(None, tmp_path).description == f"local:{tmp_path / 'storage'}"
    assert isinstance(open_storage("local:/srv/fsfarm", tmp_path), LocalStorage)
    gluster = open_storage("gluster://gfs1.example:24008/fsfarm", tmp_path)
    assert isinstance(gluster, GlusterStorage)
    assert (gluster.host, gluster.port, gluster.volume) == ("gfs1.example", 24008, "fsfarm")
    assert parse_spec("gluster://gfs1/fsfarm").port == 24007
    for bad in ("local:relative/path", "nfs://x/y", "gluster://host", "gluster://h:99999/v", "s3://b"):
        with pytest.raises(Invalid):
            parse_spec(bad)
    v6 = parse_spec("gluster://[2001:db8::5]:24010/v")
    assert (v6.host, v6.port, parse_spec("gluster://[2001:db8::5]/v").port) == ("2001:db8::5", 24010, 24007)
    with pytest.raises(Invalid, match="FSFARM_STORAGE: the port must be a number from 1 to 65535"):
        parse_spec("gluster://h:99999/v")


def test_relative_paths_that_are_fine() -> None:
    for ok in ("a.wav", "ivr/main-menu.wav", "1001/2c4e.wav", "room-3000/2024-05-01T10-00-00.wav"):
        assert check_relative(ok) == ok
