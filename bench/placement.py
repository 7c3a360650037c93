"""Placement: time to place 10,000 tenants on 50 nodes, and how many move when a node joins or leaves.

Side by side in one run: fsfarm's sticky bounded-load consistent hashing against plain
consistent hashing (same ring, no load bound) for time and balance, and against the
theoretical minimum for movement. ``--quick`` does fewer repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.placement import Bin, Ring, moved, place


def plain_consistent_hashing(items: list[str], bins: list[Bin]) -> dict[str, str | None]:
    ring = Ring.build(bins)
    return {item: next(ring.walk(item), None) for item in items}


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def line(name: str, value: float, unit: str, reference: float, target: str) -> str:
    ratio = value / reference if reference else float("inf")
    return f"bench: {name} {value:.3g} {unit} (reference {reference:.3g}, ratio {ratio:.2f}, target {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    repeat = 3 if args.quick else 15
    items = [f"tenant{i}.example" for i in range(args.tenants)]
    bins = [Bin(f"fs{j:02d}") for j in range(args.nodes)]

    ours_s, ours = timed(lambda: place(items, bins), repeat)
    plain_s, plain = timed(lambda: plain_consistent_hashing(items, bins), repeat)
    mean = args.tenants / args.nodes
    ours_max = max(Counter(ours.values()).values()) / mean  # type: ignore[union-attr]
    plain_max = max(Counter(plain.values()).values()) / mean  # type: ignore[union-attr]

    added = place(items, [*bins, Bin("fs-new")], previous=ours, joined={"fs-new"})  # type: ignore[arg-type]
    add_min = args.tenants / (args.nodes + 1)
    removed_bin = bins[7]
    removed = place(items, [b for b in bins if b != removed_bin], previous=ours)  # type: ignore[arg-type]
    remove_min = sum(1 for where in ours.values() if where == removed_bin.id)  # type: ignore[union-attr]
    mod_before = {item: hash(item) % args.nodes for item in items}
    mod_after = {item: hash(item) % (args.nodes + 1) for item in items}
    mod_moved = sum(1 for item in items if mod_before[item] != mod_after[item])

    print(f"{args.tenants} tenants on {args.nodes} nodes, median of {repeat} runs")
    print(f"  sticky bounded-load placement: {ours_s * 1000:.1f} ms, busiest node {ours_max:.2f}x the mean")
    print(f"  plain consistent hashing:      {plain_s * 1000:.1f} ms, busiest node {plain_max:.2f}x the mean")
    print(f"  node added:   {moved(ours, added)} moved (minimum {add_min:.0f}; hash mod N would move {mod_moved})")
    print(f"  node removed: {moved(ours, removed)} moved (minimum {remove_min}, the tenants it hosted)")
    print(line("placement_time_10k_tenants_50_nodes", ours_s * 1000, "ms", plain_s * 1000, "< 1000 ms"))
    print(line("placement_busiest_node", ours_max, "x_mean", plain_max, "<= 1.25"))
    print(line("placement_moved_on_add", moved(ours, added), "tenants", add_min, "<= 1.25x minimum"))
    print(line("placement_moved_on_remove", moved(ours, removed), "tenants", remove_min, "= minimum"))


if __name__ == "__main__":
    main()
