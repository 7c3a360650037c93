"""A renderer for the subset of Terraform's template syntax the cloud_init templates use.

Only ``${name}`` interpolation and the ``$${`` / ``%%{`` escapes; any directive (``%{ if }``,
``%{ for }``) or expression is refused, so a template that outgrows the subset fails loudly here
instead of rendering differently from Terraform.
"""

from __future__ import annotations

import re

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
