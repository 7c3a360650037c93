"""A 20 ms media clock that does not drift: every tick has an absolute monotonic deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Tick:
    index: int  # frames since the clock started, counting skipped ones
    deadline: float  # monotonic time this frame was due
    skipped: int  # frames dropped because the loop fell more than one period behind


def next_tick(start: float, period: float, index: int, now: float) -> Tick:
    """The tick after ``index``: due at start + (index+1)*period, skipping frames already a period late.

    Deadlines are computed from ``start``, never by adding to the previous wake-up, so sleep
    jitter and slow frames never accumulate into drift.
    """
    nxt = index + 1
    due = start + nxt * period
    skipped = 0
    if now - due >= period:
        skipped = int((now - due) // period)
        nxt += skipped
        due = start + nxt * period
    return Tick(nxt, due, skipped)


class MediaClock:
    """Sleeps until each absolute deadline; counts overruns (frames that finished after the next was due)."""

    def __init__(
        self,
        period: float = 0.020,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.period = period
        self._now = now
        self._sleep = sleep
        self.start = now()
        self.tick = Tick(0, self.start, 0)
        self.overruns = 0
        self.skipped = 0

    def wait(self) -> Tick:
        """Block until the next frame is due and return it."""
        now = self._now()
        tick = next_tick(self.start, self.period, self.tick.index, now)
        if now > tick.deadline:
            self.overruns += 1
        self.skipped += tick.skipped
        delay = tick.deadline - now
        if delay > 0:
            self._sleep(delay)
        self.tick = tick
        return tick
