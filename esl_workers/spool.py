"""An append-only file of CDRs that could not reach PostgreSQL, replayed in order when it is back.

Each append is flushed and fsynced before the events are considered handled; the replay inserts
everything in one transaction and only then truncates the file, so a crash in between replays
again and the (node, channel uuid) unique key keeps each CDR single.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from esl_workers.cdr import Cdr

log = logging.getLogger(__name__)


class CdrSpool:
    """The spool file of one node's watcher."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __bool__(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, cdrs: Iterable[Cdr]) -> int:
        lines = [c.to_json() + "\n" for c in cdrs]
        if not lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        return len(lines)

    def pending(self) -> list[Cdr]:
        """Spooled CDRs in arrival order; a torn last line (crash mid-write) is logged and skipped."""
        if not self:
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(Cdr.from_json(line))
            except (ValueError, TypeError) as exc:
                log.error("CDR spool %s line %d unreadable, skipped: %s", self.path, number, exc)
        return out

    def depth(self) -> int:
        """How many CDRs wait in the spool (its lines; a stat only when it is empty, the usual case)."""
        if not self:
            return 0
        return self.path.read_bytes().count(b"\n")

    def clear(self) -> None:
        with self.path.open("w", encoding="utf-8") as f:
            f.flush()
            os.fsync(f.fileno())
