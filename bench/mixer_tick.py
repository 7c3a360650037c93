"""One media tick of the mixer, in-process, by phase: where a leg's 20 ms frame goes.

Run by hand: ``python bench/mixer_tick.py [--legs 300] [--codec PCMU] [--per-packet-io]``. A mixer
(SIP thread only) and ``--legs`` bench phones (rooms of 3, rooms at the codec's rate) live in this
process; each frame every phone sends one packet, then one ``MediaLoop.tick()`` runs in this
thread, then the phones drain. The figure is the median thread CPU time of 300 ticks (after 20
warm-up ones) per leg, and of each phase: ``recv`` (the socket reads), ``file`` (RTP headers and
jitter buffers), ``decode`` (playout and decode), ``kernel`` (``mix_frame``), ``encode``,
``headers`` (sequence, timestamp, marker columns) and ``send`` (the ``sendmmsg`` calls, or one
``sendto`` per packet); ``other`` is the rest of the tick. Thread CPU, not wall time, so other
processes on the core do not count (their cache and memory traffic still does: compare runs made
back to back).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mixer import BenchPhone, encoded_tone
from mixer_ext import media as media_module
from mixer_ext import mix
from mixer_ext.engine import Mixer
from mixer_ext.sdp import RtpMap

PHASES = ("recv", "file", "decode", "kernel", "encode", "headers", "send")
CODECS = {
    "PCMU": (RtpMap(0, "PCMU", 8000), 8000),
    "PCMA": (RtpMap(8, "PCMA", 8000), 8000),
    "L16/16000": (RtpMap(97, "L16", 16000), 16000),
    "opus": (RtpMap(111, "opus", 48000, 2), 48000),
}


def timed(spent: dict[str, float], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, adding its thread CPU time to ``spent[label]``."""

    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.thread_time() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--legs", type=int, default=300)
    parser.add_argument("--codec", choices=sorted(CODECS), default="PCMU")
    parser.add_argument("--per-packet-io", action="store_true", help="one system call per packet")
    args = parser.parse_args()
    mixer = Mixer("127.0.0.1", batch_io=not args.per_packet_io)
    stop = threading.Event()
    threading.Thread(target=mixer.sip.run, args=(stop,), daemon=True).start()

    class Target:  # what BenchPhone needs of a sidecar: its SIP port
        sip = mixer.sip_port

    offer, rate = CODECS[args.codec]
    codec = "opus/48000" if args.codec == "opus" else args.codec
    for room in range((args.legs + 2) // 3):
        mixer.create_room(f"b{room}", rate)
    tone = encoded_tone(codec)
    phones = [BenchPhone(Target(), f"b{i // 3}", codec, offer, tone) for i in range(args.legs)]  # type: ignore[arg-type]
    media = mixer.media
    spent: dict[str, float] = {}
    media.io.recv = timed(spent, "recv", media.io.recv)  # type: ignore[method-assign]
    media.io.send_batch = timed(spent, "send", media.io.send_batch)  # type: ignore[method-assign]
    media._file = timed(spent, "file", media._file)  # type: ignore[method-assign]
    media._decode = timed(spent, "decode", media._decode)  # type: ignore[method-assign]
    media_module.mix.mix_frame = timed(spent, "kernel", mix.mix_frame)  # type: ignore[assignment]
    media._encode = timed(spent, "encode", media._encode)  # type: ignore[method-assign]
    media._encode_lane = timed(spent, "encode", media._encode_lane)  # type: ignore[method-assign]
    media._stamp = timed(spent, "headers", media._stamp)  # type: ignore[method-assign]
    ticks: list[tuple[float, dict[str, float]]] = []
    try:
        for frame in range(320):
            for phone in phones:
                phone.send()
            spent.clear()
            started = time.thread_time()
            media.tick()
            elapsed = time.thread_time() - started
            for phone in phones:
                phone.drain()
            if frame >= 20:
                spent["other"] = elapsed - sum(spent.values())
                ticks.append((elapsed, dict(spent)))
    finally:
        stop.set()
        for phone in phones:
            phone.close()
        mixer.stop()
    per_leg = 1e6 / args.legs
    tick = statistics.median(t for t, _ in ticks)
    phases = " ".join(
        f"{p} {statistics.median(s.get(p, 0.0) for _, s in ticks) * per_leg:.2f}" for p in (*PHASES, "other")
    )
    mode = "per-packet I/O" if args.per_packet_io else "batched I/O"
    print(
        f"{mode}, {args.legs} {args.codec} legs in rooms of 3: tick {tick * per_leg:.2f} us per leg "
        f"({0.020 / tick * args.legs:,.0f} legs per core, tick only); {phases} us per leg; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
