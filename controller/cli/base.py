"""The root click group and the error handling every fsfarm command shares."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from controller.errors import FarmError


class FarmGroup(click.Group):
    """A click group that turns FarmError into a message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FarmError as exc:
            click.echo(f"error: {exc.message}", err=True)
            if exc.detail is not None:
                click.echo(f"detail: {json.dumps(exc.detail, default=str)}", err=True)
            sys.exit(1)


@click.group(cls=FarmGroup)
@click.version_option(package_name="fsfarm")
def main() -> None:
    """fsfarm: run a farm of FreeSWITCH servers from one controller."""
