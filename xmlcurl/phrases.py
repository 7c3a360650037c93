"""The languages section: the ``en`` phrase macros mod_voicemail plays, with sounds from the farm's storage.

mod_voicemail speaks only through phrase macros (``voicemail_record_message``, ``voicemail_message_count``,
...); without a ``languages`` answer it hangs up right after answering ("Open of languages and phrases
failed"). FreeSWITCH fetches the language once per macro it plays (fields ``lang`` and ``macro_name``),
so the answer carries just that macro. Macros name sound files relative to ``sound-prefix``: the
prompts the controller generates (``controller/storage/sounds.py``) on the nodes' shared mount, in
FreeSWITCH's usual names, so a real sound pack can replace them file for file.
"""

from __future__ import annotations

from lxml import etree

from controller.config import FARM_SOUNDS
from xmlcurl.documents import Element, document

LANGUAGE = "en"
SAY_MODULE = "en"  # mod_say_en: numbers, dates and spelled keys, from digits/, time/ and ascii/

# One action: ("play", sound name without .wav), ("say", data, say type), ("sleep", ms).
Action = tuple[str, ...]
# One input: (regex on the macro's argument, actions, break on match).
Input = tuple[str, list[Action], bool]


def _play(name: str) -> Action:
    return ("play", f"voicemail/vm-{name}")


def _say(data: str, kind: str = "name_spelled") -> Action:
    return ("say", data, kind)


def _menu(*items: str, keys: tuple[int, ...] = ()) -> list[Action]:
    """ "To <item>, press <key>" for each item; the keys arrive as $1, $2, ... (or the fields ``keys`` names)."""
    out: list[Action] = []
    for n, item in zip(keys or range(1, len(items) + 1), items, strict=True):
        out += [_play(item), _play("press"), _say(f"${n}"), ("sleep", "100")]
    return out[:-1]


def _keys(n: int) -> str:
    return "^" + ":".join(["([0-9#*])"] * n) + "$"


def _one(*actions: Action) -> list[Input]:
    return [("^(.*)$", list(actions), False)]


_SAVED_AS = ["deleted", "saved", "emailed", "marked-urgent"]

MACROS: dict[str, list[Input]] = {
    "voicemail_enter_id": _one(_play("enter_id"), _say("$1")),
    "voicemail_enter_pass": _one(_play("enter_pass"), _say("$1")),
    "voicemail_fail_auth": _one(_play("fail_auth")),
    "voicemail_change_pass_success": _one(_play("password_has_been_changed")),
    "voicemail_change_pass_fail": _one(_play("password_not_valid")),
    "voicemail_hello": _one(),
    "voicemail_goodbye": _one(_play("goodbye")),
    "voicemail_abort": _one(_play("abort")),
    # "<count>:<folder>", folder one of new, saved, urgent-new, urgent-saved
    "voicemail_message_count": [
        ("^(1):(.*)$", [_play("you_have"), _say("$1", "items"), _play("$2"), _play("message")], True),
        ("^(\\d+):(.*)$", [_play("you_have"), _say("$1", "items"), _play("$2"), _play("messages")], False),
    ],
    "voicemail_menu": [(_keys(4), _menu("listen_new", "listen_saved", "advanced", "to_exit"), False)],
    "voicemail_config_menu": [
        (
            _keys(5),
            _menu("to_record_greeting", "choose_greeting", "record_name2", "change_password", "main_menu"),
            False,
        )
    ],
    "voicemail_record_name": _one(_play("record_name1")),
    "voicemail_record_file_check": [(_keys(3), _menu("listen_to_recording", "save_recording", "rerecord"), False)],
    "voicemail_record_urgent_check": [(_keys(2), _menu("mark-urgent", "continue"), False)],
    "voicemail_forward_prepend": [(_keys(2), _menu("forward_add_intro", "send_message_now"), False)],
    "voicemail_forward_message_enter_extension": [
        ("^([0-9#*])$", [_play("forward_enter_ext"), _play("followed_by"), _say("$1")], False)
    ],
    "voicemail_invalid_extension": _one(_play("that_was_an_invalid_ext")),
    # six keys, and a seventh field when e-mail forwarding is offered (without it the fourth key is unused)
    "voicemail_listen_file_check": [
        (
            _keys(6)[:-1] + ":(.*)$",
            _menu(
                "listen_to_recording",
                "save_recording",
                "delete_recording",
                "forward_to_email",
                "return_call",
                "to_forward",
            ),
            True,
        ),
        (
            _keys(6),
            _menu(
                "listen_to_recording",
                "save_recording",
                "delete_recording",
                "return_call",
                "to_forward",
                keys=(1, 2, 3, 5, 6),
            ),
            False,
        ),
    ],
    "voicemail_choose_greeting": _one(_play("choose_greeting_choose")),
    "voicemail_choose_greeting_fail": _one(_play("choose_greeting_fail")),
    "voicemail_record_greeting": _one(_play("record_greeting")),
    "voicemail_record_message": _one(_play("record_message")),
    "voicemail_greeting_selected": [("^(\\d+)$", [_play("greeting"), _say("$1", "items"), _play("selected")], False)],
    # the box's number: "The person at extension 1 0 0 2 is not available..."
    "voicemail_play_greeting": _one(_play("person"), _say("$1"), _play("not_available")),
    "voicemail_say_number": [("^(\\d+)$", [_say("$1", "items")], False)],
    "voicemail_say_message_number": [
        ("^([a-z]+):(\\d+)$", [_play("$1"), _play("message_number"), _say("$2", "items")], False)
    ],
    "voicemail_say_phone_number": [
        (
            "^000|^$|^[Aa]non|^[Pp]rivate",
            [_play("message_from"), ("sleep", "100"), ("play", "ivr/ivr-anonymous_caller"), ("sleep", "500")],
            True,
        ),
        ("^(.*)$", [_play("message_from"), ("sleep", "100"), _say("$1"), ("sleep", "500")], False),
    ],
    "voicemail_say_name": _one(_say("$1")),
    "voicemail_ack": [
        ("^(too-small)$", [_play("too-small")], True),
        *[(f"^({word})$", [_play("message"), _play("$1")], True) for word in _SAVED_AS],
    ],
    "voicemail_say_date": _one(_say("$1", "short_date_time")),
    "voicemail_disk_quota_exceeded": _one(_play("mailbox_full")),
}

# What the "$n" in a played name becomes in the calls mod_voicemail makes.
_SUBSTITUTIONS = {
    "voicemail/vm-$2": ["new", "saved", "urgent-new", "urgent-saved"],
    "voicemail/vm-$1": ["new", "saved", *_SAVED_AS],
}


def sounds_named() -> set[str]:
    """Every sound a macro may play (``dir/name``), for checking that the generated prompts cover them."""
    out: set[str] = set()
    for inputs in MACROS.values():
        for _, actions, _ in inputs:
            for action in actions:
                if action[0] != "play":
                    continue
                name = action[1]
                if "$" in name:
                    out.update(f"voicemail/vm-{word}" for word in _SUBSTITUTIONS[name])
                else:
                    out.add(name)
    return out


def sound_prefix(shared_mount: str) -> str:
    """Where a node finds the farm's prompts; empty without a shared mount (FreeSWITCH's own -sounds dir)."""
    return f"{shared_mount}/{FARM_SOUNDS}" if shared_mount else ""


def _macro(parent: Element, name: str, inputs: list[Input]) -> None:
    macro = etree.SubElement(parent, "macro", name=name)
    for pattern, actions, stop in inputs:
        attrs = {"pattern": pattern}
        if stop:
            attrs["break_on_match"] = "true"
        match = etree.SubElement(etree.SubElement(macro, "input", attrs), "match")
        for action in actions:
            if action[0] == "play":
                etree.SubElement(match, "action", function="play-file", data=f"{action[1]}.wav")
            elif action[0] == "say":
                etree.SubElement(match, "action", function="say", data=action[1], method="pronounced", type=action[2])
            else:
                etree.SubElement(match, "action", function="execute", data=f"sleep({action[1]})")


def language(macro_name: str, shared_mount: str) -> Element | None:
    """The ``en`` language with one macro (every macro when ``macro_name`` is empty); None for an unknown macro."""
    if macro_name and macro_name not in MACROS:
        return None
    root, section = document("languages")
    attrs = {"name": LANGUAGE, "say-module": SAY_MODULE}
    prefix = sound_prefix(shared_mount)
    if prefix:
        attrs["sound-prefix"] = prefix
    macros = etree.SubElement(etree.SubElement(etree.SubElement(section, "language", attrs), "phrases"), "macros")
    for name in [macro_name] if macro_name else sorted(MACROS):
        _macro(macros, name, MACROS[name])
    return root
