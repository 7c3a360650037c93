"""Live prepaid enforcement: the hangups that stop an account at zero, whatever the number of its calls.

When a billed leg answers it is recorded as up (``billing_legs_up``, so a restarted controller still
knows it); when one answers or ends (its CDR committed, so the balance already counts it), every leg
of its account is re-timed: ``rating.deadlines`` gives each leg the last whole epoch second it may be
up with all of them burning (FreeSWITCH bills whole epoch seconds), and the leg's node gets
``sched_del <uuid>`` then ``sched_hangup <that second> <uuid>``: the node's scheduler fires within
half a second after it, so the leg is billed exactly what the balance pays. A cut due within
``NEAR_S`` is the controller's own ``uuid_kill`` instead, sent in that second (an absolute time that
reaches FreeSWITCH after it has passed would be read as relative, far in the future). Every reconcile
(a reconnect too) re-times the accounts with legs on the node. Each re-timing replaces the limit the
dialplan set on the same gateway leg; the node holds the last one should ESL be lost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from uuid import UUID

import gevent
import gevent.lock

from controller import billing, rating
from controller.database import Database
from controller.domain import Node
from controller.errors import FarmError
from controller.stores import ledger, legs_up, nodes
from esl_workers.protocol import Event

log = logging.getLogger(__name__)

Send = Callable[[Node, str], object]  # runs one api command on a node
Spawn = Callable[..., object]  # runs a leg's scheduling: gevent.spawn in the watchers, inline elsewhere
NEAR_S = 1.5  # a cut due sooner is sent as uuid_kill at its time, not as a sched_hangup that might arrive late
KILL_INTO_SECOND_S = 0.1  # how far into its last paid second the controller's own kill is sent


def _variables(event: Event) -> dict[str, str]:
    return {k[len("variable_") :]: v for k, v in event.headers.items() if k.startswith("variable_fsfarm_bill_")}


def _answered_at(event: Event) -> datetime:
    usec = event.get("Caller-Channel-Answered-Time") or event.get("variable_answer_uepoch")
    if usec and usec.isdigit() and int(usec) > 0:
        return datetime.fromtimestamp(int(usec) / 1e6, UTC)
    return datetime.now(UTC)


class Enforcer:
    """Re-times the billed legs of every account whose leg answered or ended in a committed batch."""

    def __init__(self, db: Database, send: Send, spawn: Spawn = gevent.spawn) -> None:
        self.db = db
        self.send = send
        self.spawn = spawn
        self._wanted: dict[str, int | None] = {}  # leg uuid -> epoch second to cut it in (None: now)
        self._locks: dict[str, gevent.lock.Semaphore] = {}  # one re-timing at a time per leg, in order

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
                    self.ended(uuid)
            if account is not None:
                touched.add(account)
        self.retime_all(touched)

    def node_reconciled(self, node: Node) -> None:
        """Re-time every account with a leg on this node: after a (re)connect, and as each reconcile's safety net
        (a restart may have cut the last re-timing short; a top-up during calls counts from here)."""
        with self.db.transaction() as conn:
            found = legs_up.accounts_on_node(conn, node.id)
        self.retime_all(found)

    def retime(self, account_id: UUID) -> int | None:
        """Schedule every leg of the account to hang up when its balance runs out; return the seconds left.

        The seconds left are the soonest leg's: -1 when the balance no longer covers what is up (cut now);
        None when the account has no leg up.
        """
        return self.retime_all([account_id]).get(account_id)

    def retime_all(self, account_ids: Iterable[UUID]) -> dict[UUID, int]:
        """``retime`` for many accounts with one read of their legs and balances; the seconds left by account."""
        wanted = list(account_ids)
        if not wanted:
            return {}
        now = datetime.now(UTC)
        with self.db.transaction() as conn:
            legs = billing.calls_up_of(conn, wanted, now)
            if not legs:
                return {}
            balances = ledger.balances(conn, list(legs))
            where = {n.id: n for n in nodes.list_all(conn)}
        second = math.floor(now.timestamp())
        left: dict[UUID, int] = {}
        for account_id, up in legs.items():
            balance = balances.get(account_id, rating.ZERO)
            ends = rating.deadlines(balance, [call for _, _, call in up])
            for (uuid, node_id, _), end in zip(up, ends, strict=True):
                node = where.get(node_id)
                if node is None:
                    continue
                # The newest wish wins: a greenlet of an older re-timing still queued on the leg sends this one.
                self._wanted[uuid] = second + end if end >= 0 else None
                self.spawn(self._schedule, node, uuid)
            log.info("account %s: %d billed leg(s) up, balance %s, cut in %s s", account_id, len(up), balance, ends)
            left[account_id] = min(ends)
        return left

    def _schedule(self, node: Node, uuid: str) -> None:
        lock = self._locks.setdefault(uuid, gevent.lock.Semaphore())
        with lock:
            if uuid not in self._wanted:  # ended meanwhile
                self._locks.pop(uuid, None)
                return
            cut = self._wanted[uuid]
            try:
                if cut is not None and cut - time.time() >= NEAR_S:
                    self.send(node, f"sched_del {uuid}")
                    self.send(node, f"sched_hangup {cut} {uuid} ALLOTTED_TIMEOUT")
                    return
                if cut is not None:
                    gevent.sleep(max(0.0, cut + KILL_INTO_SECOND_S - time.time()))
                if self._wanted.get(uuid, cut) != cut:  # re-timed while waiting: that greenlet sends it
                    return
                self.send(node, f"uuid_kill {uuid} ALLOTTED_TIMEOUT")
            except FarmError as exc:  # the leg's last limit on the node still holds
                log.warning("node %s: cannot re-time billed leg %s (%s)", node.name, uuid, exc.message)

    def ended(self, uuid: str) -> None:
        """Forget a leg that hung up (its re-timing, if one is waiting, sends nothing)."""
        self._wanted.pop(uuid, None)
        lock = self._locks.get(uuid)
        if lock is not None and not lock.locked():
            del self._locks[uuid]
