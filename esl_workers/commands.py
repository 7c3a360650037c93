"""Commands for the farm's nodes (REST API and CLI), sent to the node that owns the call or room.

Each command opens a short inbound ESL connection to the right node: short ones run as ``api``
and return FreeSWITCH's answer; long ones (originate) run as ``bgapi`` with a Job-UUID we choose,
stored in ``esl_command_jobs`` and finished by the BACKGROUND_JOB event (here if we wait for it,
else by the node's watcher, which subscribes to BACKGROUND_JOB too).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import gevent
import gevent.event
import psycopg
from greenswitch.esl import NotConnectedError

from controller.database import Database
from controller.domain import ESL_PORT, CommandStatus, HostPort, Mixer, Node, Tenant
from controller.errors import Conflict, Invalid, NotFound, Unavailable
from controller.stores import command_jobs, conference_members, live_calls, mixers, nodes, placements
from controller.stores import conferences as conference_store
from esl_workers.conferences import room_name
from esl_workers.connection import FarmEvent, FarmInboundESL

_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.+@*#:/-]{1,128}$")  # no spaces, no newlines: nothing can be injected
CONFERENCE_ACTIONS = {
    "list": "json_list",
    "mute": "mute",
    "unmute": "unmute",
    "deaf": "deaf",
    "undeaf": "undeaf",
    "kick": "kick",
    "lock": "lock",
    "unlock": "unlock",
    "record": "record",
    "norecord": "norecord",
}
MEMBER_ACTIONS = frozenset({"mute", "unmute", "deaf", "undeaf", "kick"})
# A recording's file name: no slash, and a letter or digit first (so never "." or "..").
RECORDING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def token(value: Any, field: str) -> str:
    """A single ESL command argument, refused if it could smuggle in another argument or command."""
    text = str(value if value is not None else "").strip()
    if not _TOKEN.match(text):
        raise Invalid(f"{field}: not a valid value", {"field": field})
    return text


def channel_uuid(value: Any) -> str:
    text = str(value or "")
    if not _UUID.match(text):
        raise Invalid("call: not a channel uuid", {"field": "call"})
    return text.lower()


def recording_name(value: Any, field: str = "name") -> str:
    """A recording's file name as a tenant may give it; paths (``/``, ``..``) are refused."""
    if not isinstance(value, str) or not RECORDING_NAME.match(value):
        shown = str(value)[:80].encode("utf-8", "backslashreplace").decode()
        raise Invalid(
            f"{field}: must be a file name of 1 to 64 letters, digits, '.', '_' or '-' (no folders: "
            "the controller puts recordings in the tenant's own folder)",
            {"field": field, "value": shown},
        )
    return value


def recording_path(shared_mount: str, tenant: Tenant, number: str, name: str) -> str:
    """Where a node writes a room's recording: inside the tenant's recordings folder on the shared mount."""
    if not shared_mount:
        raise Conflict("record: the farm has no shared storage mount (FSFARM_SHARED_MOUNT) to record into")
    return f"{shared_mount}/{tenant.id}/recordings/conf-{token(number, 'conference')}/{name}"


# ---------------------------------------------------------------- command text (pure)


def originate_command(tenant: Tenant, from_ext: str, to: str, caller_id: str = "") -> str:
    """Click-to-call: ring ``from_ext``, and when answered dial ``to`` in the tenant's dialplan."""
    frm, dest = token(from_ext, "from"), token(to, "to")
    cid = token(caller_id or frm, "caller_id")
    variables = f"{{fsfarm_tenant={tenant.domain},origination_caller_id_number={cid},ignore_early_media=true}}"
    return f"originate {variables}user/{frm}@{tenant.domain} {dest} XML {tenant.domain}"


def hangup_command(call: str, cause: str = "NORMAL_CLEARING") -> str:
    return f"uuid_kill {channel_uuid(call)} {token(cause, 'cause')}"


def transfer_command(call: str, to: str, context: str, leg: str = "") -> str:
    """Transfer a call to ``to`` in ``context``; ``leg='-bleg'`` moves the other party instead."""
    flag = f"{leg} " if leg in ("-bleg", "-both") else ""
    return f"uuid_transfer {channel_uuid(call)} {flag}{token(to, 'to')} XML {token(context, 'context')}"


def conference_command(room: str, action: str, member: str = "", path: str = "") -> str:
    if action not in CONFERENCE_ACTIONS:
        raise Invalid(f"action: one of {', '.join(sorted(CONFERENCE_ACTIONS))}", {"field": "action"})
    parts = ["conference", token(room, "room"), CONFERENCE_ACTIONS[action]]
    if action in MEMBER_ACTIONS:
        parts.append(token(member or "all", "member"))
    elif action == "record":
        parts.append(token(path, "path"))
    elif action == "norecord":
        parts.append(token(path or "all", "path"))
    return " ".join(parts)


NODE_COMMANDS = {
    "reloadxml": lambda arg: "reloadxml",
    "xml_flush_cache": lambda arg: f"xml_flush_cache {token(arg, 'section')}" if arg else "xml_flush_cache",
    "sofia_rescan": lambda arg: f"sofia profile {token(arg or 'internal', 'profile')} rescan",
}


# ---------------------------------------------------------------- routing


def node_for_tenant(conn: psycopg.Connection[Any], tenant: Tenant) -> Node:
    node_id = placements.tenant_node(conn, tenant.id)
    node = nodes.get(conn, node_id) if node_id else None
    if node is None:
        raise Unavailable(f"tenant {tenant.domain} is not placed on any node right now")
    return node


def node_for_call(conn: psycopg.Connection[Any], tenant: Tenant | None, call: str) -> tuple[Node, dict[str, Any]]:
    row = live_calls.owner(conn, channel_uuid(call), tenant.id if tenant else None)
    node = nodes.get(conn, row["node_id"]) if row else None
    if row is None or node is None:
        raise NotFound(f"no live call {call!r}")
    return node, row


def node_for_room(conn: psycopg.Connection[Any], tenant: Tenant, number: str) -> tuple[Node, str]:
    """The node running a tenant's room: where its members are, else where placement put it."""
    room = conference_store.store.get(conn, tenant.id, number)
    if room is None:
        raise NotFound(f"no conference {number!r} in {tenant.domain}")
    name = room_name(room.number, tenant.domain)
    node_id = conference_members.node_of_room(conn, name)
    if node_id is None:
        placed = {p.conference_id: p.node_id for p in placements.conference_placements(conn)}
        node_id = placed.get(room.id)
    node = nodes.get(conn, node_id) if node_id else None
    return (node or node_for_tenant(conn, tenant)), name


# ---------------------------------------------------------------- sending


@dataclass(frozen=True)
class Answer:
    node: str
    command: str
    result: str
    mixer: str = ""  # set when an HD room's mixer, not a node, ran the command

    @property
    def ok(self) -> bool:
        return not self.result.startswith("-ERR")

    def public(self) -> dict[str, Any]:
        out = {"node": self.node, "command": self.command, "ok": self.ok, "result": self.result}
        return {**out, "mixer": self.mixer} if self.mixer else out


def _connect(node: Node, timeout: float) -> FarmInboundESL:
    esl = HostPort.parse(node.esl_address, ESL_PORT)
    conn = FarmInboundESL(esl.host, esl.port, node.esl_password, timeout=timeout, label=f"command {node.name}")
    conn.command_timeout = timeout
    try:
        conn.connect()
    except NotConnectedError as exc:
        raise Unavailable(f"node {node.name} cannot be reached over ESL", str(exc)) from exc
    return conn


def run_api(node: Node, command: str, timeout: float = 10.0, check: bool = True) -> Answer:
    """Run one ``api`` command on a node; ``check`` turns ``-ERR`` into a Conflict error."""
    conn = _connect(node, timeout)
    try:
        result = conn.api(command, timeout=timeout)
    except NotConnectedError as exc:
        raise Unavailable(f"node {node.name} dropped the ESL connection", str(exc)) from exc
    finally:
        conn.stop(timeout=1.0)
    answer = Answer(node.name, command, result)
    if check and not answer.ok:
        raise Conflict(f"FreeSWITCH on {node.name} refused: {result.strip()}", answer.public())
    return answer


def run_bgapi(
    db: Database, node: Node, command: str, tenant_id: UUID | None = None, wait: float = 0.0, timeout: float = 10.0
) -> dict[str, Any]:
    """Start ``bgapi`` with a job row; wait up to ``wait`` seconds for its result. Returns the job."""
    job_id = uuid.uuid4()
    with db.transaction() as tx:
        command_jobs.create(tx, job_id, node.id, tenant_id, command)
    conn = _connect(node, timeout)
    done: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def on_job(batch: list[FarmEvent]) -> None:
        for event in batch:
            if event.headers.get("Job-UUID") == str(job_id):
                done.set(event.data or "")

    conn.batch_handler = on_job
    try:
        if wait > 0:
            conn.send("event plain BACKGROUND_JOB")
            conn.send(f"filter Job-UUID {job_id}")
        reply = conn.send(f"bgapi {command}\nJob-UUID: {job_id}", timeout=timeout)
        if not str(reply.data).startswith("+OK"):
            _finish(db, job_id, f"-ERR {reply.data}")
        elif wait > 0:
            try:
                _finish(db, job_id, done.get(timeout=wait))
            except gevent.Timeout:
                pass  # still running: the node's watcher records the result when it arrives
    except NotConnectedError as exc:
        raise Unavailable(f"node {node.name} dropped the ESL connection", str(exc)) from exc
    finally:
        conn.stop(timeout=1.0)
    return get_job(db, job_id)


def _finish(db: Database, job_id: UUID, body: str) -> None:
    with db.transaction() as tx:
        finish_job(tx, str(job_id), body)


def finish_job(conn: psycopg.Connection[Any], job_id: str, body: str) -> bool:
    """Record a job's result once; later copies (watcher and waiter both saw it) change nothing."""
    try:
        jid = UUID(job_id)
    except (TypeError, ValueError):
        return False
    return command_jobs.finish(conn, jid, CommandStatus.FAILED if body.startswith("-ERR") else CommandStatus.DONE, body)


def get_job(db: Database, job_id: UUID | str, tenant_id: UUID | None = None) -> dict[str, Any]:
    try:
        jid = UUID(str(job_id))
    except ValueError:
        raise NotFound(f"no job {job_id!r}") from None
    with db.transaction() as tx:
        row = command_jobs.get(tx, jid)
    if row is None or (tenant_id is not None and row["tenant_id"] != tenant_id):
        raise NotFound(f"no job {job_id!r}")
    row.pop("tenant_id")
    row["status"] = CommandStatus(row["status"])
    return row


# ---------------------------------------------------------------- the operations the API and CLI offer


def originate(
    db: Database, tenant: Tenant, from_ext: str, to: str, caller_id: str = "", wait: float = 0.0
) -> dict[str, Any]:
    """Click-to-call through the tenant's node (bgapi: ringing can take half a minute)."""
    command = originate_command(tenant, from_ext, to, caller_id)
    with db.transaction() as tx:
        node = node_for_tenant(tx, tenant)
    return run_bgapi(db, node, command, tenant.id, wait=wait)


def hangup(db: Database, tenant: Tenant | None, call: str, cause: str = "NORMAL_CLEARING") -> Answer:
    with db.transaction() as tx:
        node, _ = node_for_call(tx, tenant, call)
    return run_api(node, hangup_command(call, cause))


def transfer(db: Database, tenant: Tenant | None, call: str, to: str, leg: str = "") -> Answer:
    with db.transaction() as tx:
        node, row = node_for_call(tx, tenant, call)
        context = tenant.domain if tenant else ""
        if not context and row["tenant_id"]:
            from controller.stores import tenants

            owner = tenants.get(tx, row["tenant_id"])
            context = owner.domain if owner else ""
    if not context:
        raise Invalid("call: its tenant is unknown, cannot pick a dialplan context")
    return run_api(node, transfer_command(call, to, context, leg))


def conference(
    db: Database,
    tenant: Tenant,
    number: str,
    action: str,
    member: str = "",
    name: str = "",
    *,
    shared_mount: str = "",
    name_field: str = "name",
) -> Answer:
    """Run a conference command (mute, kick, ...) where the tenant's room ``number`` runs.

    ``record`` and ``norecord`` take a file ``name`` (``record`` picks a dated one when empty;
    ``norecord`` stops every recording); the path the node writes is built here, inside the
    tenant's recordings folder on ``shared_mount``.

    On a node: FreeSWITCH's "no such member" and "no such conference" answers are NotFound (404),
    other refusals Conflict (409), both in its words. An HD room on a mixer takes list, mute,
    unmute, deaf, undeaf and kick on its participants (``member`` is a participant id, or all).
    """
    with db.transaction() as tx:
        on_mixer = mixer_of_room(tx, tenant, number)
        if on_mixer is None:
            node, room = node_for_room(tx, tenant, number)
    if on_mixer is not None:
        return mixer_room_command(on_mixer[0], on_mixer[1], number, action, member)
    path = ""
    if action == "record" or (action == "norecord" and name):
        file_name = recording_name(name or time.strftime("%Y%m%d-%H%M%S.wav", time.gmtime()), name_field)
        path = recording_path(shared_mount, tenant, number, file_name)
    answer = run_api(node, conference_command(room, action, member, path), check=False)
    missing = conference_refusal(answer.result)
    if missing == "member":
        raise NotFound(f"no member {member!r} in conference {number}", {"field": "member", **answer.public()})
    if missing == "conference":
        raise NotFound(f"conference {number} has nobody in it on {node.name} right now", answer.public())
    if not answer.ok:
        raise Conflict(f"FreeSWITCH on {node.name} refused: {answer.result.strip()}", answer.public())
    return answer


# ---------------------------------------------------------------- HD rooms on a mixer (its control API)

MIXER_FLAGS: dict[str, dict[str, bool]] = {
    "mute": {"muted": True},
    "unmute": {"muted": False},
    "deaf": {"deaf": True},
    "undeaf": {"deaf": False},
}


def mixer_of_room(conn: psycopg.Connection[Any], tenant: Tenant, number: str) -> tuple[Mixer, str] | None:
    """The mixer running a tenant's HD room and the room's id there; None for a room on a node."""
    room = conference_store.store.get(conn, tenant.id, number)
    if room is None:
        return None
    place = next((p for p in placements.conference_placements(conn) if p.conference_id == room.id), None)
    mixer = mixers.get(conn, place.mixer_id) if place is not None and place.mixer_id else None
    return (mixer, str(room.id)) if mixer is not None else None


def _mixer_http(mixer: Mixer, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    """One call to the mixer's control API; its 404 is NotFound, other refusals Conflict, no answer 503."""
    headers = {"Content-Type": "application/json"}
    if mixer.control_token:
        headers["Authorization"] = f"Bearer {mixer.control_token}"
    request = urllib.request.Request(
        mixer.control_url.rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        text = exc.read()[:300].decode(errors="replace")
        if exc.code == 404:
            raise NotFound(f"mixer {mixer.name}: {path} not found", {"mixer": mixer.name, "result": text}) from exc
        raise Conflict(f"mixer {mixer.name} refused {method} {path}", {"mixer": mixer.name, "result": text}) from exc
    except (OSError, ValueError) as exc:
        raise Unavailable(f"mixer {mixer.name} cannot be reached", str(exc)) from exc
    return json.loads(raw) if raw else None


def mixer_participants(mixer: Mixer, room_id: str) -> list[dict[str, Any]]:
    """The legs in an HD room as its mixer reports them (none while the room is not created there yet)."""
    try:
        return list(_mixer_http(mixer, "GET", f"/rooms/{room_id}/participants")["participants"])
    except NotFound:
        return []


def mixer_members(mixer: Mixer, room_id: str) -> list[dict[str, Any]]:
    """An HD room's participants in the shape of ``GET .../members`` (member ids are participant ids)."""
    return [
        {
            "member_id": p["id"],
            "caller_number": p.get("caller", ""),
            "can_hear": not p["deaf"],
            "can_speak": not p["muted"],
            "talking": p["talking"],
            "codec": p["codec"],
            "mixer": mixer.name,
        }
        for p in mixer_participants(mixer, room_id)
    ]


def mixer_room_command(mixer: Mixer, room_id: str, number: str, action: str, member: str = "") -> Answer:
    """list, mute, unmute, deaf, undeaf or kick in an HD room, through its mixer's control API."""
    if action not in CONFERENCE_ACTIONS:
        raise Invalid(f"action: one of {', '.join(sorted(CONFERENCE_ACTIONS))}", {"field": "action"})
    path = f"/rooms/{room_id}/participants"
    if action == "list":
        return Answer("", f"GET {path}", json.dumps(mixer_members(mixer, room_id)), mixer=mixer.name)
    if action not in MIXER_FLAGS and action != "kick":
        raise Invalid(
            f"action: {action} is not available in HD room {number} (list, mute, unmute, deaf, undeaf, kick are)",
            {"field": "action"},
        )
    wanted = token(member or "all", "member")
    targets = [p["id"] for p in mixer_participants(mixer, room_id)] if wanted == "all" else [wanted]
    done = []
    for pid in targets:
        try:
            if action == "kick":
                _mixer_http(mixer, "DELETE", f"{path}/{pid}")
            else:
                _mixer_http(mixer, "PATCH", f"{path}/{pid}", MIXER_FLAGS[action])
        except NotFound as exc:
            raise NotFound(
                f"no member {pid!r} in conference {number}", {"field": "member", "mixer": mixer.name}
            ) from exc
        done.append(f"+OK {action} {pid}")
    method = "DELETE" if action == "kick" else "PATCH"
    return Answer("", f"{method} {path}/{wanted}", "\n".join(done) + "\n" if done else "+OK\n", mixer=mixer.name)


def conference_refusal(result: str) -> str | None:
    """What a ``conference`` API answer says is missing: ``member``, ``conference`` or None.

    FreeSWITCH 1.10 answers ``-ERR Non-Existant ID 99`` (its spelling) for an unknown member and
    ``-ERR Conference NAME not found`` when the room is not running on the node.
    """
    first = result.strip().splitlines()[0] if result.strip() else ""
    if first.startswith("-ERR Non-Existant ID") or first.startswith("-ERR Non-Existent ID"):
        return "member"
    if first.startswith("-ERR Conference ") and first.endswith(" not found"):
        return "conference"
    return None


def node_command(db: Database, node_ref: str, name: str, arg: str = "") -> Answer:
    if name not in NODE_COMMANDS:
        raise Invalid(f"command: one of {', '.join(sorted(NODE_COMMANDS))}", {"field": "command"})
    with db.transaction() as tx:
        node = nodes.get(tx, node_ref)
    if node is None:
        raise NotFound(f"no node {node_ref!r}")
    return run_api(node, NODE_COMMANDS[name](arg))
