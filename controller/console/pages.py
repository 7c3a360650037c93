"""What each console page shows and may do, as data: the page template and ``console.js`` render it.

Every list a page shows is an API answer and every button is an API call with the session's cookie,
so the console validates and isolates exactly as the API does: it has no data path of its own.
Forms are built from the same field parsers (``controller.validation``) the API checks input with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from controller import billing, provisioning
from controller import validation as v


@dataclass(frozen=True)
class Column:
    """One column of a table: the answer's key, its heading and how to show it."""

    key: str
    label: str
    show: str = "text"  # text | state | time | yesno | audio | list | seconds


@dataclass(frozen=True)
class Action:
    """A button on each row (or above the table): an API call, ``{name}`` filled from the row."""

    label: str
    method: str
    path: str
    confirm: str = ""  # asked before the call ("Hang up {uuid}?")
    ask: tuple[str, ...] = ()  # fields prompted for and sent as the JSON body
    body: dict[str, Any] = field(default_factory=dict)
    danger: bool = False


@dataclass(frozen=True)
class Form:
    """A create (POST) or edit (PATCH) form; inputs come from the API's own field parsers."""

    method: str
    path: str
    fields: list[dict[str, Any]]
    title: str


@dataclass(frozen=True)
class Page:
    """One console page: where its rows come from, how they show, what can be done."""

    slug: str
    title: str
    view: str  # table | overview | placement | import | prompts | cdrs | voicemail | members
    src: str = ""
    columns: tuple[Column, ...] = ()
    key: str = "id"
    actions: tuple[Action, ...] = ()
    create: Form | None = None
    edit: Form | None = None
    poll: float = 0  # seconds between refreshes; 0: load once
    blurb: str = ""

    def spec(self) -> dict[str, Any]:
        """The page as JSON for ``console.js``."""
        return asdict(self)


_INPUT_HIDDEN = {"password", "vm_pin", "pin", "esl_password", "xmlcurl_password"}


def form_fields(
    fields: dict[str, v.Field], *, skip: tuple[str, ...] = (), record: type | None = None
) -> list[dict[str, Any]]:
    """Form inputs for an API body's fields: name, JSON Schema of what the API accepts, required; a
    ``record`` type's defaults show as each input's starting value."""
    defaults = (
        {f.name: f.default for f in dataclasses.fields(record) if f.default is not dataclasses.MISSING}
        if record
        else {}
    )
    out = []
    for name, f in fields.items():
        if name in skip:
            continue
        schema = f.schema()
        if name in defaults and isinstance(defaults[name], bool | int | str):
            schema["default"] = defaults[name]
        out.append({"name": name, "schema": schema, "required": f.required, "secret": name in _INPUT_HIDDEN})
    return out


def _kind_form(kind: str, method: str, path: str, title: str, partial: bool) -> Form:
    k = provisioning.KINDS[kind]
    skip = k.immutable if partial else ()
    fields = form_fields(k.fields, skip=(*skip, "pinned_node"), record=k.store.cls)
    if partial:
        fields = [{**f, "required": False} for f in fields]
    return Form(method, path, fields, title)


T = "/api/v1/tenants/{tenant}"
B = "/api/v1/billing/tenants/{tenant}"


def farm_pages() -> list[Page]:
    """The farm admin's pages (the tenant pages come on top, for any tenant)."""
    return [
        Page("overview", "Overview", "overview", "/api/v1/nodes", poll=2, blurb="Live calls and registrations."),
        Page(
            "nodes",
            "Nodes",
            "table",
            "/api/v1/nodes",
            (
                Column("name", "Name"),
                Column("health", "Health", "state"),
                Column("admin_state", "Admin state", "state"),
                Column("spare", "Spare", "yesno"),
                Column("live_calls", "Calls"),
                Column("registrations", "Registrations"),
                Column("tenants", "Tenants"),
                Column("capacity", "Capacity"),
                Column("sip_address", "SIP address"),
            ),
            key="name",
            actions=(
                Action("Drain", "POST", "/api/v1/nodes/{name}/drain", confirm="Drain {name}? Its tenants move."),
                Action("Remove", "DELETE", "/api/v1/nodes/{name}", confirm="Remove node {name}?", danger=True),
            ),
            create=Form("POST", "/api/v1/nodes", form_fields(provisioning.NODE_FIELDS), "Add a node"),
            poll=2,
        ),
        Page("placement", "Placement", "placement", "/api/v1/placement", poll=1),
        Page(
            "failovers",
            "Failovers",
            "table",
            "/api/v1/failovers",
            (
                Column("detected_at", "When", "time"),
                Column("node_name", "Node"),
                Column("spare_name", "Heir"),
                Column("state", "State", "state"),
                Column("reason", "Why"),
                Column("takeover", "Address"),
                Column("decided_after", "Decided (s)", "seconds"),
                Column("completed_after", "Done (s)", "seconds"),
                Column("tenants_moved", "Tenants moved"),
                Column("calls_recovered", "Calls kept"),
            ),
            poll=3,
        ),
        Page(
            "mixers",
            "Mixers",
            "table",
            "/api/v1/mixers",
            (
                Column("name", "Name"),
                Column("health", "Health", "state"),
                Column("admin_state", "Admin state", "state"),
                Column("control_url", "Control URL"),
                Column("capacity", "Capacity"),
            ),
            key="name",
            actions=(Action("Remove", "DELETE", "/api/v1/mixers/{name}", confirm="Remove mixer {name}?", danger=True),),
            create=Form("POST", "/api/v1/mixers", form_fields(provisioning.MIXER_FIELDS), "Add a mixer"),
            poll=5,
        ),
        Page(
            "decks",
            "Rate decks",
            "table",
            "/api/v1/billing/decks",
            (
                Column("name", "Name"),
                Column("currency", "Currency"),
                Column("description", "Description"),
                Column("tenant_id", "Tenant's own"),
            ),
            key="name",
            actions=(
                Action("Delete", "DELETE", "/api/v1/billing/decks/{name}", confirm="Delete deck {name}?", danger=True),
            ),
            create=Form("POST", "/api/v1/billing/decks", form_fields(billing.DECK_FIELDS), "Add a rate deck"),
            blurb="Rates are loaded as CSV: fsfarm billing deck import, or PUT /api/v1/billing/decks/NAME/rates.",
        ),
        Page(
            "tenants",
            "Tenants",
            "table",
            "/api/v1/tenants",
            (Column("domain", "Domain"), Column("name", "Name"), Column("enabled", "Enabled", "yesno")),
            key="domain",
            actions=(
                Action("Open", "GO", "/console/tenants/{domain}/users"),
                Action(
                    "Delete", "DELETE", "/api/v1/tenants/{domain}?force=true", confirm="Delete {domain}?", danger=True
                ),
            ),
            create=Form("POST", "/api/v1/tenants", form_fields(provisioning.TENANT_FIELDS), "Create a tenant"),
        ),
    ]


def tenant_pages() -> list[Page]:
    """A tenant's pages: its admin sees these and nothing else; a farm admin sees them for every tenant."""
    return [
        Page(
            "users",
            "Users",
            "table",
            f"{T}/users",
            (
                Column("extension", "Extension"),
                Column("display_name", "Name"),
                Column("caller_id_number", "Caller ID"),
                Column("voicemail", "Voicemail", "yesno"),
                Column("enabled", "Enabled", "yesno"),
                Column("console_admin", "Console admin", "yesno"),
            ),
            key="extension",
            actions=(
                Action("Reset password", "PATCH", f"{T}/users/{{extension}}", ask=("password",)),
                Action("Delete", "DELETE", f"{T}/users/{{extension}}", confirm="Delete {extension}?", danger=True),
            ),
            create=_kind_form("users", "POST", f"{T}/users", "Create a user", partial=False),
            edit=_kind_form("users", "PATCH", f"{T}/users/{{extension}}", "Edit user", partial=True),
        ),
        Page(
            "import",
            "Import users",
            "import",
            f"{T}/users/import",
            blurb="Users from a CSV file (ours or FusionPBX's).",
        ),
        Page(
            "numbers",
            "Numbers",
            "table",
            f"{T}/numbers",
            (
                Column("number", "Number"),
                Column("target_type", "Goes to"),
                Column("target", "Target"),
                Column("description", "Description"),
            ),
            key="number",
            actions=(Action("Delete", "DELETE", f"{T}/numbers/{{number}}", confirm="Delete {number}?", danger=True),),
            create=_kind_form("numbers", "POST", f"{T}/numbers", "Add a number", partial=False),
        ),
        Page(
            "conferences",
            "Conferences",
            "table",
            f"{T}/conferences",
            (
                Column("number", "Number"),
                Column("name", "Name"),
                Column("profile", "Profile"),
                Column("max_members", "Max members"),
                Column("record", "Recorded", "yesno"),
            ),
            key="number",
            actions=(
                Action("Members", "GO", "/console/tenants/{tenant}/conferences/{number}"),
                Action("Delete", "DELETE", f"{T}/conferences/{{number}}", confirm="Delete {number}?", danger=True),
            ),
            create=_kind_form("conferences", "POST", f"{T}/conferences", "Add a conference", partial=False),
            edit=_kind_form("conferences", "PATCH", f"{T}/conferences/{{number}}", "Edit conference", partial=True),
        ),
        Page(
            "ivrs",
            "IVRs",
            "table",
            f"{T}/ivrs",
            (Column("name", "Name"), Column("extension", "Extension"), Column("description", "Description")),
            key="name",
            actions=(Action("Delete", "DELETE", f"{T}/ivrs/{{name}}", confirm="Delete IVR {name}?", danger=True),),
            create=_kind_form("ivrs", "POST", f"{T}/ivrs", "Add an IVR", partial=False),
        ),
        Page(
            "gateways",
            "Gateways",
            "table",
            f"{T}/gateways",
            (Column("name", "Name"), Column("proxy", "Proxy"), Column("register", "Registers", "yesno")),
            key="name",
            actions=(Action("Delete", "DELETE", f"{T}/gateways/{{name}}", confirm="Delete {name}?", danger=True),),
            create=_kind_form("gateways", "POST", f"{T}/gateways", "Add a gateway", partial=False),
        ),
        Page("prompts", "Prompts", "prompts", f"{T}/prompts", (Column("name", "Name"), Column("size", "Bytes"))),
        Page("voicemail", "Voicemail", "voicemail", f"{T}/users"),
        Page(
            "recordings",
            "Recordings",
            "table",
            f"{T}/recordings",
            (Column("name", "Name", "audio"), Column("size", "Bytes"), Column("modified", "When", "time")),
        ),
        Page(
            "calls",
            "Live calls",
            "table",
            f"{T}/calls",
            (
                Column("caller_number", "From"),
                Column("destination", "To"),
                Column("direction", "Leg"),
                Column("state", "State", "state"),
                Column("node", "Node"),
                Column("answered_at", "Answered", "time"),
                Column("channel_uuid", "Channel"),
            ),
            key="channel_uuid",
            actions=(
                Action("Transfer", "POST", f"{T}/calls/{{channel_uuid}}/transfer", ask=("to",)),
                Action("Hang up", "DELETE", f"{T}/calls/{{channel_uuid}}", confirm="Hang up this call?", danger=True),
            ),
            poll=1,
        ),
        Page(
            "registrations",
            "Registrations",
            "table",
            f"{T}/registrations",
            (
                Column("username", "User"),
                Column("contact", "Contact"),
                Column("user_agent", "Phone"),
                Column("network_ip", "From"),
                Column("expires_at", "Expires", "time"),
            ),
            poll=5,
        ),
        Page(
            "billing",
            "Balance",
            "table",
            f"{B}/accounts",
            (
                Column("user", "User (— : the tenant's)"),
                Column("currency", "Currency"),
                Column("balance", "Balance"),
                Column("low_balance", "Low below"),
                Column("low", "Low", "yesno"),
            ),
            actions=(
                Action("Ledger", "GO", "/console/tenants/{tenant}/ledger?account={id}"),
                Action(
                    "Top up",
                    "POST",
                    f"{B}/accounts/{{id}}/ledger",
                    ask=("amount", "reference"),
                    body={"kind": "top-up"},
                ),
            ),
            create=Form("POST", f"{B}/accounts", form_fields(billing.ACCOUNT_FIELDS), "Open an account"),
            blurb="Only a farm admin adds money; the balance is the sum of the ledger.",
        ),
        Page(
            "ledger",
            "Ledger",
            "table",
            f"{B}/accounts/{{q_account}}/ledger?limit=1000",
            (
                Column("created_at", "When", "time"),
                Column("kind", "Kind", "state"),
                Column("amount", "Amount"),
                Column("destination", "Destination"),
                Column("billed_seconds", "Billed (s)"),
                Column("reference", "Reference"),
                Column("note", "Note"),
            ),
        ),
        Page(
            "rated",
            "Rated calls",
            "table",
            f"{B}/calls?limit=1000",
            (
                Column("created_at", "When", "time"),
                Column("destination", "Destination"),
                Column("prefix", "Prefix"),
                Column("billsec", "Talked (s)"),
                Column("billed_seconds", "Billed (s)"),
                Column("price_per_minute", "Per minute"),
                Column("amount", "Cost"),
            ),
        ),
        Page(
            "cdrs",
            "Call records",
            "cdrs",
            f"{T}/cdrs?limit=1000",
            (
                Column("started_at", "Start", "time"),
                Column("caller_number", "From"),
                Column("destination", "To"),
                Column("direction", "Direction"),
                Column("duration", "Duration (s)"),
                Column("billsec", "Billed (s)"),
                Column("hangup_cause", "Hang-up cause"),
            ),
        ),
    ]


def members_page(tenant: str, number: str) -> Page:
    """A room's live members, with mute/unmute/kick on each."""
    room = f"/api/v1/tenants/{tenant}/conferences/{number}"
    return Page(
        "conferences",
        f"Room {number}",
        "members",
        f"{room}/members",
        (
            Column("member_id", "Member"),
            Column("caller_number", "Caller"),
            Column("caller_name", "Name"),
            Column("can_speak", "Can speak", "yesno"),
            Column("node", "Node"),
            Column("joined_at", "Joined", "time"),
        ),
        key="member_id",
        actions=(
            Action("Mute", "POST", f"{room}/mute", body={"member": "{member_id}"}),
            Action("Unmute", "POST", f"{room}/unmute", body={"member": "{member_id}"}),
            Action(
                "Kick", "POST", f"{room}/kick", body={"member": "{member_id}"}, confirm="Kick {member_id}?", danger=True
            ),
        ),
        poll=1,
    )


def find(pages: list[Page], slug: str) -> Page | None:
    """The page with this slug, if there is one."""
    return next((p for p in pages if p.slug == slug), None)
