"""IVR scripts: plain Python files in a directory, registered with ``@ivr("name")``, reloaded on change.

A file is (re)loaded when its modification time or size changes, at the start of the next call
that needs a script: no restart. A file that fails to load is logged with its traceback and the
last version that loaded keeps serving its IVRs (a typo never takes a working menu down).
"""

from __future__ import annotations

import logging
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]
_collecting: list[list[tuple[str, Any]]] = []


def ivr(name: str) -> Callable[[Any], Any]:
    """Register a function ``f(session)`` or a class (instantiated per call, then ``run(session)``).

    Example: ``@ivr("main-menu")`` above ``def main_menu(session): session.answer()``.
    """
    if not name or not isinstance(name, str):
        raise ValueError("@ivr needs a name, e.g. @ivr('main-menu')")

    def register(target: Any) -> Any:
        if _collecting:
            _collecting[-1].append((name, target))
        return target

    return register


def as_handler(target: Any) -> Handler:
    """A callable taking the session, whether the script registered a function or a class."""
    if isinstance(target, type):

        def run_class(session: Any) -> Any:
            instance = target()
            return (instance.run if hasattr(instance, "run") else instance)(session)

        return run_class
    return target  # type: ignore[no-any-return]


@dataclass
class ScriptFile:
    path: Path
    stamp: tuple[float, int]
    handlers: dict[str, Handler] = field(default_factory=dict)
    error: str = ""


def load_file(path: Path) -> dict[str, Handler]:
    """Execute one script file in a fresh module and return the IVRs it registered."""
    source = path.read_text(encoding="utf-8")
    code = compile(source, str(path), "exec")
    module = types.ModuleType(f"fsfarm_ivr_{path.stem}")
    module.__file__ = str(path)
    _collecting.append([])
    try:
        exec(code, module.__dict__)
        found = _collecting[-1]
    finally:
        _collecting.pop()
    return {name: as_handler(target) for name, target in found}


class ScriptLibrary:
    """Every ``*.py`` under ``directory`` (not starting with ``_``), kept up to date lazily."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.files: dict[Path, ScriptFile] = {}

    def refresh(self) -> None:
        seen = set()
        for path in sorted(self.directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            seen.add(path)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_mtime, st.st_size)
            known = self.files.get(path)
            if known is not None and known.stamp == stamp:
                continue
            try:
                handlers = load_file(path)
                self.files[path] = ScriptFile(path, stamp, handlers)
                if known is not None:
                    log.info("IVR script %s reloaded: %s", path, ", ".join(sorted(handlers)) or "no @ivr")
            except Exception:
                error = traceback.format_exc()
                log.error(
                    "IVR script %s failed to load; %s\n%s",
                    path,
                    "keeping its previous version" if known and known.handlers else "its IVRs are unavailable",
                    error,
                )
                self.files[path] = ScriptFile(path, stamp, known.handlers if known else {}, error)
        for path in set(self.files) - seen:
            del self.files[path]

    def get(self, name: str) -> Handler | None:
        """The handler registered as ``name`` (newest file wins if two register the same name)."""
        self.refresh()
        for script in self.files.values():
            if name in script.handlers:
                return script.handlers[name]
        return None

    def names(self) -> list[str]:
        self.refresh()
        return sorted({n for s in self.files.values() for n in s.handlers})
