"""What CHANNEL_* events and ``show channels as json`` say about live calls.

The rows live in ``controller.stores.live_calls``; a periodic reconcile against the listing removes
rows FreeSWITCH no longer has (missed hangups) and adds channels whose CREATE we missed (a reconnect).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from controller.stores.live_calls import LiveCall
from esl_workers.protocol import Event
from esl_workers.tenancy import domain_of
from esl_workers.timefmt import from_usec

STATE_BY_EVENT = {"CHANNEL_CREATE": "created", "CHANNEL_ANSWER": "answered", "CHANNEL_BRIDGE": "bridged"}
REMOVING_EVENTS = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})
EVENTS = frozenset(STATE_BY_EVENT) | REMOVING_EVENTS


@dataclass(frozen=True)
class CallChange:
    """Upsert ``call``, or remove ``channel_uuid`` (hangup)."""

    channel_uuid: str
    call: LiveCall | None = None


def leg_fields(h: Mapping[str, str]) -> dict[str, str]:
    """What a leg's headers say about who called whom, the same for the live-call table and the CDR."""
    return {
        "call_uuid": h.get("Channel-Call-UUID", ""),
        "tenant_domain": domain_of(h),
        "direction": h.get("Call-Direction", ""),
        "caller_number": h.get("Caller-Caller-ID-Number", ""),
        "caller_name": h.get("Caller-Caller-ID-Name", ""),
        "destination": h.get("variable_dialed_user") or h.get("Caller-Destination-Number", ""),
        "other_leg_uuid": h.get("Other-Leg-Unique-ID", ""),
        "sip_call_id": h.get("variable_sip_call_id", ""),
    }


def from_event(event: Event) -> CallChange | None:
    """The change a CHANNEL_* event makes to the live-call table, or None for other events."""
    h = event.headers
    channel = h.get("Unique-ID", "")
    if not channel or event.name not in EVENTS:
        return None
    if event.name in REMOVING_EVENTS:
        return CallChange(channel)
    return CallChange(
        channel,
        LiveCall(
            channel_uuid=channel,
            state=STATE_BY_EVENT[event.name],
            channel_name=h.get("Channel-Name", ""),
            **leg_fields(h),
            started_at=from_usec(h.get("Caller-Channel-Created-Time")),
            answered_at=from_usec(h.get("Caller-Channel-Answered-Time")),
            bridged_at=from_usec(h.get("Caller-Channel-Bridged-Time")),
        ),
    )


def from_show_channels(body: str) -> list[LiveCall]:
    """Rows of ``show channels as json`` (``{"row_count":0}`` when idle) as live calls."""
    data = json.loads(body) if body.strip().startswith("{") else {}
    calls = []
    for row in data.get("rows") or []:
        state = "answered" if row.get("callstate") in ("ACTIVE", "HELD") else "created"
        calls.append(
            LiveCall(
                channel_uuid=row.get("uuid", ""),
                state=state,
                call_uuid=row.get("call_uuid", ""),
                tenant_domain=(row.get("context") or "").lower()
                if row.get("context") not in ("default", "public")
                else "",
                direction=row.get("direction", ""),
                channel_name=row.get("name", ""),
                caller_number=row.get("cid_num", ""),
                caller_name=row.get("cid_name", ""),
                destination=row.get("dest", ""),
                started_at=from_usec(int(row.get("created_epoch") or 0) * 1_000_000),
            )
        )
    return [c for c in calls if c.channel_uuid]
