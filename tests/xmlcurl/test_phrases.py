"""The languages section: mod_voicemail's phrase macros, one per fetch, playing the farm's generated prompts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from xmlcurl_support import is_not_found, parse_answer, pick, post

from controller.storage import sounds
from xmlcurl import phrases
from xmlcurl.web import service

MOUNT = "/srv/fsfarm-shared"


@pytest.fixture
def mounted(app: Any) -> Any:
    """The endpoint as a controller with ``FSFARM_SHARED_MOUNT`` set runs it."""
    svc = service(app)
    svc.options = dataclasses.replace(svc.options, shared_mount=MOUNT)
    svc.cache.clear()
    return app


def languages_fetch(recorded: Any, node: str = "vm", **fields: str | None) -> str:
    """What switch_ivr_phrase_macro sends: section languages, lang and macro_name, plus the channel's data."""
    base = pick(recorded, "dialplan acme.test 1002")
    values: dict[str, str | None] = {
        "section": "languages",
        "tag_name": "",
        "key_name": "",
        "key_value": "",
        "hostname": node,
        "FreeSWITCH-Switchname": node,
        "lang": "en",
        "macro_name": "voicemail_record_message",
    }
    values.update(fields)
    return base.with_fields(**values)


def test_a_voicemail_macro_is_served_with_the_farm_prompts_as_its_sound_prefix(
    client: Any, mounted: Any, farm: Any, recorded: Any
) -> None:
    root = parse_answer(post(client, languages_fetch(recorded)))
    section = root.find("section")
    assert section.get("name") == "languages"
    language = section.find("language")
    assert (language.get("name"), language.get("say-module")) == ("en", "en")
    assert language.get("sound-prefix") == f"{MOUNT}/farm/sounds/en/us/fsfarm"
    macros = language.findall("phrases/macros/macro")
    assert [m.get("name") for m in macros] == ["voicemail_record_message"]
    played = [a.get("data") for a in macros[0].iterfind("input/match/action") if a.get("function") == "play-file"]
    assert played == ["voicemail/vm-record_message.wav"]


def test_the_message_count_macro_says_the_number_and_the_folder(
    client: Any, mounted: Any, farm: Any, recorded: Any
) -> None:
    root = parse_answer(post(client, languages_fetch(recorded, macro_name="voicemail_message_count")))
    inputs = root.findall("section/language/phrases/macros/macro/input")
    assert [i.get("pattern") for i in inputs] == ["^(1):(.*)$", "^(\\d+):(.*)$"]
    first = [(a.get("function"), a.get("data"), a.get("type")) for a in inputs[0].iterfind("match/action")]
    assert first == [
        ("play-file", "voicemail/vm-you_have.wav", None),
        ("say", "$1", "items"),
        ("play-file", "voicemail/vm-$2.wav", None),
        ("play-file", "voicemail/vm-message.wav", None),
    ]


def test_every_macro_mod_voicemail_plays_is_served(client: Any, mounted: Any, farm: Any, recorded: Any) -> None:
    # The names mod_voicemail 1.10.12 passes to switch_ivr_phrase_macro (its VM_*_MACRO defines).
    used = [
        "voicemail_record_message",
        "voicemail_play_greeting",
        "voicemail_ack",
        "voicemail_message_count",
        "voicemail_menu",
        "voicemail_config_menu",
        "voicemail_enter_id",
        "voicemail_enter_pass",
        "voicemail_fail_auth",
        "voicemail_goodbye",
        "voicemail_abort",
        "voicemail_hello",
        "voicemail_record_urgent_check",
        "voicemail_record_file_check",
        "voicemail_listen_file_check",
        "voicemail_say_date",
        "voicemail_say_phone_number",
        "voicemail_say_message_number",
        "voicemail_disk_quota_exceeded",
        "voicemail_greeting_selected",
        "voicemail_choose_greeting",
        "voicemail_record_greeting",
        "voicemail_record_name",
        "voicemail_change_pass_success",
        "voicemail_change_pass_fail",
        "voicemail_forward_prepend",
        "voicemail_invalid_extension",
        "voicemail_forward_message_enter_extension",
        "voicemail_say_name",
        "voicemail_say_number",
        "voicemail_choose_greeting_fail",
    ]
    for name in used:
        root = parse_answer(post(client, languages_fetch(recorded, macro_name=name)))
        assert [m.get("name") for m in root.iterfind("section/language/phrases/macros/macro")] == [name]


def test_every_sound_the_macros_and_mod_say_en_play_is_generated() -> None:
    generated = set(sounds.catalogue())
    assert phrases.sounds_named() <= generated, phrases.sounds_named() - generated
    # mod_say_en: spelled digits and keys (a box number, "press #"), counts, and a message's date.
    said = {f"digits/{d}" for d in range(20)} | {
        "digits/hundred",
        "digits/thousand",
        "ascii/35",
        "ascii/42",
        "time/today",
        "time/yesterday",
        "time/at",
        "time/a-m",
        "time/p-m",
    }
    assert said <= generated, said - generated


def test_without_a_shared_mount_no_sound_prefix_is_given(client: Any, farm: Any, recorded: Any) -> None:
    root = parse_answer(post(client, languages_fetch(recorded)))
    language = root.find("section/language")
    assert language is not None and language.get("sound-prefix") is None


def test_no_macro_named_gives_the_whole_language(client: Any, mounted: Any, farm: Any, recorded: Any) -> None:
    root = parse_answer(post(client, languages_fetch(recorded, macro_name=None)))
    names = [m.get("name") for m in root.iterfind("section/language/phrases/macros/macro")]
    assert names == sorted(phrases.MACROS)


def test_bad_languages_fetches_are_not_found(client: Any, mounted: Any, farm: Any, recorded: Any) -> None:
    bad: list[dict[str, str | None]] = [
        {"lang": None},
        {"lang": "fr"},
        {"lang": "en-US"},
        {"lang": "<en>"},
        {"macro_name": "no_such_macro"},
        {"macro_name": "voicemail_menu@group"},
        {"macro_name": "<x>&'\""},
        {"macro_name": "voicemail_menu' OR 1=1 --"},
        {"macro_name": "x" * 5000},
        {"hostname": "stranger", "FreeSWITCH-Switchname": "stranger"},
    ]
    for fields in bad:
        response = post(client, languages_fetch(recorded, **fields))
        assert response.status_code == 200, fields
        assert is_not_found(parse_answer(response)), fields
