"""Fixtures for the mixer tests: running mixers on loopback and a swarm of test phones."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mixer_testkit import LOCAL, Swarm

from mixer_ext.engine import Mixer


@pytest.fixture
def mixer() -> Iterator[Mixer]:
    m = Mixer(LOCAL).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def mixer_factory() -> Iterator[Callable[[], Mixer]]:
    started: list[Mixer] = []

    def make() -> Mixer:
        m = Mixer(LOCAL).start()
        started.append(m)
        return m

    try:
        yield make
    finally:
        for m in started:
            m.stop()


@pytest.fixture
def swarm() -> Iterator[Swarm]:
    s = Swarm()
    try:
        yield s
    finally:
        s.close()
