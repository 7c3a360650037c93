"""Shared storage over HTTP: prompts, voicemail and recordings of one tenant.

Farm admins reach every tenant; a tenant admin only its own (anything else is the same 404 as
a missing object). Uploads are a raw body (``Content-Type: audio/wav``) or multipart with a
``file`` part. Storage that cannot be reached answers 503 and leaves nothing half written.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from controller import validation
from controller.bearer import database, requires_token, visible_tenant
from controller.documented import documented
from controller.errors import Invalid
from controller.storage import FileInfo, Storage, audio, prompts, recordings, storage_for_app, voicemail
from controller.storage.errors import TooLarge

blueprint = Blueprint("storage", __name__, url_prefix="/api/v1")
# Room for multipart framing around the largest allowed file.
_SLACK = 256 * 1024


def _storage() -> Storage:
    return storage_for_app(current_app.extensions)


def _upload(limit: int) -> bytes:
    """The uploaded file: a multipart ``file`` part, else the raw body; 413 past ``limit``."""
    request.max_content_length = limit + _SLACK
    if request.content_length is not None and request.content_length > limit + _SLACK:
        raise TooLarge(f"upload: {request.content_length} bytes is over the {limit} byte limit", {"limit": limit})
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file") or next(iter(request.files.values()), None)
        if part is None:
            raise Invalid("upload: multipart body has no 'file' part", {"field": "file"})
        data = part.read(limit + 1)
    else:
        data = request.get_data(cache=False)
    if not data:
        raise Invalid("upload: empty body; send the WAV as the body or as a multipart 'file' part")
    if len(data) > limit:
        raise TooLarge(f"upload: over the {limit} byte limit", {"limit": limit})
    return data


def _file_json(info: FileInfo) -> dict[str, Any]:
    return {"name": info.path, "size": info.size, "modified": info.modified.isoformat()}


def _wav(data: bytes, filename: str) -> Response:
    safe = filename.rsplit("/", 1)[-1]
    return Response(data, mimetype="audio/wav", headers={"Content-Disposition": f'attachment; filename="{safe}"'})


# ---------------------------------------------------------------- prompts


@blueprint.get("/tenants/<ref>/prompts")
@requires_token
def list_prompts(ref: str) -> Any:
    """List a tenant's prompts."""
    tenant = visible_tenant(ref)
    return jsonify([_file_json(i) for i in prompts.list_prompts(_storage(), tenant.id)])


def _store_prompt(ref: str, name: str) -> Any:
    tenant = visible_tenant(ref)
    data = _upload(audio.PROMPT_MAX_BYTES)
    info, wav = prompts.upload(_storage(), tenant.id, name, data)
    return jsonify({**_file_json(info), "rate": wav.rate, "duration_ms": wav.duration_ms}), 201


@blueprint.put("/tenants/<ref>/prompts/<path:name>", merge_slashes=False)
@documented(upload=True, status=201)
@requires_token
def put_prompt(ref: str, name: str) -> Any:
    """Upload (or replace) a prompt under this name."""
    return _store_prompt(ref, name)


@blueprint.post("/tenants/<ref>/prompts")
@documented(upload=True, status=201, query={"name": "the prompt's name (or the multipart 'name' field or file name)"})
@requires_token
def post_prompt(ref: str) -> Any:
    """Upload a prompt named by ?name=, the multipart 'name' field or the uploaded file's name."""
    visible_tenant(ref)
    data_name = request.form.get("name") if request.mimetype == "multipart/form-data" else request.args.get("name")
    if not data_name and request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        data_name = part.filename if part is not None else None
    if not data_name:
        raise Invalid("name: give the prompt a name (form field or ?name=)", {"field": "name"})
    return _store_prompt(ref, data_name)


@blueprint.get("/tenants/<ref>/prompts/<path:name>", merge_slashes=False)
@documented(download=True)
@requires_token
def get_prompt(ref: str, name: str) -> Any:
    """Download a prompt as WAV."""
    tenant = visible_tenant(ref)
    return _wav(prompts.download(_storage(), tenant.id, name), prompts.prompt_name(name))


@blueprint.delete("/tenants/<ref>/prompts/<path:name>", merge_slashes=False)
@requires_token
def delete_prompt(ref: str, name: str) -> Any:
    """Delete a prompt."""
    tenant = visible_tenant(ref)
    prompts.delete(_storage(), tenant.id, name)
    return jsonify({"deleted": prompts.prompt_name(name)})


# ---------------------------------------------------------------- voicemail


def _box(ref: str, ext: str) -> voicemail.Mailbox:
    return voicemail.mailbox(database(), visible_tenant(ref), ext)


@blueprint.get("/tenants/<ref>/users/<ext>/voicemail")
@requires_token
def list_voicemail(ref: str, ext: str) -> Any:
    """List the voicemail messages of a user's mailbox."""
    found = voicemail.list_messages(database(), _box(ref, ext))
    return jsonify([m.public() for m in found])


@blueprint.post("/tenants/<ref>/users/<ext>/voicemail")
@documented(
    upload=True,
    status=201,
    query={
        "caller_id_number": "who left it (or the multipart field of that name)",
        "caller_id_name": "who left it, by name (or the multipart field of that name)",
    },
)
@requires_token
def deposit_voicemail(ref: str, ext: str) -> Any:
    """Leave a voicemail message in a user's mailbox."""
    box = _box(ref, ext)
    data = _upload(audio.VOICEMAIL_MAX_BYTES)
    fields = request.form if request.mimetype == "multipart/form-data" else request.args
    message = voicemail.deposit(
        database(),
        _storage(),
        box,
        data,
        caller_id_number=validation.text("caller_id_number", fields.get("caller_id_number", "")),
        caller_id_name=validation.text("caller_id_name", fields.get("caller_id_name", "")),
    )
    return jsonify(message.public()), 201


@blueprint.get("/tenants/<ref>/users/<ext>/voicemail/<message_id>")
@requires_token
def get_voicemail(ref: str, ext: str, message_id: str) -> Any:
    """Show a voicemail message."""
    return jsonify(voicemail.get_message(database(), _box(ref, ext), message_id).public())


@blueprint.get("/tenants/<ref>/users/<ext>/voicemail/<message_id>/audio")
@documented(download=True)
@requires_token
def download_voicemail(ref: str, ext: str, message_id: str) -> Any:
    """Download a voicemail message's audio as WAV."""
    message, data = voicemail.message_audio(database(), _storage(), _box(ref, ext), message_id)
    return _wav(data, f"{message.id}.wav")


@blueprint.post("/tenants/<ref>/users/<ext>/voicemail/<message_id>/read")
@requires_token
def mark_voicemail_read(ref: str, ext: str, message_id: str) -> Any:
    """Mark a voicemail message read."""
    return jsonify(voicemail.mark_read(database(), _box(ref, ext), message_id).public())


@blueprint.delete("/tenants/<ref>/users/<ext>/voicemail/<message_id>")
@requires_token
def delete_voicemail(ref: str, ext: str, message_id: str) -> Any:
    """Delete a voicemail message and its audio."""
    return jsonify(voicemail.delete_message(database(), _storage(), _box(ref, ext), message_id).public())


# ---------------------------------------------------------------- recordings


@blueprint.get("/tenants/<ref>/recordings")
@documented(query={"folder": "only the recordings in this folder"})
@requires_token
def list_recordings(ref: str) -> Any:
    """List a tenant's recordings."""
    tenant = visible_tenant(ref)
    folder = request.args.get("folder", "")
    return jsonify([_file_json(i) for i in recordings.list_recordings(_storage(), tenant.id, folder)])


@blueprint.get("/tenants/<ref>/recordings/<path:name>", merge_slashes=False)
@documented(download=True)
@requires_token
def get_recording(ref: str, name: str) -> Any:
    """Download a recording as WAV."""
    tenant = visible_tenant(ref)
    return _wav(recordings.download(_storage(), tenant.id, name), name)
