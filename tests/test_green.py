"""psycopg under a gevent-patched process: queries must let other greenlets run while they wait."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import sys
    import psycopg  # imported before patching, as `fsfarm` does through controller imports
    from controller.app import green

    green.patch()  # what every long-running fsfarm command does first
    import gevent

    assert green.ensure_green_psycopg()
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0.01)

    t = gevent.spawn(ticker)
    gevent.sleep(0)
    with psycopg.connect(sys.argv[1]) as conn:
        before = len(ticks)
        conn.execute("SELECT pg_sleep(0.3)")
        during = len(ticks) - before
    t.kill()
    print(during)
""")


def test_queries_yield_to_other_greenlets(dsn: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", PROBE, dsn], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0  # with the blocking C wait the ticker would not run at all
