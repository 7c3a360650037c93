"""``fsfarm mixer``: run the HD conference mixer sidecar."""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from werkzeug.serving import make_server

from mixer_ext.errors import Invalid, MixerError, Unavailable

log = logging.getLogger(__name__)
TOKEN = re.compile(r"[\x21-\x7e]{16,200}")  # printable ASCII without spaces: it travels in an HTTP header


def _one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A MixerError ends the command with one line and a non-zero exit, as every fsfarm command reports."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except MixerError as exc:
            raise click.ClickException(exc.message) from None

    return run


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise Invalid(f"{option} must be HOST:PORT", {option: value})
    return host, int(port)


def control_token(path: Path | None) -> str:
    """The control API's token from ``path``; a missing file is created (mode 600) with a new random token."""
    if path is None:
        raise Invalid("the control API needs a token: --token-file PATH (created with a new token if missing)")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unavailable(f"cannot create the token file {path}: {exc.strerror}", {"token_file": str(path)}) from exc
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        log.warning("wrote a new control token to %s (give it to fsfarm mixers add --token-file)", path)
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise Unavailable(f"cannot read the token file {path}: {exc}", {"token_file": str(path)}) from exc
    if not TOKEN.fullmatch(token):
        raise Invalid(
            f"the token in {path} must be 16 to 200 printable characters without spaces", {"token_file": str(path)}
        )
    return token


@click.command("mixer")
@click.option("--listen", default="127.0.0.1:5090", show_default=True, help="SIP (UDP) address legs are sent to.")
@click.option("--control", default="127.0.0.1:5091", show_default=True, help="HTTP control API address.")
@click.option("--rtp-port", default=0, show_default=True, help="RTP port for every leg (0 picks a free one).")
@click.option("--advertise", default=None, help="Address written in SDP and Contact (default: the listen host).")
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
@click.option(
    "--trusted",
    default="127.0.0.0/8",
    show_default=True,
    help="Comma-separated CIDRs of the FreeSWITCH nodes: their SDP addresses get RTP before any arrives.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the control API's bearer token (created with a new random one, mode 600, if missing).",
)
@click.option("--per-leg-codecs", is_flag=True, hidden=True, help="Bench reference: no block coding, no sharing.")
@click.option("--per-packet-io", is_flag=True, hidden=True, help="Bench reference: one system call per RTP packet.")
@_one_line_errors
def mixer(
    listen: str,
    control: str,
    rtp_port: int,
    advertise: str | None,
    log_level: str,
    trusted: str,
    token_file: Path | None,
    per_leg_codecs: bool,
    per_packet_io: bool,
) -> None:
    """Run the HD conference mixer sidecar.

    The dumb mixer: SIP for room-<id>, numpy mixing, HTTP JSON control. Control requests need
    `Authorization: Bearer <token>` (the token in --token-file); /healthz and /metrics are open.
    """
    # Here, not at the top: every other fsfarm command would pay for loading numpy and the codecs.
    from mixer_ext.api import create_app
    from mixer_ext.engine import Mixer

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sip_host, sip_port = _host_port(listen, "listen")
    api_host, api_port = _host_port(control, "control")
    token = control_token(token_file)
    try:
        networks = [c.strip() for c in trusted.split(",") if c.strip()]
        engine = Mixer(
            sip_host,
            sip_port,
            rtp_port,
            advertise,
            trusted=networks,
            batch_codecs=not per_leg_codecs,
            batch_io=not per_packet_io,
        )
    except OSError as exc:
        raise Unavailable(f"cannot listen for SIP/RTP on {listen}: {exc.strerror}", {"listen": listen}) from exc
    try:
        server = make_server(api_host, api_port, create_app(engine, token), threaded=True)
    except (OSError, SystemExit) as exc:
        # werkzeug reports a port in use by printing and exiting; turn both into one user error.
        engine.stop()
        reason = exc.strerror if isinstance(exc, OSError) else "address already in use"
        raise Unavailable(f"cannot serve the control API on {control}: {reason}", {"control": control}) from exc
    engine.start()

    def _shutdown(*_: object) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    click.echo(
        f"mixer: SIP udp {engine.advertise}:{engine.sip_port}, "
        f"RTP udp {engine.advertise}:{engine.rtp_port}, "
        f"control http://{api_host}:{server.server_port}",
        err=True,
    )
    try:
        server.serve_forever()
    finally:
        engine.stop()


commands = [mixer]
