"""Live prepaid enforcement: every billed gateway leg up, per account, and the hangups that stop the account at zero.

When a billed leg answers or ends (its CDR committed, so the balance already counts it), the
account's remaining legs are re-timed together: ``rating.run_out`` says how many seconds the
balance lasts given all of them, and each leg's node gets ``sched_del <uuid>`` then ``sched_hangup
+T <uuid>``. The leg's own limit from the dialplan (on its A-leg, balance only) stays behind as the
node's fallback should this process lose the node. One ``Enforcer`` serves every watcher of the
process; it forgets its legs when the process restarts (the fallback limits still hold).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import gevent

from controller import billing, rating
from controller.database import Database
from controller.domain import Node
from controller.errors import FarmError
from controller.stores import ledger
from esl_workers.protocol import Event

log = logging.getLogger(__name__)

Send = Callable[[Node, str], object]  # runs one api command on a node


@dataclass(frozen=True)
class BilledLeg:
    """A billed gateway leg in progress: where it runs, who pays, at what tariff, since when (epoch seconds)."""

    uuid: str
    node: Node
    account_id: UUID
    tariff: rating.Tariff
    answered: float


class Enforcer:
    """The billed legs up in this process, and their re-timing when one answers or ends."""

    def __init__(self, db: Database, send: Send, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.send = send
        self.clock = clock
        self.legs: dict[str, BilledLeg] = {}
        self._lock = threading.Lock()

    def after_commit(self, node: Node, events: Iterable[Event]) -> None:
        """Track the billed legs these (committed) events answered or ended, and re-time their accounts."""
        touched: set[UUID] = set()
        for event in events:
            uuid = event.get("Unique-ID")
            if not uuid:
                continue
            if event.name == "CHANNEL_ANSWER" and event.get(f"variable_{billing.BILL_TENANT}"):
                leg = self._price(node, event)
                if leg is not None:
                    with self._lock:
                        self.legs[uuid] = leg
                    touched.add(leg.account_id)
            elif event.name == "CHANNEL_HANGUP_COMPLETE":
                with self._lock:
                    gone = self.legs.pop(uuid, None)
                if gone is not None:
                    touched.add(gone.account_id)
        for account_id in touched:
            self.retime(account_id)

    def _price(self, node: Node, event: Event) -> BilledLeg | None:
        try:
            tenant_id = UUID(event.get(f"variable_{billing.BILL_TENANT}"))
        except ValueError:
            return None
        number = event.get(f"variable_{billing.BILL_NUMBER}") or event.get("Caller-Destination-Number")
        answered_usec = event.get("Caller-Channel-Answered-Time") or event.get("variable_answer_uepoch")
        answered = int(answered_usec) / 1e6 if answered_usec and answered_usec.isdigit() else self.clock()
        with self.db.transaction() as conn:
            priced = billing.price(
                conn,
                tenant_id,
                event.get(f"variable_{billing.BILL_USER}"),
                number,
                datetime.fromtimestamp(answered, UTC),
            )
        if not isinstance(priced, billing.Priced):
            return None
        return BilledLeg(event.get("Unique-ID"), node, priced.account.id, priced.tariff, answered)

    def retime(self, account_id: UUID) -> int | None:
        """Schedule the hangup of every leg of the account at the second its balance runs out; return that second."""
        with self._lock:
            legs = [leg for leg in self.legs.values() if leg.account_id == account_id]
        if not legs:
            return None
        with self.db.transaction() as conn:
            balance = ledger.balance(conn, account_id)
        now = self.clock()
        # A started second counts as talked: never leave a leg running past the money.
        calls = [rating.CallUp(leg.tariff, max(0, math.ceil(now - leg.answered))) for leg in legs]
        seconds = max(0, rating.run_out(balance, calls))
        for leg in legs:
            gevent.spawn(self._schedule, leg, seconds)
        log.info("account %s: %d billed leg(s) up, balance %s lasts %d s more", account_id, len(legs), balance, seconds)
        return seconds

    def _schedule(self, leg: BilledLeg, seconds: int) -> None:
        try:
            self.send(leg.node, f"sched_del {leg.uuid}")
            self.send(leg.node, f"sched_hangup +{seconds} {leg.uuid} ALLOTTED_TIMEOUT")
        except FarmError as exc:  # the node's own limit on the leg still holds
            log.warning("node %s: cannot re-time billed leg %s (%s)", leg.node.name, leg.uuid, exc.message)
