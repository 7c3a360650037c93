"""What ``.ci/install`` puts in (no test extras) is enough to run every ``fsfarm`` command."""

from __future__ import annotations

import subprocess
import sys

# Importable only because the test extras are installed; the product must not need them.
TEST_ONLY = ("requests", "pytest", "hypothesis", "hcl2")

PROBE = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {TEST_ONLY!r}:
            raise ImportError('test-only package imported by the product: ' + name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ['fsfarm', '--help']
import controller.cli, controller.app.up, controller.app.tasks, controller.app.web
import xmlcurl.web, esl_workers.inbound, mixer_ext.engine
from controller.cli.launcher import main
try:
    main()
except SystemExit as exc:
    sys.exit(exc.code)
"""


def test_the_cli_and_every_room_import_without_test_dependencies() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage: fsfarm" in done.stdout
    assert "MonkeyPatchWarning" not in done.stderr


def test_an_everyday_command_does_not_load_the_web_stack_or_the_mixer() -> None:
    """``fsfarm user add`` and friends start in well under a second: flask, numpy and the mixer load only for
    the commands that serve (``fsfarm up``, ``fsfarm mixer``), each fsfarm call being a new process."""
    heavy = ("flask", "numpy", "mixer_ext.engine")
    probe = f"import sys, controller.cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], loaded
