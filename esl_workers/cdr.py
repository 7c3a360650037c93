"""Call detail records from CHANNEL_HANGUP_COMPLETE, written exactly once per (node, channel uuid)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from controller import billing
from controller.stores import cdrs as cdrs_store
from esl_workers.calls import leg_fields
from esl_workers.protocol import Event
from esl_workers.timefmt import from_usec, to_int

EVENT = "CHANNEL_HANGUP_COMPLETE"


@dataclass(frozen=True)
class Cdr:
    """One leg's record; times are FreeSWITCH microsecond stamps (0 = never) so it spools as JSON."""

    channel_uuid: str
    call_uuid: str
    tenant_domain: str
    direction: str
    caller_number: str
    caller_name: str
    destination: str
    other_leg_uuid: str
    sip_call_id: str
    start_usec: int
    answer_usec: int
    end_usec: int
    duration: int
    billsec: int
    hangup_cause: str
    variables: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Cdr:
        return cls(**json.loads(text))


def from_event(event: Event) -> Cdr | None:
    """The CDR a CHANNEL_HANGUP_COMPLETE event describes; None for any other event."""
    if event.name != EVENT or not event.get("Unique-ID"):
        return None
    h = event.headers
    return Cdr(
        channel_uuid=h["Unique-ID"],
        **leg_fields(h),
        start_usec=to_int(h.get("variable_start_uepoch")),
        answer_usec=to_int(h.get("variable_answer_uepoch")),
        end_usec=to_int(h.get("variable_end_uepoch")),
        duration=to_int(h.get("variable_duration")),
        billsec=to_int(h.get("variable_billsec")),
        hangup_cause=h.get("Hangup-Cause") or h.get("variable_hangup_cause", ""),
        variables={k[len("variable_") :]: v for k, v in h.items() if k.startswith("variable_fsfarm_")},
    )


def insert_many(
    conn: psycopg.Connection[Any], node_id: UUID, cdrs: Iterable[Cdr], tenant_ids: Mapping[str, UUID | None]
) -> int:
    """Insert in order; a CDR already stored for (node, channel) is skipped. Returns rows written.

    Each billed gateway leg debits its account in the same transaction, once per leg uuid: a spool
    replay, or the heir's CDR of a leg it recovered after a failover, finds it rated already.
    """
    written = 0
    for c in cdrs:
        stored = cdrs_store.insert(
            conn,
            node_id,
            c.channel_uuid,
            call_uuid=c.call_uuid,
            tenant_id=tenant_ids.get(c.tenant_domain),
            direction=c.direction,
            caller_number=c.caller_number,
            caller_name=c.caller_name,
            destination=c.destination,
            other_leg_uuid=c.other_leg_uuid,
            sip_call_id=c.sip_call_id,
            started_at=from_usec(c.start_usec),
            answered_at=from_usec(c.answer_usec),
            ended_at=from_usec(c.end_usec),
            duration=c.duration,
            billsec=c.billsec,
            hangup_cause=c.hangup_cause,
            variables=c.variables,
        )
        written += stored
        billing.rate_leg(
            conn,
            node_id,
            c.channel_uuid,
            c.variables,
            c.destination,
            c.billsec,
            from_usec(c.answer_usec),
            from_usec(c.end_usec),
        )
    return written
