"""Rating, pure: which rate a number gets, what a call of N seconds costs, how long a balance lasts.

No I/O: the stores hand in the rates and assignments, the callers (CDR rating, the dialplan's
authorisation, the enforcement) hand in balances and the calls up. Money is ``Decimal``; a cost is
rounded up to the ledger's precision (a micro-unit), so a rated call never costs less than its rate.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from uuid import UUID

PRECISION = Decimal("0.000001")  # numeric(20, 6) in sql/0015_billing.sql
MAX_SECONDS = 86_400  # the longest a prepaid call is allowed, whatever the balance (a free destination too)
ZERO = Decimal(0)


@dataclass(frozen=True)
class Tariff:
    """A rate as one tenant pays it: the deck's prices with the resale margin added."""

    prefix: str
    price_per_minute: Decimal
    connect_fee: Decimal = ZERO
    first: int = 1  # seconds billed for the first increment (1/1, 6/6, 60/60...)
    next: int = 1  # seconds of each further increment


@dataclass(frozen=True)
class Assignment:
    """A deck a tenant is rated with from ``effective_from``, resold at ``margin_percent``."""

    deck_id: UUID
    effective_from: datetime
    margin_percent: Decimal = ZERO


@dataclass(frozen=True)
class CallUp:
    """A billed call in progress: its tariff and the billsec its node would report if it ended now.

    FreeSWITCH's billsec is the difference of the whole epoch seconds of hangup and answer, so
    ``elapsed`` is ``floor(now) - floor(answered)``, and every call's cost steps at whole epoch seconds.
    """

    tariff: Tariff
    elapsed: int = 0


def digits(number: str) -> str:
    """The E.164 digits prefixes are matched against: no leading ``+`` or international ``00``."""
    number = number.strip()
    if number.startswith("+"):
        return number[1:]
    if number.startswith("00"):
        return number[2:]
    return number


def deck_in_force(assignments: Iterable[Assignment], at: datetime) -> Assignment | None:
    """The newest assignment already in force at ``at``; None before the first one."""
    due = [a for a in assignments if a.effective_from <= at]
    return max(due, key=lambda a: a.effective_from) if due else None


def longest_prefix(prefixes: Iterable[str], number: str) -> str | None:
    """The longest of ``prefixes`` that the number's E.164 digits start with; None when none does."""
    wanted = digits(number)
    best: str | None = None
    for prefix in prefixes:
        if wanted.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def with_margin(
    prefix: str, price_per_minute: Decimal, connect_fee: Decimal, first: int, next: int, margin_percent: Decimal
) -> Tariff:
    """The tariff a tenant pays for a deck's rate resold at ``margin_percent``."""
    factor = 1 + margin_percent / 100
    return Tariff(prefix, price_per_minute * factor, connect_fee * factor, first, next)


def billed_seconds(seconds: int, first: int, next: int) -> int:
    """Seconds billed for ``seconds`` talked: nothing for an unanswered call, else whole increments."""
    if seconds <= 0:
        return 0
    if seconds <= first:
        return first
    return first + -(-(seconds - first) // next) * next


def cost(tariff: Tariff, seconds: int) -> Decimal:
    """What ``seconds`` of talk cost: connect fee plus billed seconds at the per-minute price, rounded up."""
    billed = billed_seconds(seconds, tariff.first, tariff.next)
    if billed == 0:
        return ZERO
    return (tariff.connect_fee + tariff.price_per_minute * billed / 60).quantize(PRECISION, rounding=ROUND_CEILING)


def spent(calls: Sequence[CallUp], after: int) -> Decimal:
    """What the calls up will have cost in total ``after`` more seconds."""
    return sum((cost(c.tariff, c.elapsed + after) for c in calls), ZERO)


def run_out(balance: Decimal, calls: Sequence[CallUp], limit: int = MAX_SECONDS) -> int:
    """Seconds from now the calls up may all go on before together they cost more than ``balance``.

    -1 when the balance does not even cover what they cost now; ``limit`` when it outlasts it. Cutting
    every call at the answer leaves a ledger that ends between zero and one increment per call.
    """
    if spent(calls, 0) > balance:
        return -1
    if spent(calls, limit) <= balance:
        return limit
    low, high = 0, limit  # spent(low) fits, spent(high) does not: costs only grow with time
    while high - low > 1:
        middle = (low + high) // 2
        if spent(calls, middle) <= balance:
            low = middle
        else:
            high = middle
    return low


def _last_free(call: CallUp, after: int, limit: int) -> int:
    """The last second (from now) the call may reach costing what it costs at ``after``: its increment's end."""
    t = call.tariff
    if t.price_per_minute == 0:  # only a connect fee: it never costs more
        return limit
    billed = billed_seconds(call.elapsed + after, t.first, t.next)
    return min(limit, max(after, billed - call.elapsed))


def deadlines(balance: Decimal, calls: Sequence[CallUp], limit: int = MAX_SECONDS) -> list[int]:
    """Per call, the last second from now it may be up so that together they never cost more than ``balance``.

    All calls may go on for ``run_out`` seconds; each then runs to the end of the increment it has paid
    for, and what is left buys further increments, the call cut first (then the one billed least) served
    first. So the balance left when they are cut is less than the next increment of any of them.
    -1: cut it now (the balance does not even cover what the calls cost already).
    """
    common = run_out(balance, calls, limit)
    if common < 0 or common >= limit:
        return [common] * len(calls)
    ends = [_last_free(c, common, limit) for c in calls]
    left = balance - sum((cost(c.tariff, c.elapsed + end) for c, end in zip(calls, ends, strict=True)), ZERO)
    # The call cut first, then the one billed least: cuts stay together, billsecs even. A call that cannot
    # buy its next increment never will (what is left only shrinks), so it leaves the heap for good.
    waiting = [(end, c.elapsed + end, i) for i, (c, end) in enumerate(zip(calls, ends, strict=True))]
    heapq.heapify(waiting)
    while waiting:
        end, _, i = heapq.heappop(waiting)
        c = calls[i]
        if end >= limit:
            continue
        step = cost(c.tariff, c.elapsed + end + 1) - cost(c.tariff, c.elapsed + end)
        if step <= left:
            left -= step
            ends[i] = _last_free(c, end + 1, limit)
            heapq.heappush(waiting, (ends[i], c.elapsed + ends[i], i))
    return ends


def seconds_affordable(balance: Decimal, others: Sequence[CallUp], tariff: Tariff, limit: int = MAX_SECONDS) -> int:
    """How long a new call at ``tariff`` may last given the account's other calls up; 0: refuse it.

    0 means the balance cannot pay its first increment on top of what the others burn meanwhile.
    """
    return max(0, run_out(balance, [*others, CallUp(tariff, 0)], limit))
