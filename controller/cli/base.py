"""The root click group and the error handling every fsfarm command shares.

Every error is one line on stderr (``error: ...``) and a non-zero exit: fsfarm's own errors
(exit 1) and click's usage errors alike (exit 2), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
import psycopg

from controller import runtime
from controller.errors import FarmError, Invalid

# click >= 8.2 signals "a group run without a command" with this usage error: it shows the help, as it should.
_HELP_FOR_NO_ARGS: type[Exception] = getattr(click.exceptions, "NoArgsIsHelpError", type("Never", (Exception,), {}))


def flag_for(command: click.Command, field: str) -> str:
    """How an operator gives ``field`` to ``command``: its option (``--sip``), argument (``NAME``) or ``--set``."""
    for param in command.params:
        if param.name == field:
            if isinstance(param, click.Option):
                return max(param.opts, key=len)
            return param.human_readable_name
    if any(param.name == "settings" for param in command.params):
        return f"--set {field}=VALUE"
    return field


def in_cli_terms(exc: Invalid, command: click.Command) -> Invalid:
    """An error from the shared validation, reworded to name the command's flags instead of the API's fields.

    ``missing field(s): password`` becomes ``missing --password``; ``sip_address: ...`` becomes ``--sip: ...``.
    """
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    if detail.get("missing"):
        return Invalid(f"missing {', '.join(flag_for(command, f) for f in detail['missing'])}", exc.detail)
    if detail.get("allowed") and exc.message.startswith("unknown field"):  # what --set takes
        return Invalid(f"{exc.message} (--set takes {', '.join(detail['allowed'])})", exc.detail)
    field = detail.get("field")
    if isinstance(field, str) and exc.message.startswith(f"{field}: "):
        return Invalid(f"{flag_for(command, field)}: {exc.message[len(field) + 2 :]}", exc.detail)
    return exc


def fail(message: str, code: int = 1) -> None:
    """Print one ``error:`` line on stderr and exit with ``code``."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


class FarmGroup(click.Group):
    """A click group that turns FarmError and usage errors into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FarmError as exc:
            fail(exc.message)
        except psycopg.errors.UndefinedTable:
            fail("the farm database has no fsfarm schema yet: run `fsfarm db migrate` (`fsfarm up` does it too)")
        except psycopg.OperationalError as exc:
            said = str(exc).strip().splitlines()
            fail(f"cannot reach the farm database: {said[0] if said else type(exc).__name__}")

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _HELP_FOR_NO_ARGS as exc:
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "fsfarm"
            fail(f"{exc.format_message()} (see '{where} --help')", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted")
        # Without standalone mode click returns --help's and --version's exit code instead of exiting.
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=FarmGroup)
@click.version_option(package_name="fsfarm")
def main() -> None:
    """fsfarm: run a farm of FreeSWITCH servers from one controller.

    Start the controller with `fsfarm up`; every other command works on the same
    database, whether the controller runs or not. `--json` prints JSON for scripts;
    errors are one line on stderr and a non-zero exit. `fsfarm COMMAND --help` says more.

    \b
    Environment (`fsfarm config` lists every variable and its value):
      FSFARM_DATABASE_URL        farm database DSN (default: embedded PostgreSQL)
      FSFARM_STATE_DIR           /var/lib/fsfarm (root) or ~/.local/state/fsfarm
      FSFARM_CONTROLLER_ADDRESS  where nodes reach the controller (127.0.0.1)
      FSFARM_KAMAILIO_CTL        Kamailio ctl socket to reload on placement
      FSFARM_STORAGE             prompts, voicemail and recordings storage

    \b
    Shell completion (zsh, fish: zsh_source, fish_source):
      eval "$(_FSFARM_COMPLETE=bash_source fsfarm)"
    """
    runtime.load_settings()  # the environment is read once, here, for whichever command runs
