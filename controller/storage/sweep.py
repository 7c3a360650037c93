"""Remove shared-storage files whose owner (a tenant, a user) was deleted.

Deletes write a tombstone row in the same transaction (``provisioning._bury``); this sweep removes
the files under each tombstone's prefix and then the row, so nothing is removed before the delete
commits and nothing is forgotten if the controller restarts halfway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.database import Database
from controller.errors import FarmError
from controller.storage.base import Storage
from controller.stores import tombstones

log = logging.getLogger(__name__)


def sweep(
    db: Database, storage: Storage, limit: int = 100, on_owner: Callable[[int, int, str | None], None] | None = None
) -> str:
    """One pass over up to ``limit`` deleted owners; returns a sentence saying what it removed.

    ``on_owner(done, total, reason)`` is called as each owner's files start to go, and once at the end
    (``fsfarm storage sweep`` draws its progress with it).
    """
    with db.transaction() as conn:
        rows = tombstones.oldest(conn, limit)
    removed, failed = 0, 0
    for done, row in enumerate(rows):
        if on_owner is not None:
            on_owner(done, len(rows), row["reason"])
        try:
            # Only what existed at the delete: a user re-created with the same extension keeps new messages.
            files = [f for f in storage.list(row["prefix"].rstrip("/")) if f.modified <= row["created_at"]]
            for info in files:
                storage.delete(info.path)
            removed += len(files)
        except FarmError as exc:
            failed += 1
            log.warning("storage sweep of %s failed (%s); kept for the next pass", row["prefix"], exc.message)
            continue
        with db.transaction() as conn:
            tombstones.remove(conn, row["id"])
    if on_owner is not None and rows:
        on_owner(len(rows), len(rows), None)
    if not rows:
        return "no deleted owners left files behind"
    return f"removed {removed} file(s) of {len(rows) - failed} deleted owner(s)" + (
        f"; {failed} prefix(es) kept for retry" if failed else ""
    )


class SweepLoop:
    """``sweep`` as a loop for ``fsfarm up`` (one pass every ``interval`` seconds)."""

    def __init__(self, db: Database, storage: Storage, interval: float = 30.0) -> None:
        self.db, self.storage, self.interval = db, storage, interval

    def run_cycle(self) -> str:
        try:
            return sweep(self.db, self.storage)
        except FarmError as exc:
            return f"storage sweep waits: {exc.message}"
