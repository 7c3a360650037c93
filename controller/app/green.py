"""gevent for the long-running commands: patched here, once, before anything imports psycopg.

psycopg 3.3 picks its wait function once, when ``psycopg.waiting`` is imported: if gevent had not
patched ``select`` yet, it keeps the C ``wait_c``, which blocks the whole hub during every query.
``patch()`` patches the process and then makes sure psycopg waits cooperatively either way.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


def patch() -> None:
    """Monkey-patch this process for gevent (idempotent) and switch psycopg to the cooperative wait."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    ensure_green_psycopg()


def gevent_patched() -> bool:
    """True once gevent has patched ``select`` and ``socket`` in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("select") and monkey.is_module_patched("socket"))


def ensure_green_psycopg() -> bool:
    """Switch psycopg to its poll-based (patched, cooperative) wait if gevent is active; True if green."""
    if not gevent_patched():
        return False
    from psycopg import waiting

    if getattr(waiting, "wait", None) is getattr(waiting, "wait_c", object()):
        log.info("psycopg was imported before gevent patching; switching it to the cooperative wait_poll")
        waiting.wait = waiting.wait_poll  # type: ignore[assignment]
    return True
