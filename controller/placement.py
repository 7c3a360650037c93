"""Placement of tenants onto nodes (and HD rooms onto mixers): pure functions, no I/O.

Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018), made sticky:
given the previous assignment, an item only moves when it must.

* Each bin (node) gets virtual points on a hash ring in proportion to its weight (capacity).
* No bin holds more than ``ceil((1 + epsilon) * n * weight / total_weight)`` items (1.25x the mean).
* Removing a bin moves only that bin's items; adding one moves about 1/N of them (the items
  whose ring walk reaches the new bin before their current one), plus the few a tighter
  bound forces off an overfull bin.
* Pinned items go where they are pinned, whatever the bound; spares are simply not bins.
* The result depends only on the inputs: every controller computes the same placement.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

EPSILON = 0.25
POINTS_PER_BIN = 160


@dataclass(frozen=True)
class Bin:
    """A place items can go: a node's id and its relative capacity."""

    id: str
    weight: int = 1


def key_hash(key: str) -> int:
    """A stable 64-bit hash; the same on every machine and every Python run."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Ring:
    """The hash ring: sorted points, each owned by a bin."""

    points: tuple[int, ...]
    owners: tuple[str, ...]
    size: int  # number of distinct bins

    @classmethod
    def build(cls, bins: Sequence[Bin]) -> Ring:
        top = max((b.weight for b in bins), default=1)
        entries = []
        for b in bins:
            # Virtual points in proportion to weight, so a bigger node is first on more walks.
            for i in range(max(8, round(POINTS_PER_BIN * b.weight / top))):
                entries.append((key_hash(f"{b.id}#{i}"), b.id))
        entries.sort()
        return cls(tuple(p for p, _ in entries), tuple(o for _, o in entries), len(bins))

    def walk(self, key: str) -> Iterator[str]:
        """The distinct bins met going clockwise from ``key``'s position: its order of preference."""
        if not self.points:
            return
        start = bisect.bisect(self.points, key_hash(key))
        seen: set[str] = set()
        total = len(self.points)
        for step in range(total):
            owner = self.owners[(start + step) % total]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == self.size:
                    return


def capacities(n_items: int, bins: Sequence[Bin], epsilon: float = EPSILON) -> dict[str, int]:
    """The most items each bin may hold: (1 + epsilon) times its weighted share, rounded up."""
    total = sum(b.weight for b in bins)
    return {b.id: max(1, math.ceil((1 + epsilon) * n_items * b.weight / total)) for b in bins}


def place(
    items: Sequence[str],
    bins: Sequence[Bin],
    previous: Mapping[str, str | None] | None = None,
    pinned: Mapping[str, str] | None = None,
    epsilon: float = EPSILON,
    joined: Collection[str] = (),
) -> dict[str, str | None]:
    """Assign every item to a bin (None only when there are no bins).

    ``previous`` is the last assignment (items keep their bin when they can); ``pinned`` maps an
    item to the bin an operator chose, honoured while that bin is among ``bins``; ``joined`` names
    the bins that have just joined, which take their share of items from the others.
    """
    previous = previous or {}
    pinned = pinned or {}
    if not bins:
        return {item: None for item in items}
    ring = Ring.build(bins)
    bin_ids = {b.id for b in bins}
    cap = capacities(len(items), bins, epsilon)
    load = dict.fromkeys(bin_ids, 0)
    result: dict[str, str | None] = {}
    # Hash order, not input order, so callers listing tenants differently still agree.
    order = sorted(items, key=lambda item: (key_hash(item), item))

    fixed = set()
    for item in order:
        target = pinned.get(item)
        if target in bin_ids:
            result[item] = target
            load[target] += 1
            fixed.add(item)

    # Only bins said to have joined attract items: a bin that merely held nothing stays quiet.
    new_bins = set(joined) & bin_ids if previous else set()
    for item in order:
        if item in fixed:
            continue
        current = previous.get(item)
        if current in bin_ids:
            result[item] = current
            load[current] += 1

    # A bin that joined takes the items whose walk now meets it before their current bin.
    if new_bins:
        for item in order:
            current = result.get(item)
            if current is None or item in fixed:
                continue
            for candidate in ring.walk(item):
                if candidate == current:
                    break
                if candidate in new_bins and load[candidate] < cap[candidate]:
                    load[current] -= 1
                    load[candidate] += 1
                    result[item] = candidate
                    break

    # A tighter bound (more items or bins since last time) pushes the last-ordered extras off.
    homeless = [item for item in order if item not in result]
    for item in reversed(order):
        current = result.get(item)
        if current is not None and item not in fixed and load[current] > cap[current]:
            load[current] -= 1
            del result[item]
            homeless.append(item)

    for item in sorted(homeless, key=lambda i: (key_hash(i), i)):
        choice = None
        for candidate in ring.walk(item):
            if load[candidate] < cap[candidate]:
                choice = candidate
                break
        if choice is None:  # only when pins overfill every bin: take the least loaded
            choice = min(bin_ids, key=lambda b: (load[b] / cap[b], b))
        load[choice] += 1
        result[item] = choice
    return result


def moved(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> int:
    """How many items present in both assignments changed bin."""
    return sum(1 for item, where in after.items() if item in before and before[item] != where)
