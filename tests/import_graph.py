"""Print the import graph between fsfarm's rooms: ``python tests/import_graph.py [--detail]``.

A "room" is a top-level package, or for ``controller`` its subpackage or module (``controller.api``,
``controller.failover``...), so the wiring and the core show as boxes of their own. Each line is
``importer -> imported  (n imports)``; ``--detail`` lists the module pairs behind each line.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import grimp

# Run as a script, tests/ comes first on sys.path and its tests/xmlcurl would shadow the real room.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "tests"]

PACKAGES = ("controller", "xmlcurl", "esl_workers", "mixer_ext")


def room(module: str) -> str:
    """The box a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "controller" and len(parts) > 1 else parts[0]


def edges() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Room-to-room edges with the module pairs behind them (imports inside one room left out)."""
    graph = grimp.build_graph(*PACKAGES)
    found: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            a, b = room(importer), room(imported)
            if a != b and b != "controller":  # the bare package's __init__ only
                found[(a, b)].append((importer, imported))
    return found


def main() -> None:
    detail = "--detail" in sys.argv
    for (a, b), pairs in sorted(edges().items()):
        print(f"{a} -> {b}  ({len(pairs)})")
        if detail:
            for importer, imported in pairs:
                print(f"    {importer} -> {imported}")


if __name__ == "__main__":
    main()
