"""A renderer for the subset of Terraform's template syntax the cloud_init templates use.

Only ``${name}`` interpolation and the ``$${`` / ``%%{`` escapes; any directive (``%{ if }``,
``%{ for }``) or expression is refused, so a template that outgrows the subset fails loudly here
instead of rendering differently from Terraform.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_TOKEN = re.compile(r"\$\$\{|%%\{|\$\{([^}]*)\}|%\{")


def render(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "$${":
            return "${"
        if text == "%%{":
            return "%{"
        if text == "%{":
            raise ValueError("template directives are outside the supported subset")
        name = match.group(1).strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"only plain names are supported, not {name!r}")
        if name not in values:
            raise KeyError(f"template uses {name!r}, which is not passed")
        return values[name]

    return _TOKEN.sub(replace, template)


def terraform_output(files: dict[str, str], output: str) -> str:
    """``terraform apply`` on a provider-less root made of ``files`` (name -> text); the raw value of ``output``."""
    root = Path(tempfile.mkdtemp(prefix="fsfarm-tf-"))
    try:
        for name, text in files.items():
            (root / name).write_text(text)
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
        for cmd in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
            done = subprocess.run(["terraform", *cmd], cwd=root, capture_output=True, text=True, env=env, timeout=120)
            assert done.returncode == 0, done.stderr
        out = subprocess.run(
            ["terraform", "output", "-raw", output],
            cwd=root,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        return out.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
