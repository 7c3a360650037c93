"""The pure rating rules: longest prefix, deck in force, increments, and how long a balance lasts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from controller import rating
from controller.rating import CallUp, Tariff

increments = st.sampled_from([(1, 1), (6, 6), (60, 60), (30, 6), (60, 1)])
prices = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("5"), places=3)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal("1"), places=2)
balances = st.decimals(min_value=Decimal(0), max_value=Decimal("50"), places=6)


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    first, next_ = draw(increments)
    return Tariff("49", draw(prices), draw(fees), first, next_)


def test_the_longest_matching_prefix_wins_whatever_the_number_is_written_as() -> None:
    prefixes = ["4", "49", "4930", "1"]
    assert rating.longest_prefix(prefixes, "+4930123456") == "4930"
    assert rating.longest_prefix(prefixes, "004940123") == "49"
    assert rating.longest_prefix(prefixes, "44123") == "4"
    assert rating.longest_prefix(prefixes, "33123") is None


@given(
    st.lists(st.text("0123456789", min_size=1, max_size=6), min_size=1, max_size=20), st.text("0123456789", max_size=12)
)
def test_no_longer_prefix_of_the_number_is_left_out(prefixes: list[str], number: str) -> None:
    best = rating.longest_prefix(prefixes, number)
    matching = [p for p in prefixes if rating.digits(number).startswith(p)]
    assert best == (max(matching, key=len) if matching else None)
    if best is not None:
        assert len(best) == max(len(p) for p in matching)


def test_a_new_deck_takes_over_at_its_time() -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    switch = datetime(2027, 1, 1, tzinfo=UTC)
    plan = [rating.Assignment(old, switch - timedelta(days=90)), rating.Assignment(new, switch)]
    assert rating.deck_in_force(plan, switch - timedelta(seconds=1)).deck_id == old  # type: ignore[union-attr]
    assert rating.deck_in_force(plan, switch).deck_id == new  # type: ignore[union-attr]
    assert rating.deck_in_force(plan, switch - timedelta(days=91)) is None


def test_increments_connect_fee_and_margin() -> None:
    per_minute = Tariff("49", Decimal("0.60"), Decimal(0), 60, 60)
    assert rating.cost(per_minute, 0) == 0  # unanswered: no connect fee either
    assert rating.cost(per_minute, 1) == Decimal("0.6")
    assert rating.cost(per_minute, 61) == Decimal("1.2")
    six = Tariff("49", Decimal("0.60"), Decimal("0.05"), 6, 6)
    assert rating.cost(six, 7) == Decimal("0.05") + Decimal("0.12")
    resold = rating.with_margin("49", Decimal("0.60"), Decimal("0.10"), 1, 1, Decimal(20))
    assert (resold.price_per_minute, resold.connect_fee) == (Decimal("0.72"), Decimal("0.12"))
    assert rating.cost(resold, 30) == Decimal("0.12") + Decimal("0.36")
    # A third of a micro-unit is billed as a whole one: never below the rate.
    assert rating.cost(Tariff("1", Decimal("0.000001")), 1) == Decimal("0.000001")


@given(st.integers(0, 10_000), increments)
def test_billed_seconds_are_whole_increments_covering_the_call(seconds: int, increment: tuple[int, int]) -> None:
    first, next_ = increment
    billed = rating.billed_seconds(seconds, first, next_)
    assert billed >= seconds
    if seconds > 0:
        assert billed >= first and (billed - first) % next_ == 0
        assert billed - seconds < max(first, next_)
    else:
        assert billed == 0


@settings(max_examples=300, deadline=None)
@given(balances, st.lists(st.tuples(tariffs(), st.integers(0, 600)), max_size=4), tariffs())
def test_a_new_call_is_allowed_exactly_as_long_as_the_balance_lasts(
    balance: Decimal, others: list[tuple[Tariff, int]], tariff: Tariff
) -> None:
    up = [CallUp(t, e) for t, e in others]
    allowed = rating.seconds_affordable(balance, up, tariff)
    together = [*up, CallUp(tariff, 0)]
    if allowed == 0:  # refused: the first increment (plus the others meanwhile) is more than the balance
        assert rating.spent(together, 1) > balance
    else:
        assert rating.spent(together, allowed) <= balance
        assert allowed == rating.MAX_SECONDS or rating.spent(together, allowed + 1) > balance


@settings(max_examples=200, deadline=None)
@given(balances, st.lists(tariffs(), min_size=1, max_size=5))
def test_calls_cut_when_the_balance_runs_out_leave_less_than_one_increment_each(
    balance: Decimal, started: list[Tariff]
) -> None:
    calls = [CallUp(t, 0) for t in started]
    cut = rating.run_out(balance, calls)
    if cut in (-1, rating.MAX_SECONDS):
        return
    left = balance - rating.spent(calls, cut)
    assert left >= 0
    # One more second would have cost more than what is left: at most one increment per call is unused.
    assert left < sum(rating.cost(t, cut + 1) - rating.cost(t, cut) for t in started) or cut == 0


@settings(max_examples=300, deadline=None)
@given(balances, st.lists(st.tuples(tariffs(), st.integers(0, 600)), min_size=1, max_size=5))
def test_each_call_is_cut_at_the_last_second_the_shared_balance_pays_for(
    balance: Decimal, up: list[tuple[Tariff, int]]
) -> None:
    calls = [CallUp(t, e) for t, e in up]
    ends = rating.deadlines(balance, calls)
    if rating.spent(calls, 0) > balance:  # already more than the balance: every call is cut now
        assert ends == [-1] * len(calls)
        return
    cost_at_ends = sum((rating.cost(c.tariff, c.elapsed + end) for c, end in zip(calls, ends, strict=True)), Decimal(0))
    left = balance - cost_at_ends
    assert left >= 0  # together they never cost more than the balance
    assert all(end >= rating.run_out(balance, calls) for end in ends)  # nobody is cut before the common run-out
    for c, end in zip(calls, ends, strict=True):
        if end < rating.MAX_SECONDS:  # one second more of any call would cost more than is left
            assert rating.cost(c.tariff, c.elapsed + end + 1) - rating.cost(c.tariff, c.elapsed + end) > left


def test_two_calls_on_sixty_seconds_of_credit_are_both_cut_at_thirty_and_spend_it_all() -> None:
    cent_a_second = Tariff("1555", Decimal("0.60"))
    calls = [CallUp(cent_a_second, 0), CallUp(cent_a_second, 0)]
    assert rating.deadlines(Decimal("0.60"), calls) == [30, 30]
    # One answered a second earlier (its billsec is one ahead): the odd cent goes to the other call.
    assert rating.deadlines(Decimal("0.60"), [CallUp(cent_a_second, 1), CallUp(cent_a_second, 0)]) == [29, 30]
    assert rating.deadlines(Decimal("0.61"), calls) == [31, 30]
    # A per-minute call already paid for runs to the end of its minute, whatever the other burns.
    minute = Tariff("49", Decimal("0.60"), Decimal(0), 60, 60)
    assert rating.deadlines(Decimal("0.65"), [CallUp(minute, 10), CallUp(cent_a_second, 0)]) == [50, 5]
