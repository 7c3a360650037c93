"""Shared storage commands: prompts, voicemail and recordings of a tenant (farm-admin view).

They use the same backend as the controller (``FSFARM_STORAGE``, else ``<state dir>/storage``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from controller import runtime
from controller.cli.admin import json_option, with_db
from controller.cli.output import emit
from controller.cli.progress import progress
from controller.database import Database
from controller.errors import Invalid
from controller.storage import FileInfo, Storage, open_storage, prompts, recordings, voicemail
from controller.storage.sweep import sweep
from controller.stores import tombstones

FILE_COLUMNS = ("name", "size", "modified")
MESSAGE_COLUMNS = ("id", "caller_id_number", "caller_id_name", "duration_ms", "read_at", "created_at")
tenant_option = click.option("--tenant", "-t", "tenant_ref", required=True, help="Tenant domain.")


def _storage() -> Storage:
    settings = runtime.settings()
    return open_storage(settings.storage.url, settings.state_dir)


def _files(found: list[FileInfo]) -> list[dict[str, Any]]:
    return [{"name": i.path, "size": i.size, "modified": i.modified.isoformat(timespec="seconds")} for i in found]


def _write(data: bytes, output: str) -> None:
    if output == "-":
        click.get_binary_stream("stdout").write(data)
    else:
        Path(output).write_bytes(data)
        click.echo(f"wrote {len(data)} bytes to {output}", err=True)


# ---------------------------------------------------------------- prompts


@click.group()
def prompt() -> None:
    """IVR and conference prompts of a tenant.

    16-bit PCM mono WAV, 8/16/32/48 kHz, at most 5 min and 20 MB.
    """


@prompt.command("upload")
@tenant_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Name in the tenant's prompts folder (default: the file's name).")
@json_option
@with_db
def prompt_upload(database: Database, tenant_ref: str, file: str, name: str | None, as_json: bool) -> None:
    """Upload a prompt, replacing one of the same name."""
    tenant = voicemail.tenant_of(database, tenant_ref)
    info, wav = prompts.upload(_storage(), tenant.id, name or Path(file).name, Path(file).read_bytes())
    emit(
        {**_files([info])[0], "rate": wav.rate, "duration_ms": wav.duration_ms},
        ("name", "size", "rate", "duration_ms"),
        as_json,
    )


@prompt.command("list")
@tenant_option
@json_option
@with_db
def prompt_list(database: Database, tenant_ref: str, as_json: bool) -> None:
    """The tenant's prompts."""
    tenant = voicemail.tenant_of(database, tenant_ref)
    emit(_files(prompts.list_prompts(_storage(), tenant.id)), FILE_COLUMNS, as_json)


@prompt.command("get")
@tenant_option
@click.argument("name")
@click.option("--output", "-o", default="-", show_default=True, help="File to write ('-' for stdout).")
@with_db
def prompt_get(database: Database, tenant_ref: str, name: str, output: str) -> None:
    """Download a prompt."""
    tenant = voicemail.tenant_of(database, tenant_ref)
    _write(prompts.download(_storage(), tenant.id, name), output)


@prompt.command("rm")
@tenant_option
@click.argument("name")
@with_db
def prompt_rm(database: Database, tenant_ref: str, name: str) -> None:
    """Delete a prompt."""
    tenant = voicemail.tenant_of(database, tenant_ref)
    prompts.delete(_storage(), tenant.id, name)
    click.echo(f"prompt {prompts.prompt_name(name)} removed from {tenant.domain}")


# ---------------------------------------------------------------- voicemail


@click.group(name="voicemail")
def voicemail_group() -> None:
    """Voicemail messages of a user."""


@voicemail_group.command("list")
@tenant_option
@click.argument("extension")
@json_option
@with_db
def voicemail_list(database: Database, tenant_ref: str, extension: str, as_json: bool) -> None:
    """A mailbox's messages, newest first."""
    box = voicemail.mailbox(database, voicemail.tenant_of(database, tenant_ref), extension)
    emit([m.public() for m in voicemail.list_messages(database, box)], MESSAGE_COLUMNS, as_json)


@voicemail_group.command("get")
@tenant_option
@click.argument("extension")
@click.argument("message_id")
@click.option("--output", "-o", default="-", show_default=True, help="File to write ('-' for stdout).")
@with_db
def voicemail_get(database: Database, tenant_ref: str, extension: str, message_id: str, output: str) -> None:
    """Download a message's audio."""
    box = voicemail.mailbox(database, voicemail.tenant_of(database, tenant_ref), extension)
    _write(voicemail.message_audio(database, _storage(), box, message_id)[1], output)


@voicemail_group.command("read")
@tenant_option
@click.argument("extension")
@click.argument("message_id")
@with_db
def voicemail_read(database: Database, tenant_ref: str, extension: str, message_id: str) -> None:
    """Mark a message as read."""
    box = voicemail.mailbox(database, voicemail.tenant_of(database, tenant_ref), extension)
    voicemail.mark_read(database, box, message_id)
    click.echo(f"message {message_id} marked read")


@voicemail_group.command("rm")
@tenant_option
@click.argument("extension")
@click.argument("message_id")
@with_db
def voicemail_rm(database: Database, tenant_ref: str, extension: str, message_id: str) -> None:
    """Delete a message and its audio."""
    box = voicemail.mailbox(database, voicemail.tenant_of(database, tenant_ref), extension)
    voicemail.delete_message(database, _storage(), box, message_id)
    click.echo(f"message {message_id} removed")


# ---------------------------------------------------------------- recordings


@click.group()
def recording() -> None:
    """Conference and call recordings written by the nodes."""


@recording.command("list")
@tenant_option
@click.option("--folder", default="", help="Only this sub-folder of recordings/.")
@json_option
@with_db
def recording_list(database: Database, tenant_ref: str, folder: str, as_json: bool) -> None:
    """The tenant's recordings."""
    tenant = voicemail.tenant_of(database, tenant_ref)
    emit(_files(recordings.list_recordings(_storage(), tenant.id, folder)), FILE_COLUMNS, as_json)


@recording.command("get")
@tenant_option
@click.argument("path")
@click.option("--output", "-o", default="-", show_default=True, help="File to write ('-' for stdout).")
@with_db
def recording_get(database: Database, tenant_ref: str, path: str, output: str) -> None:
    """Download a recording."""
    tenant = voicemail.tenant_of(database, tenant_ref)
    if not path:
        raise Invalid("path: which recording?")
    _write(recordings.download(_storage(), tenant.id, path), output)


# ---------------------------------------------------------------- the sweep


@click.group(name="storage")
def storage_group() -> None:
    """Shared storage as a whole."""


@storage_group.command("sweep")
@json_option
@with_db
def storage_sweep(database: Database, as_json: bool) -> None:
    """Remove the files of deleted tenants and users now.

    `fsfarm up` does it every 30 s, 100 owners at a time; this takes every one left."""
    with database.transaction() as conn:
        owners = tombstones.count(conn)
    with progress("sweeping", quiet=as_json) as step:
        said = sweep(database, _storage(), limit=max(owners, 1), on_owner=step)
    if as_json:
        emit({"owners": owners, "result": said}, (), True)
    else:
        click.echo(said)


commands: list[click.Command] = [prompt, voicemail_group, recording, storage_group]
