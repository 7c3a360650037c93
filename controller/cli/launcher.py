"""The ``fsfarm`` console script: patches gevent first for the long-running commands.

psycopg picks its wait function when it is imported, so ``up``, ``workers``, ``ivr`` and
``failover watch`` must be patched before anything imports it; short admin commands are not.
"""

from __future__ import annotations

import sys

GREEN_COMMANDS = {"up", "workers", "ivr", "failover"}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in GREEN_COMMANDS:
        from controller.app import green

        green.patch()
    from controller.cli import main as cli

    cli()
