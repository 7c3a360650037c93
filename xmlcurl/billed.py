"""Prepaid authorisation of an outbound gateway call, per call, on top of the cached dialplan answer.

The cached answer of a gateway route is the same for every caller and carries ``LIMIT_PENDING``;
here each call gets its own: the node-side limit on the gateway leg (``execute_on_answer=sched_hangup +N``) when the
paying account can afford it, or a refusal (announcement, 402) when it cannot pay the first
increment. Answers without the marker (every other route) pass untouched after one byte search.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from uuid import UUID

from controller import billing
from controller.database import Database
from controller.errors import Unavailable
from xmlcurl import dialplan, phrases
from xmlcurl.answers import Question
from xmlcurl.documents import render
from xmlcurl.fetch import Fetch

log = logging.getLogger(__name__)

PENDING = f'data="{dialplan.LIMIT_PENDING}"'.encode()
_TENANT = re.compile(rb"nolocal:" + billing.BILL_TENANT.encode() + rb"=([0-9a-f-]{36})")


def needs_authorising(question: Question, body: bytes) -> bool:
    """Whether this answer is a gateway route whose limit depends on the caller's balance."""
    return question[0] == "dialplan" and PENDING in body


def authorise(db: Database, parsed: Fetch, question: Question, body: bytes, shared_mount: str) -> bytes:
    """The answer for this caller: the gateway route with its limit, a refusal, or unchanged (no billing).

    One autocommit read of the paying account, its rates and its balance; with the database away the
    call is refused (prepaid: no call the controller cannot account for).
    """
    found = _TENANT.search(body)
    if found is None:
        return body
    tenant_id = UUID(found.group(1).decode())
    context, destination = question[1], question[2]
    caller = parsed.get("variable_user_name")
    try:
        with db.reads() as conn:
            decision = billing.authorise(conn, tenant_id, caller, destination, datetime.now(UTC))
    except Unavailable as exc:
        log.warning("billing: cannot read balances (%s); refusing the call to %s", exc, destination)
        decision = billing.Decision(0, "billing is unavailable")
    if decision is None:
        return body
    if decision.seconds <= 0:
        actions = dialplan.refused_actions(decision.reason, phrases.sound_prefix(shared_mount))
        return render(dialplan.extension(context, destination, actions))
    _, data = dialplan.limit_action(decision.seconds)
    return body.replace(PENDING, f'data="{data}"'.encode(), 1)
