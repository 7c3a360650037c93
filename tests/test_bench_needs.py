"""Each bench says in one line what it needs when it is missing, instead of a traceback halfway through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("bench", "program"), [("xmlcurl", "nginx"), ("failover", "kamailio"), ("storage", "curl")])
def test_a_bench_names_the_missing_program_and_how_to_get_it(bench, program, tmp_path):
    # A PATH with nothing on it: the bench must say so before it starts PostgreSQL or loads anything.
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{bench}.py"), "--quick"],
        cwd=REPO,
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [f"{bench}.py: needs `{program}`: run .ci/install --bench"], done.stderr
    assert done.stdout == ""
