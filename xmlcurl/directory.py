"""The directory section: SIP users (with their a1-hash, never a password) and the tenants' domains."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from controller.domain import Tenant, User
from xmlcurl.documents import Element, document, params
from xmlcurl.snapshot import SnapUser

# A user as SQL returns it, or the few fields of it the snapshot keeps: both render the same.
UserFields = User | SnapUser

# How `user/1001@acme.test` reaches a registered phone: its sofia contact, in its own domain.
DIAL_STRING = (
    "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
    "${sofia_contact(*/${dialed_user}@${dialed_domain})}"
)


def _domain(section: Element, tenant: Tenant) -> Element:
    domain = etree.SubElement(section, "domain", name=tenant.domain)
    params(domain, "params", [("dial-string", DIAL_STRING)])
    return domain


def caller_id(user: UserFields) -> tuple[str, str]:
    """(name, number) a user presents inside the tenant."""
    return (user.caller_id_name or user.display_name or user.extension, user.caller_id_number or user.extension)


def user_params(user: UserFields, tenant: Tenant | None = None, shared_mount: str = "") -> list[tuple[str, str]]:
    out = [("a1-hash", user.a1_hash)]
    if user.voicemail and shared_mount and tenant is not None:
        # Recordings land where the controller's storage serves them (<tenant-id>/voicemail/<ext>/),
        # on the volume every node mounts: any node, and the spare after a failover, sees the same box.
        out.append(("vm-storage-dir", f"{shared_mount}/{tenant.id}/voicemail/{user.extension}"))
    if user.voicemail and user.vm_a1_hash:
        out.append(("vm-a1-hash", user.vm_a1_hash))  # mod_voicemail checks md5(id:domain:pin) against it
    if user.voicemail and user.vm_email:
        out.append(("vm-mailto", user.vm_email))
    out.append(("vm-enabled", "true" if user.voicemail else "false"))
    return out


def user_variables(tenant: Tenant, user: UserFields) -> list[tuple[str, str]]:
    name, number = caller_id(user)
    return [
        ("user_context", tenant.domain),
        ("effective_caller_id_name", name),
        ("effective_caller_id_number", number),
        ("toll_allow", ",".join(user.toll_allow)),
        ("accountcode", user.accountcode or tenant.domain),
        ("fsfarm_tenant", tenant.domain),
        ("fsfarm_tenant_id", str(tenant.id)),
        ("call_timeout", str(user.ring_timeout)),
    ]


def user_document(tenant: Tenant, user: UserFields, shared_mount: str = "") -> Element:
    """One user of one tenant, as sofia (sip_auth), user_call and mod_voicemail read it."""
    root, section = document("directory")
    domain = _domain(section, tenant)
    users = etree.SubElement(etree.SubElement(etree.SubElement(domain, "groups"), "group", name="default"), "users")
    entry = etree.SubElement(users, "user", id=user.extension)
    params(entry, "params", user_params(user, tenant, shared_mount))
    params(entry, "variables", user_variables(tenant, user), item="variable")
    return root


def domains_document(tenants: Iterable[Tenant]) -> Element:
    """Domains only (no users): what sofia asks for at profile start (``purpose=gateways``) or a domain lookup."""
    root, section = document("directory")
    for tenant in tenants:
        _domain(section, tenant)
    return root
