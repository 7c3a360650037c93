"""The dialplan section: one context per tenant (named by its domain) plus the carriers' ``public`` context.

FreeSWITCH asks once per call with the context and the dialled number; the answer is the one
extension that number reaches, so it can be cached per (node, context, number). Every route is
built from records of one tenant only: nothing here can name another tenant's user or room.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import re2
from lxml import etree

from controller import billing
from controller.domain import Conference, Gateway, Ivr, Tenant
from controller.validation import compile_pattern
from xmlcurl.directory import UserFields
from xmlcurl.documents import Element, document

PUBLIC = "public"
VOICEMAIL_CHECK = "*98"  # feature code: listen to one's own mailbox
VOICEMAIL_DEPOSIT_PREFIX = "*99"  # *99<ext>: leave a message straight in <ext>'s mailbox
DIALLABLE = re.compile(r"^[0-9*#+]{1,32}$")
FARM_LEG = re.compile(r"^conf-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
FARM_ACL = "fsfarm-nodes"
# In a cached gateway answer: replaced per call by the caller's limit (xmlcurl.billed), harmless if left.
LIMIT_PENDING = "nolocal:fsfarm_bill_limit=pending"  # replaced per call by limit_action's data
REFUSED_SIP = "402 Payment Required"
REFUSED_PROMPT = "ivr/ivr-insufficient_balance"
MIXER_FALLBACK_CODECS = "PCMU,PCMA"  # what a mixer leg offers after the caller's own codec

Action = tuple[str, str]


@dataclass(frozen=True)
class ConferenceWhere:
    """Where a room runs, seen from the asking node: here, on another node's SIP address, or on a mixer."""

    local: bool
    node_sip: str | None = None
    mixer_sip: str | None = None


def conference_name(tenant: Tenant, room: Conference) -> str:
    """The FreeSWITCH conference name: unique across tenants because it carries the domain."""
    return f"{room.number}-{tenant.domain}"


def toll_class(number: str) -> str:
    """local, domestic or international, for the caller's ``toll_allow``."""
    digits = number.lstrip("+")
    if number.startswith("+") or digits.startswith(("00", "011")):
        return "international"
    if digits.startswith("0") or len(digits) >= 10:
        return "domestic"
    return "local"


def user_actions(tenant: Tenant, user: UserFields) -> list[Action]:
    """Ring the user for their ring timeout, then (if enabled) their voicemail."""
    actions = [
        ("set", f"call_timeout={user.ring_timeout}"),
        ("set", "hangup_after_bridge=true"),
        ("set", "continue_on_fail=true"),
        ("bridge", f"user/{user.extension}@{tenant.domain}"),
    ]
    if user.voicemail:
        actions += [("answer", ""), ("voicemail", f"default {tenant.domain} {user.extension}")]
    return actions


def voicemail_actions(tenant: Tenant, user: UserFields) -> list[Action]:
    return [("answer", ""), ("voicemail", f"default {tenant.domain} {user.extension}")]


def voicemail_check_actions(tenant: Tenant) -> list[Action]:
    # ${user_name} is set only for a caller authenticated in this domain; others are asked their box.
    return [("answer", ""), ("voicemail", f"check default {tenant.domain} ${{user_name}}")]


def conference_actions(tenant: Tenant, room: Conference, where: ConferenceWhere) -> list[Action]:
    """Join locally, or bridge the caller to the node or mixer that runs the room."""
    if where.mixer_sip:
        # Negotiate the caller's codec in our wideband-first order (not the phone's) with early media, then
        # offer the mixer that same codec first: the room stays wideband and FreeSWITCH does not transcode.
        codecs = f"{{absolute_codec_string='${{rtp_use_codec_name}},{MIXER_FALLBACK_CODECS}'}}"
        return [
            ("set", "hangup_after_bridge=true"),
            ("set", "rtp_codec_negotiation=greedy"),
            ("pre_answer", ""),
            ("bridge", f"{codecs}sofia/internal/room-{room.id}@{where.mixer_sip}"),
        ]
    if not where.local and where.node_sip:
        return [("set", "hangup_after_bridge=true"), ("bridge", f"sofia/internal/conf-{room.id}@{where.node_sip}")]
    data = f"{conference_name(tenant, room)}@{room.profile}"
    if room.pin:
        data += f"+{room.pin}"
    return [("answer", ""), ("conference", data)]


def ivr_actions(tenant: Tenant, ivr: Ivr, controller: str, port: int) -> list[Action]:
    """Hand the call to the controller's outbound ESL server, telling it which IVR of which tenant."""
    return [
        ("set", f"fsfarm_tenant={tenant.domain}"),
        ("set", f"fsfarm_tenant_id={tenant.id}"),
        ("set", f"fsfarm_ivr={ivr.name}"),
        ("set", f"fsfarm_ivr_id={ivr.id}"),
        ("socket", f"{controller}:{port} async full"),
    ]


def gateway_name(tenant: Tenant, gateway: Gateway) -> str:
    """Sofia gateway names are global to a node: prefix the tenant so two tenants' "carrier" differ."""
    return f"{tenant.domain}--{gateway.name}"


def billing_marks(tenant: Tenant, number: str) -> list[Action]:
    """Mark the gateway leg (only it: ``nolocal``) so its CDR is rated: tenant, paying caller, dialled number."""
    return [
        ("export", f"nolocal:{billing.BILL_TENANT}={tenant.id}"),
        ("export", f"nolocal:{billing.BILL_USER}=${{user_name}}"),  # the authenticated caller, expanded at call time
        ("export", f"nolocal:{billing.BILL_NUMBER}={number}"),
    ]


def outbound_actions(tenant: Tenant, gateway: Gateway, number: str) -> list[Action]:
    dialled = number.lstrip("+") if gateway.strip_plus else number
    actions: list[Action] = billing_marks(tenant, number)
    if gateway.caller_id_number:
        actions.append(("set", f"effective_caller_id_number={gateway.caller_id_number}"))
    if gateway.caller_id_name:
        actions.append(("set", f"effective_caller_id_name={gateway.caller_id_name}"))
    actions += [
        ("set", "hangup_after_bridge=true"),
        ("export", LIMIT_PENDING),
        ("bridge", f"sofia/gateway/{gateway_name(tenant, gateway)}/{dialled}"),
    ]
    return actions


def limit_action(seconds: int) -> Action:
    """Hang up the gateway leg ``seconds`` after its answer, scheduled by the node itself (it holds without the
    controller). On that leg (``nolocal``), not the caller's: the controller's re-timing replaces it there."""
    return ("export", f"nolocal:execute_on_answer=sched_hangup +{seconds} ALLOTTED_TIMEOUT")


def refused_actions(reason: str, sound_prefix: str) -> list[Action]:
    """Tell the caller the balance is too low (early media, when the farm's prompts are mounted), then 402."""
    actions: list[Action] = [("set", f"fsfarm_bill_refused={reason}")]
    if sound_prefix:
        actions += [("pre_answer", ""), ("playback", f"{sound_prefix}/{REFUSED_PROMPT}.wav")]
    return [*actions, ("respond", REFUSED_SIP)]


@functools.lru_cache(maxsize=4096)
def _dial_pattern(pattern: str) -> Any:
    """The compiled RE2 pattern, or None for one RE2 refuses (stored before patterns were checked)."""
    try:
        return compile_pattern(pattern)
    except re2.error:
        return None


def pick_gateway(gateways: list[Gateway], number: str) -> Gateway | None:
    """The first gateway (by name) whose dial pattern takes the number (RE2: linear in the number's length)."""
    for gateway in sorted(gateways, key=lambda g: g.name):
        compiled = _dial_pattern(gateway.dial_pattern)
        if compiled is not None and compiled.search(number):
            return gateway
    return None


def extension(
    context: str,
    destination: str,
    actions: list[Action],
    *,
    toll: str | None = None,
    farm_only: bool = False,
    tenant: Tenant | None = None,
) -> Element:
    """A dialplan document with one context and one extension matching exactly ``destination``."""
    root, section = document("dialplan")
    ctx = etree.SubElement(section, "context", name=context)
    ext = etree.SubElement(ctx, "extension", name=f"route-{destination}")
    conditions = [("destination_number", f"^{re.escape(destination)}$")]
    if farm_only:  # a leg from another node of the farm, never from a carrier
        conditions.append((f"${{acl(${{network_addr}} {FARM_ACL})}}", "^true$"))
    if toll:
        conditions.append(("${toll_allow}", f"(^|,){toll}(,|$)"))
    last = None
    for field, expression in conditions:
        last = etree.SubElement(ext, "condition", field=field, expression=expression)
    assert last is not None
    if tenant is not None:
        etree.SubElement(last, "action", application="set", data=f"fsfarm_tenant={tenant.domain}")
    for app, data in actions:
        etree.SubElement(last, "action", application=app, data=data)
    if toll:
        etree.SubElement(last, "anti-action", application="respond", data="403 Forbidden")
    return root
