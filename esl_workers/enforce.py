"""Live prepaid enforcement: the hangups that stop an account at zero, whatever the number of its calls.

When a billed leg answers it is recorded as up (``billing_legs_up``, so a restarted controller still
knows it); when one answers or ends (its CDR committed, so the balance already counts it), every leg
of its account is re-timed: ``rating.run_out`` gives the seconds the balance lasts with all of them
burning, and each leg's node gets ``sched_del <uuid>`` then ``sched_hangup <epoch second> <uuid>``, one
second for all of them. Every reconcile (a reconnect too) re-times the accounts with legs on the node.
The limit the dialplan set on the caller's channel stays as the node's fallback should ESL be lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from uuid import UUID

import gevent

from controller import billing, rating
from controller.database import Database
from controller.domain import Node
from controller.errors import FarmError
from controller.stores import ledger, legs_up, nodes
from esl_workers.protocol import Event

log = logging.getLogger(__name__)

Send = Callable[[Node, str], object]  # runs one api command on a node


def _variables(event: Event) -> dict[str, str]:
    return {k[len("variable_") :]: v for k, v in event.headers.items() if k.startswith("variable_fsfarm_bill_")}


def _answered_at(event: Event) -> datetime:
    usec = event.get("Caller-Channel-Answered-Time") or event.get("variable_answer_uepoch")
    if usec and usec.isdigit() and int(usec) > 0:
        return datetime.fromtimestamp(int(usec) / 1e6, UTC)
    return datetime.now(UTC)


class Enforcer:
    """Re-times the billed legs of every account whose leg answered or ended in a committed batch."""

    def __init__(self, db: Database, send: Send) -> None:
        self.db = db
        self.send = send

    def after_commit(self, node: Node, events: Iterable[Event]) -> None:
        """Record the billed legs these events answered, then re-time each account they touched."""
        touched: set[UUID] = set()
        for event in events:
            uuid = event.get("Unique-ID")
            if not uuid or event.name not in ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
                continue
            variables = _variables(event)
            if not variables.get(billing.BILL_TENANT):
                continue
            with self.db.transaction() as conn:
                if event.name == "CHANNEL_ANSWER":
                    account = billing.leg_answered(conn, node.id, uuid, variables, _answered_at(event))
                else:  # its CDR, in this batch, already removed it from the legs up
                    account = billing.paying_account_of(conn, variables)
            if account is not None:
                touched.add(account)
        for account_id in touched:
            self.retime(account_id)

    def node_reconciled(self, node: Node) -> None:
        """Re-time every account with a leg on this node: after a (re)connect, and as each reconcile's safety net
        (a restart may have cut the last re-timing short; a top-up during calls counts from here)."""
        with self.db.transaction() as conn:
            found = legs_up.accounts_on_node(conn, node.id)
        for account_id in found:
            self.retime(account_id)

    def retime(self, account_id: UUID) -> int | None:
        """Schedule every leg of the account to hang up when its balance runs out; return the seconds left."""
        now = datetime.now(UTC)
        with self.db.transaction() as conn:
            legs = billing.calls_up(conn, account_id, now)
            if not legs:
                return None
            balance = ledger.balance(conn, account_id)
            where = {node_id: nodes.get(conn, node_id) for node_id in {node_id for _, node_id, _ in legs}}
        seconds = max(0, rating.run_out(balance, [up for _, _, up in legs]))
        # One epoch second for every leg (not "+T" each): sends that straddle a second must not split them.
        when = f"{int(now.timestamp()) + seconds}" if seconds else "+0"
        for uuid, node_id, _ in legs:
            node = where.get(node_id)
            if node is not None:
                gevent.spawn(self._schedule, node, uuid, when)
        log.info("account %s: %d billed leg(s) up, balance %s lasts %d s more", account_id, len(legs), balance, seconds)
        return seconds

    def _schedule(self, node: Node, uuid: str, when: str) -> None:
        try:
            self.send(node, f"sched_del {uuid}")
            self.send(node, f"sched_hangup {when} {uuid} ALLOTTED_TIMEOUT")
        except FarmError as exc:  # the node's own limit on the caller's channel still holds
            log.warning("node %s: cannot re-time billed leg %s (%s)", node.name, uuid, exc.message)
