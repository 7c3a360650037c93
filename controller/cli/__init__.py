"""The ``fsfarm`` command line: one click group; each room adds its own commands.

Rooms other than the controller expose ``commands`` (a list of click commands) in their
``cli`` module; they are attached here so ``fsfarm --help`` shows the whole farm.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from controller.cli.base import main

# Rooms that contribute commands; a room without a cli module simply adds none.
ROOM_CLI_MODULES = (
    "controller.cli.admin",
    "controller.cli.farm",
    "controller.cli.storage",
    "controller.cli.status",
    "controller.cli.services",
    "controller.cli.billing",
    "xmlcurl.cli",
    "esl_workers.cli",
    "mixer_ext.cli",
)


def _attach_room_commands() -> None:
    for name in ROOM_CLI_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        for command in getattr(module, "commands", []):
            if not isinstance(command, click.Command):
                continue
            existing = main.commands.get(command.name or "")
            if isinstance(existing, click.Group) and isinstance(command, click.Group):
                # Two rooms speak about the same thing (``ivr``: the apps, and the server that runs
                # them): one group with both rooms' subcommands, never one hiding the other.
                for sub in command.commands.values():
                    existing.add_command(sub)
                continue
            main.add_command(command)


_attach_room_commands()

__all__ = ["main"]
