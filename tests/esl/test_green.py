"""psycopg under a gevent-patched process: queries must let other greenlets run while they wait."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent("""
    import sys
    import psycopg  # imported before patching, as `fsfarm` does through controller imports
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from esl_workers.cooperative import ensure_green_psycopg

    assert ensure_green_psycopg()
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
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run([sys.executable, "-c", PROBE, dsn], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0  # with the blocking C wait the ticker would not run at all


@pytest.mark.freeswitch
def test_baresip_call_into_an_ivr_leaves_a_cdr() -> None:
    """End to end with a real FreeSWITCH: baresip dials an IVR, presses digits, gets transferred, hangs up."""
    binary = os.environ.get("FREESWITCH_BIN") or shutil.which("freeswitch")
    if not binary:
        pytest.skip("no freeswitch binary on PATH or in FREESWITCH_BIN")
    if not shutil.which("baresip"):
        pytest.skip("no baresip on PATH")
    pytest.skip("the FreeSWITCH harness (config from xml_curl, ports, baresip scripting) is not built yet; "
                "see docs/esl.md 'Not done'")
