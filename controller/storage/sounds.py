"""The farm's own prompts: what mod_voicemail and mod_say_en play, spoken once by espeak-ng into shared storage.

FreeSWITCH nodes carry no sound files. The controller speaks every prompt the phrase macros served over
xml_curl name (``xmlcurl/phrases.py``) with espeak-ng (Debian), resamples it (soxr) to the rates of the
farm's codecs and stores it under ``farm/sounds/en/us/fsfarm/<dir>/<rate>/<name>.wav``: the layout
mod_sndfile searches (it puts the call's rate before the file name, else takes the highest rate it finds
and resamples). Nodes read the same files on their shared mount, which is the ``sound-prefix`` xml_curl
gives the ``en`` language. A manifest, written last, records which texts and rates were generated: a
later start with the same catalogue finds it and does nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import wave

import numpy as np
import soxr

from controller.config import FARM_SOUNDS
from controller.errors import FarmError, NotFound, Unavailable
from controller.storage.base import Storage

log = logging.getLogger(__name__)

RATES = (8000, 16000, 48000)  # G.711, G.722 and Opus calls play these without resampling
MANIFEST = f"{FARM_SOUNDS}/manifest.json"
VOICE = "en-us"
VERSION = 1  # bump when the rendering (not the texts) changes, so farms regenerate

_VM = {
    "abort": "Too many failed attempts.",
    "advanced": "For advanced options,",
    "change_password": "To change your password,",
    "choose_greeting": "To choose a greeting,",
    "choose_greeting_choose": "Choose a greeting between one and nine.",
    "choose_greeting_fail": "That is not a valid greeting.",
    "continue": "To continue,",
    "delete_recording": "To delete this message,",
    "deleted": "deleted.",
    "emailed": "sent by email.",
    "enter_id": "Please enter your mailbox number, followed by",
    "enter_pass": "Please enter your password, followed by",
    "fail_auth": "Login incorrect.",
    "followed_by": "followed by",
    "forward_add_intro": "To add an introduction to this message,",
    "forward_enter_ext": "Enter the extension to forward this message to,",
    "forward_to_email": "To forward this message to your email,",
    "goodbye": "Goodbye.",
    "greeting": "Greeting",
    "listen_new": "To listen to new messages,",
    "listen_saved": "To listen to saved messages,",
    "listen_to_recording": "To listen to this recording,",
    "mailbox_full": "This mailbox is full.",
    "main_menu": "To return to the main menu,",
    "mark-urgent": "To mark this message urgent,",
    "marked-urgent": "marked urgent.",
    "message": "message",
    "message_from": "Message from",
    "message_number": "message number",
    "messages": "messages",
    "new": "new",
    "not_available": "is not available.",
    "password_has_been_changed": "Your password has been changed.",
    "password_not_valid": "That password is not valid.",
    "person": "The person at extension",
    "press": "press",
    "record_greeting": "Record your greeting after the tone. Press pound when you are done.",
    "record_message": "Please leave your message after the tone. When you are done, hang up, or press pound.",
    "record_name1": "Record your name after the tone. Press pound when you are done.",
    "record_name2": "To record your name,",
    "rerecord": "To record it again,",
    "return_call": "To return this call,",
    "save_recording": "To save this recording,",
    "saved": "saved.",
    "selected": "selected.",
    "send_message_now": "To send this message now,",
    "that_was_an_invalid_ext": "That was an invalid extension.",
    "to_exit": "To exit,",
    "to_forward": "To forward this message,",
    "to_record_greeting": "To record a greeting,",
    "too-small": "Your message was too short.",
    "urgent-new": "urgent new",
    "urgent-saved": "urgent saved",
    "you_have": "You have",
}

_NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}
_ORDINALS = [
    "",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def catalogue() -> dict[str, str]:
    """Sound name (``dir/name``, no rate, no extension) -> the English text spoken for it.

    ``voicemail/*`` are the prompts mod_voicemail's macros play; ``digits/*``, ``time/*`` and ``ascii/*``
    are what mod_say_en plays for numbers, dates and spelled keys (``ascii/35`` is ``#``).
    """
    out = {f"voicemail/vm-{name}": text for name, text in _VM.items()}
    out["ivr/ivr-anonymous_caller"] = "an anonymous caller"
    # What a prepaid caller hears before the 402 when the balance cannot pay the call (xmlcurl/billed.py).
    out["ivr/ivr-insufficient_balance"] = "Your balance is too low for this call. Please top up your account."
    out.update({f"digits/{n}": word for n, word in enumerate(_NUMBERS)})
    out.update({f"digits/{n}": word for n, word in _TENS.items()})
    out.update(
        {"digits/hundred": "hundred", "digits/thousand": "thousand", "digits/million": "million", "digits/dot": "dot"}
    )
    out.update({f"digits/h-{n}": word for n, word in enumerate(_ORDINALS) if word})
    out.update({"digits/h-20": "twentieth", "digits/h-30": "thirtieth"})
    out.update({f"time/day-{n}": day for n, day in enumerate(_DAYS)})
    out.update({f"time/mon-{n}": month for n, month in enumerate(_MONTHS)})
    out.update(
        {
            "time/today": "today",
            "time/yesterday": "yesterday",
            "time/at": "at",
            "time/oh": "oh",
            "time/oclock": "o'clock",
            "time/a-m": "A M",
            "time/p-m": "P M",
            "time/hour": "hour",
            "time/hours": "hours",
            "time/minute": "minute",
            "time/minutes": "minutes",
            "time/second": "second",
            "time/seconds": "seconds",
        }
    )
    out.update({"ascii/35": "pound", "ascii/42": "star"})
    return out


def key(name: str, rate: int) -> str:
    """The storage key of one prompt at one rate (``dir/<rate>/file.wav``, as mod_sndfile looks it up)."""
    folder, _, file = name.rpartition("/")
    return f"{FARM_SOUNDS}/{folder}/{rate}/{file}.wav"


def fingerprint(texts: dict[str, str], rates: tuple[int, ...] = RATES) -> str:
    """What the manifest records: a change of text, voice, rate or rendering makes a new one."""
    body = json.dumps({"texts": texts, "rates": list(rates), "voice": VOICE, "version": VERSION}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def speak(text: str, rates: tuple[int, ...] = RATES, binary: str = "espeak-ng") -> dict[int, bytes]:
    """``text`` spoken once by espeak-ng, as a 16-bit mono WAV at each rate; Unavailable when espeak-ng fails."""
    try:
        done = subprocess.run([binary, "-v", VOICE, "--stdout", text], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable("espeak-ng could not be run to generate the farm's prompts", str(exc)) from exc
    if done.returncode != 0:
        raise Unavailable("espeak-ng failed to generate a prompt", done.stderr.decode(errors="replace")[:300])
    source_rate, pcm = _pcm(done.stdout)
    return {rate: _wav(pcm, source_rate, rate) for rate in rates}


def _pcm(data: bytes) -> tuple[int, np.ndarray]:
    # espeak-ng on stdout cannot seek back, so its header sizes are placeholders: read up to the end.
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise Unavailable("espeak-ng wrote no WAV", data[:80].decode(errors="replace"))
    marker = data.find(b"data", 12)
    if marker < 0:
        raise Unavailable("espeak-ng wrote no WAV data", "")
    rate = int.from_bytes(data[24:28], "little")
    body = data[marker + 8 :]
    return rate, np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")


def _wav(pcm: np.ndarray, source_rate: int, rate: int) -> bytes:
    samples = pcm if source_rate == rate else soxr.resample(pcm, source_rate, rate)
    samples = np.clip(samples, -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def current(storage: Storage) -> str | None:
    """The fingerprint of the prompts in storage, or None when none were generated."""
    try:
        return str(json.loads(storage.get(MANIFEST)).get("fingerprint") or "") or None
    except NotFound:
        return None
    except ValueError:
        return None


def ensure(
    storage: Storage, texts: dict[str, str] | None = None, rates: tuple[int, ...] = RATES, binary: str = "espeak-ng"
) -> str:
    """Generate the farm's prompts unless storage already holds this catalogue; a sentence says what happened.

    Files are written first and the manifest last, so a run cut short is redone whole next time.
    """
    texts = catalogue() if texts is None else texts
    wanted = fingerprint(texts, rates)
    if current(storage) == wanted:
        return f"farm prompts present ({len(texts)} prompts at {', '.join(map(str, rates))} Hz)"
    if shutil.which(binary) is None:
        raise Unavailable(
            f"{binary} is not installed: the farm's voicemail prompts cannot be generated (Debian package espeak-ng)",
            "",
        )
    for name, text in sorted(texts.items()):
        for rate, data in speak(text, rates, binary).items():
            storage.put(key(name, rate), data)
    manifest = {"fingerprint": wanted, "voice": VOICE, "rates": list(rates), "prompts": sorted(texts)}
    storage.put(MANIFEST, json.dumps(manifest, indent=1).encode())
    return f"generated {len(texts)} farm prompts at {', '.join(map(str, rates))} Hz into {storage.description}"


class PromptsOnce:
    """``ensure`` for ``fsfarm up``: retried every ``interval`` seconds until it has succeeded once."""

    def __init__(self, storage: Storage, interval: float = 30.0, binary: str = "espeak-ng") -> None:
        self.storage, self.interval, self.binary = storage, interval, binary
        self.done, self.last = False, ""

    def run_cycle(self) -> str:
        if self.done:
            return self.last
        try:
            self.last = ensure(self.storage, binary=self.binary)
            self.done = True
        except FarmError as exc:
            self.last = f"farm prompts not generated yet: {exc.message}" + (f" ({exc.detail})" if exc.detail else "")
        return self.last
