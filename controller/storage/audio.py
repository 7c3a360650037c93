"""WAV checks for uploaded prompts and deposited voicemail: pure functions over bytes (stdlib ``wave``)."""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass

from controller.errors import Invalid
from controller.storage.errors import TooLarge

RATES = (8000, 16000, 32000, 48000)  # what FreeSWITCH plays without resampling on its usual codecs
PROMPT_MAX_SECONDS = 300
PROMPT_MAX_BYTES = 20 * 1024 * 1024
VOICEMAIL_MAX_SECONDS = 600
VOICEMAIL_MAX_BYTES = 60 * 1024 * 1024


@dataclass(frozen=True)
class WavInfo:
    rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration_ms(self) -> int:
        return self.frames * 1000 // self.rate


def check_wav(data: bytes, *, max_seconds: int = PROMPT_MAX_SECONDS, max_bytes: int = PROMPT_MAX_BYTES) -> WavInfo:
    """The WAV's format if it is 16-bit PCM mono at a FreeSWITCH rate within the limits; else Invalid."""
    if len(data) > max_bytes:
        raise TooLarge(
            f"audio: {len(data)} bytes is over the {max_bytes} byte limit", {"size": len(data), "limit": max_bytes}
        )
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise Invalid("audio: not a WAV file (RIFF/WAVE header missing)", {"expected": "audio/wav"})
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            info = WavInfo(w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
            frames = w.readframes(info.frames)
    except (RuntimeError, struct.error, OverflowError, ValueError) as exc:
        # A chunk size past the end of the file: the stdlib chunk reader raises these, not wave.Error.
        reason = str(exc) or type(exc).__name__
        raise Invalid(f"audio: a chunk of the WAV runs past its end ({reason})", {"expected": "audio/wav"}) from exc
    except (wave.Error, EOFError) as exc:
        # wave refuses anything but integer PCM (format 1): a-law, mu-law, float, ADPCM, extensible.
        raise Invalid(f"audio: not a PCM WAV file ({exc})", {"expected": "16-bit PCM"}) from exc
    if info.sample_width != 2:
        raise Invalid(
            f"audio: {info.sample_width * 8}-bit samples; prompts must be 16-bit PCM",
            {"sample_width": info.sample_width},
        )
    if info.channels != 1:
        raise Invalid(f"audio: {info.channels} channels; prompts must be mono", {"channels": info.channels})
    if info.rate not in RATES:
        raise Invalid(
            f"audio: {info.rate} Hz; the rate must be one of {', '.join(map(str, RATES))}", {"rate": info.rate}
        )
    if len(frames) != info.frames * info.sample_width * info.channels:
        raise Invalid(
            "audio: the file is truncated (fewer samples than its header says)", {"declared_frames": info.frames}
        )
    if info.frames == 0:
        raise Invalid("audio: the file holds no samples", {"frames": 0})
    if info.duration_ms > max_seconds * 1000:
        raise Invalid(
            f"audio: {info.duration_ms / 1000:.1f} s is over the {max_seconds} s limit",
            {"duration_ms": info.duration_ms, "limit_s": max_seconds},
        )
    return info


def make_wav(seconds: float, rate: int = 8000, *, channels: int = 1, sample_width: int = 2) -> bytes:
    """A silent WAV of the given shape (for tests, benches and placeholder prompts)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sample_width)
        w.setframerate(rate)
        w.writeframes(b"\x00" * int(seconds * rate) * channels * sample_width)
    return buf.getvalue()
