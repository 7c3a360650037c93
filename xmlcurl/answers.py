"""From a parsed fetch to the bytes FreeSWITCH gets: which question it is (a cache key), then the answer.

``question`` is pure and decides everything that needs no database: an unknown section, a
configuration we do not serve, an undiallable number or a malformed user are "not found" before
any read. ``answer`` makes the reads, always for the asking node only, through ``Reads``: the
in-process snapshot (``xmlcurl.snapshot.Snapshot``) or SQL (``xmlcurl.lookups.SqlReads``), which
give the same records for the same database state.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from controller.domain import Conference, Gateway, Ivr, Mixer, Node, Number, Tenant
from xmlcurl import configuration, dialplan, directory, phrases
from xmlcurl.directory import UserFields
from xmlcurl.documents import NOT_FOUND, render
from xmlcurl.fetch import SECTIONS, Fetch
from xmlcurl.options import XmlCurlOptions

log = logging.getLogger(__name__)

EXTENSION = re.compile(r"^[0-9]{2,10}$")
DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")

Question = tuple[str, ...]


class Reads(Protocol):
    """Every read an answer makes. Node-scoped reads return only enabled tenants placed on that node."""

    def placed_tenant(self, domain: str, node_id: UUID) -> Tenant | None: ...
    def tenant_on_node(self, tenant_id: UUID, node_id: UUID) -> Tenant | None: ...
    def tenants_on_node(self, node_id: UUID) -> list[Tenant]: ...
    def gateways_on_node(self, node_id: UUID) -> list[tuple[Tenant, Gateway]]: ...
    def tenant(self, tenant_id: UUID) -> Tenant | None: ...
    def user(self, tenant_id: UUID, extension: str) -> UserFields | None: ...
    def conference(self, tenant_id: UUID, number: str) -> Conference | None: ...
    def conference_by_id(self, room_id: UUID) -> Conference | None: ...
    def ivr_by_extension(self, tenant_id: UUID, extension: str) -> Ivr | None: ...
    def ivr_by_name(self, tenant_id: UUID, name: str) -> Ivr | None: ...
    def gateways(self, tenant_id: UUID) -> list[Gateway]: ...
    def number(self, did: str) -> Number | None: ...
    def conference_place(self, room_id: UUID) -> tuple[Node | None, Mixer | None]: ...
    def all_nodes(self) -> list[Node]: ...
    def all_mixers(self) -> list[Mixer]: ...


@dataclass(frozen=True)
class Answer:
    """Rendered bytes and the tenants they depend on (None: anything in the farm may change them)."""

    body: bytes
    tenants: frozenset[UUID] | None


def question(fetch: Fetch) -> Question | None:
    """The cache key of a fetch, or None when the answer is "not found" whatever the database holds."""
    if fetch.section not in SECTIONS:
        return None
    if fetch.section == "configuration":
        return ("configuration", fetch.key_value) if fetch.key_value in configuration.KNOWN else None
    if fetch.section == "languages":
        # FreeSWITCH retries "en-US" as "en" by itself; a macro we do not serve needs no lookup.
        macro = fetch.get("macro_name")
        if fetch.get("lang").lower() != phrases.LANGUAGE or (macro and macro not in phrases.MACROS):
            return None
        return ("languages", macro)
    if fetch.section == "directory":
        user = fetch.get("user")
        domain = (fetch.get("domain") or fetch.key_value).lower()
        if user or fetch.get("action"):
            if not EXTENSION.match(user) or not DOMAIN.match(domain):
                return None
            return ("directory", "user", domain, user)
        if fetch.get("purpose") == "gateways" or not fetch.tag_name:
            return ("directory", "domains")
        if fetch.tag_name == "domain" and DOMAIN.match(domain):
            return ("directory", "domain", domain)
        return None
    context = fetch.first("Hunt-Context", "Caller-Context").lower()
    destination = fetch.first("Hunt-Destination-Number", "Caller-Destination-Number")
    if context == dialplan.PUBLIC and dialplan.FARM_LEG.match(destination):
        return ("dialplan", context, destination)
    if not DOMAIN.match(context) and context != dialplan.PUBLIC:
        return None
    if not dialplan.DIALLABLE.match(destination):
        return None
    return ("dialplan", context, destination)


NOT_FOUND_ANYWHERE = Answer(NOT_FOUND, None)


def _for(tenant: Tenant, body: bytes) -> Answer:
    return Answer(body, frozenset([tenant.id]))


def answer(reads: Reads, node: Node, q: Question, controller_address: str, options: XmlCurlOptions) -> Answer:
    """Build the answer to question ``q`` for ``node``; "not found" for anything outside its tenants."""
    section = q[0]
    if section == "configuration":
        return _configuration(reads, node, q[1], controller_address, options)
    if section == "directory":
        return _directory(reads, node, q, options.shared_mount)
    if section == "languages":
        doc = phrases.language(q[1], options.shared_mount)
        return Answer(render(doc), frozenset()) if doc is not None else NOT_FOUND_ANYWHERE
    return _dialplan(reads, node, q[1], q[2], controller_address, options)


def _configuration(reads: Reads, node: Node, name: str, controller: str, options: XmlCurlOptions) -> Answer:
    if name == "sofia.conf":
        adopted = [n for n in reads.all_nodes() if n.heir_id == node.id]
        return Answer(render(configuration.sofia(node, reads.gateways_on_node(node.id), options, adopted)), None)
    if name == "conference.conf":
        return Answer(render(configuration.conference()), frozenset())
    if name == "event_socket.conf":
        return Answer(render(configuration.event_socket(node, controller)), frozenset())
    if name in ("switch.conf", "post_load_switch.conf"):
        return Answer(render(configuration.switch(node, name)), frozenset())
    if name == "acl.conf":
        doc = configuration.acl(reads.all_nodes(), reads.all_mixers(), controller, options)
        return Answer(render(doc), frozenset())
    if name == "voicemail.conf":
        return Answer(render(configuration.voicemail(options)), frozenset())
    return NOT_FOUND_ANYWHERE


def _directory(reads: Reads, node: Node, q: Question, shared_mount: str = "") -> Answer:
    if q[1] == "domains":
        return Answer(render(directory.domains_document(reads.tenants_on_node(node.id))), None)
    tenant = reads.placed_tenant(q[2], node.id)
    if tenant is None:
        return NOT_FOUND_ANYWHERE
    if q[1] == "domain":
        return _for(tenant, render(directory.domains_document([tenant])))
    user = reads.user(tenant.id, q[3])
    if user is None:
        return _for(tenant, NOT_FOUND)
    return _for(tenant, render(directory.user_document(tenant, user, shared_mount)))


def _dialplan(
    reads: Reads, node: Node, context: str, destination: str, controller: str, options: XmlCurlOptions
) -> Answer:
    if context == dialplan.PUBLIC:
        return _public(reads, node, destination, controller, options)
    tenant = reads.placed_tenant(context, node.id)
    if tenant is None:
        return NOT_FOUND_ANYWHERE
    actions = _tenant_route(reads, node, tenant, destination, controller, options)
    if actions is not None:
        return _for(tenant, render(dialplan.extension(tenant.domain, destination, actions)))
    gateway = dialplan.pick_gateway(reads.gateways(tenant.id), destination)
    if gateway is None:
        return _for(tenant, NOT_FOUND)
    doc = dialplan.extension(
        tenant.domain,
        destination,
        dialplan.outbound_actions(tenant, gateway, destination),
        toll=dialplan.toll_class(destination),
    )
    return _for(tenant, render(doc))


def _tenant_route(
    reads: Reads, node: Node, tenant: Tenant, destination: str, controller: str, options: XmlCurlOptions
) -> list[dialplan.Action] | None:
    """What a number dialled inside the tenant reaches, or None (then outbound gateways are tried)."""
    if destination == dialplan.VOICEMAIL_CHECK:
        return dialplan.voicemail_check_actions(tenant)
    if destination.startswith(dialplan.VOICEMAIL_DEPOSIT_PREFIX):
        box = reads.user(tenant.id, destination[len(dialplan.VOICEMAIL_DEPOSIT_PREFIX) :])
        return dialplan.voicemail_actions(tenant, box) if box and box.voicemail else None
    if not destination.isdigit():
        return None
    user = reads.user(tenant.id, destination)
    if user is not None:
        return dialplan.user_actions(tenant, user)
    room = reads.conference(tenant.id, destination)
    if room is not None:
        return _room_actions(reads, node, tenant, room)
    ivr = reads.ivr_by_extension(tenant.id, destination)
    if ivr is not None:
        return dialplan.ivr_actions(tenant, ivr, controller, options.ivr_port)
    return None


def _room_actions(reads: Reads, node: Node, tenant: Tenant, room: Conference) -> list[dialplan.Action]:
    placed_node, mixer = reads.conference_place(room.id)
    if mixer is not None:
        where = dialplan.ConferenceWhere(local=False, mixer_sip=mixer.sip_address)
    elif placed_node is not None and placed_node.id != node.id:
        where = dialplan.ConferenceWhere(local=False, node_sip=placed_node.sip_address)
    else:  # here, or nowhere yet: a room that cannot be placed still works on the caller's node
        where = dialplan.ConferenceWhere(local=True)
    return dialplan.conference_actions(tenant, room, where)


def _public(reads: Reads, node: Node, destination: str, controller: str, options: XmlCurlOptions) -> Answer:
    leg = dialplan.FARM_LEG.match(destination)
    if leg:  # another node bridging a caller into a room this node runs
        room = reads.conference_by_id(UUID(leg.group(1)))
        placed_node = reads.conference_place(room.id)[0] if room else None
        if room is None or placed_node is None or placed_node.id != node.id:
            return NOT_FOUND_ANYWHERE  # only the node running the room takes legs for it
        tenant = reads.tenant(room.tenant_id)
        if tenant is None:
            return NOT_FOUND_ANYWHERE
        actions = dialplan.conference_actions(tenant, room, dialplan.ConferenceWhere(local=True))
        return _for(
            tenant, render(dialplan.extension(dialplan.PUBLIC, destination, actions, farm_only=True, tenant=tenant))
        )
    did = reads.number(destination)
    if did is None:
        return NOT_FOUND_ANYWHERE
    tenant = reads.tenant_on_node(did.tenant_id, node.id)
    if tenant is None:
        log.info("DID %s reached node %s but its tenant is not placed there", destination, node.name)
        return NOT_FOUND_ANYWHERE
    actions: list[dialplan.Action] | None = None
    if did.target_type == "user":
        user = reads.user(tenant.id, did.target)
        actions = dialplan.user_actions(tenant, user) if user else None
    elif did.target_type == "voicemail":
        user = reads.user(tenant.id, did.target)
        actions = dialplan.voicemail_actions(tenant, user) if user else None
    elif did.target_type == "conference":
        room = reads.conference(tenant.id, did.target)
        actions = _room_actions(reads, node, tenant, room) if room else None
    elif did.target_type == "ivr":
        ivr = reads.ivr_by_name(tenant.id, did.target)
        actions = dialplan.ivr_actions(tenant, ivr, controller, options.ivr_port) if ivr else None
    if actions is None:
        return _for(tenant, NOT_FOUND)
    return _for(tenant, render(dialplan.extension(dialplan.PUBLIC, destination, actions, tenant=tenant)))
