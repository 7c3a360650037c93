"""The structure stays as docs/architecture.md draws it: contracts, one settings reader, one gevent patch."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from controller import config

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("controller", "xmlcurl", "esl_workers", "mixer_ext")
CORE = {
    "bearer",
    "billing",
    "config",
    "database",
    "documented",
    "domain",
    "errors",
    "metrics",
    "rating",
    "runtime",
    "secrets",
    "storage",
    "stores",
    "validation",
}


def _contracts() -> dict[str, dict[str, object]]:
    linter = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in linter["contracts"]}


def _sources() -> list[Path]:
    return [p for room in PRODUCT for p in sorted((ROOT / room).rglob("*.py"))]


def _calls(tree: ast.AST) -> list[str]:
    """Dotted names of everything called or referenced as an attribute chain (os.environ.get, monkey.patch_all)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                parts.append(value.id)
            names.append(".".join(reversed(parts)))
    return names


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in done.stdout


def test_every_controller_module_is_either_core_or_kept_from_the_rooms() -> None:
    children = {
        p.stem if p.suffix == ".py" else p.name
        for p in (ROOT / "controller").iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"
    }
    forbidden = {m.removeprefix("controller.") for m in _contracts()["core"]["forbidden_modules"]}  # type: ignore[union-attr]
    assert CORE.isdisjoint(forbidden)
    assert children == CORE | forbidden, (
        f"classify {sorted(children - CORE - forbidden)} in pyproject's 'core' contract (or as core here)"
    )


def test_settings_are_read_from_the_environment_in_one_place() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if any(
            n in ("os.environ", "os.getenv") or n.startswith("os.environ.") for n in _calls(ast.parse(path.read_text()))
        )
    ]
    assert readers == ["controller/config.py"]
    assert config.unread_leaves() == []  # every option in the tree is filled from some variable


def test_gevent_is_patched_in_one_place() -> None:
    patchers = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if any(n.endswith("patch_all") for n in _calls(ast.parse(path.read_text())))
    ]
    assert patchers == ["controller/app/green.py"]


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    fsfarm = Path(sys.executable).with_name("fsfarm")
    done = subprocess.run(
        [str(fsfarm), "config"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "FSFARM_IVR_PORT": "80a", "FSFARM_STATE_DIR": "/tmp/x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: FSFARM_IVR_PORT: the port must be a number from 1 to 65535, not '80a'"
    ]
