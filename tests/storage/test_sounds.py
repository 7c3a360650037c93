"""The farm's generated prompts: espeak-ng speech at every rate, in FreeSWITCH's layout, generated once."""

from __future__ import annotations

import io
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from controller.errors import Invalid, Unavailable
from controller.storage import audio, sounds
from controller.storage.local import LocalStorage
from controller.storage.paths import check_key

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng (Debian espeak-ng)")
TEXTS = {"voicemail/vm-goodbye": "Goodbye.", "digits/7": "seven"}


@needs_espeak
def test_prompts_are_speech_at_every_rate_where_mod_sndfile_looks(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    sentence = sounds.ensure(storage, TEXTS)
    assert "generated 2 farm prompts" in sentence
    for name in TEXTS:
        for rate in sounds.RATES:
            folder, _, file = name.rpartition("/")
            path = tmp_path / "farm/sounds/en/us/fsfarm" / folder / str(rate) / f"{file}.wav"
            data = path.read_bytes()
            info = audio.check_wav(data)  # the format prompts must have: 16-bit mono PCM at a FreeSWITCH rate
            assert info.rate == rate and 200 < info.duration_ms < 5000
            with wave.open(io.BytesIO(data)) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64) / 32768
            assert 20 * np.log10(np.sqrt(np.mean(pcm**2))) > -35  # speech, not silence
    manifest = json.loads((tmp_path / "farm/sounds/en/us/fsfarm/manifest.json").read_text())
    assert manifest["prompts"] == sorted(TEXTS) and manifest["rates"] == list(sounds.RATES)


@needs_espeak
def test_a_second_start_reuses_them_and_a_changed_text_regenerates(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    sounds.ensure(storage, TEXTS)
    goodbye = tmp_path / "farm/sounds/en/us/fsfarm/voicemail/8000/vm-goodbye.wav"
    before = goodbye.stat().st_mtime_ns
    assert "present" in sounds.ensure(storage, TEXTS)
    assert goodbye.stat().st_mtime_ns == before
    assert "generated" in sounds.ensure(storage, {**TEXTS, "voicemail/vm-goodbye": "Good bye now."})
    assert goodbye.stat().st_mtime_ns != before


def test_without_espeak_the_reason_is_said_and_nothing_is_marked_done(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(Unavailable, match="espeak-ng-missing is not installed"):
        sounds.ensure(storage, TEXTS, binary="espeak-ng-missing")
    assert sounds.current(storage) is None
    loop = sounds.PromptsOnce(storage, binary="espeak-ng-missing")  # what fsfarm up logs, and retries
    assert loop.run_cycle().startswith("farm prompts not generated yet: espeak-ng-missing is not installed")
    assert not loop.done


def test_farm_keys_are_checked_like_tenant_keys() -> None:
    assert check_key("farm/sounds/en/us/fsfarm/voicemail/8000/vm-goodbye.wav")
    for bad in ("farm/prompts/x.wav", "farm/../etc/passwd", "farm", "farm/sounds/../../x", "farms/sounds/x.wav"):
        with pytest.raises(Invalid):
            check_key(bad)
