"""Running the farm's loops: one cycle at a time, each returning one plain sentence (Patroni style)."""

from __future__ import annotations

import logging
import signal
from typing import Protocol

import gevent
import gevent.event


class CycleLoop(Protocol):
    """A loop the wiring runs: ``run_cycle`` does one step and says what it did in one sentence."""

    interval: float

    def run_cycle(self) -> str: ...


class Stoppable(Protocol):
    def stop(self) -> None: ...


class Running:
    """A loop running in a greenlet; ``stop()`` ends it."""

    def __init__(self, glet: gevent.Greenlet) -> None:
        self.glet = glet

    def stop(self) -> None:
        self.glet.kill(block=True, timeout=5)


def run_cycles(loop: CycleLoop, logger: str) -> Running:
    """Run ``loop`` forever in a greenlet, logging its sentence whenever it changes."""

    def run() -> None:
        last = ""
        while True:
            sentence = loop.run_cycle()
            if sentence != last:
                logging.getLogger(logger).info("%s", sentence)
                last = sentence
            gevent.sleep(loop.interval)

    return Running(gevent.spawn(run))


def wait_for_signal() -> None:
    """Block this greenlet until SIGTERM or SIGINT."""
    done = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    gevent.signal_handler(signal.SIGINT, done.set)
    done.wait()


def stop_all(handles: list[Stoppable]) -> None:
    """Stop what was started, in reverse order."""
    for handle in reversed(handles):
        handle.stop()
